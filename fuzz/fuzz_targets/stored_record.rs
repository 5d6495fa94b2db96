//! A record decoded through a stored record format (the schema file's JSON and the record's
//! bytes both from the input): an error at worst, never a panic, a hang or a huge allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mnesia_runtime::fuzzing::stored_record(data);
});
