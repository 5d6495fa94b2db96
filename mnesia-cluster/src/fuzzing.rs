//! Entry points for the fuzz targets (`fuzz/`): every decoder of what another process sends
//! or leaves on disc, fed arbitrary bytes. Not part of the API.

use crate::net::{Request, Response};
use crate::wire;

/// Decodes `bytes` as a request and as a response frame's payload: an error, never a panic.
pub fn frames(bytes: &[u8]) {
    let _ = wire::decode::<Request>(bytes);
    let _ = wire::decode::<Response>(bytes);
}

/// Runs both sides of the handshake, and a request read after it, against `bytes` as what
/// the other end sends: an error or a result, never a panic or a hang.
pub fn handshake(bytes: &[u8]) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    rt.block_on(async {
        let mut stream = tokio::io::join(bytes, Vec::new());
        if wire::accept(&mut stream, b"cookie", 1).await.is_ok() {
            let _ = wire::read_frame::<_, Request>(&mut stream, wire::MAX_FRAME).await;
        }
        let mut stream = tokio::io::join(bytes, Vec::new());
        let _ = wire::dial(&mut stream, b"cookie", 2).await;
    });
}

/// Replays `bytes` as a Raft log file: the intact records or an error, never a panic.
pub fn log_file(bytes: &[u8]) {
    let _ = crate::log_file::replay(bytes);
}

/// Reads `bytes` as a snapshot file, as a snapshot's body and as a database snapshot
/// loaded into an empty database: an error or a result, never a panic.
pub fn snapshot(bytes: &[u8]) {
    let _ = crate::snapshot::decode(bytes.to_vec());
    let _ = postcard::from_bytes::<crate::snapshot::Body<'_>>(bytes);
    if let Ok(db) = mnesia_runtime::Database::in_memory() {
        let _ = db.load_ordered_snapshot(bytes);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_bytes_are_refused_or_read_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            super::frames(&bytes);
            super::handshake(&bytes);
            super::log_file(&bytes);
            super::snapshot(&bytes);
        }
    }
}
