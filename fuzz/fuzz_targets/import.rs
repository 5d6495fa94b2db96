//! Any bytes imported as JSON, JSON Lines or CSV (the first byte picks): must never panic,
//! and a failed import must leave the table as it was.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mnesia_runtime::import_fuzzing::import(data);
});
