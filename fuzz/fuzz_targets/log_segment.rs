//! Any bytes, decoded as a commit log segment: must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mnesia_runtime::fuzzing::log_segment(data);
});
