#![no_main]
//! The cluster's decoders of snapshots (a node's file, one sent by the leader):
//! `mnesia_cluster::fuzzing::snapshot`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mnesia_cluster::fuzzing::snapshot(data);
});
