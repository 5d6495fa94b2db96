//! Any bytes, decoded as a backup file: must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mnesia_runtime::fuzz_backup_file(data);
});
