#![no_main]
//! The cluster's decoder of outside input: `mnesia_cluster::fuzzing::handshake`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mnesia_cluster::fuzzing::handshake(data);
});
