//! Any bytes, decoded as a table snapshot: must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mnesia_runtime::fuzzing::snapshot_file(data);
});
