//! The wire: length-prefixed postcard frames, and the cookie handshake that comes before
//! any other frame.
//!
//! A frame is a big-endian `u32` length and that many bytes of postcard. The handshake
//! proves, in both directions, that the two ends share the cookie without sending it:
//!
//! ```text
//! dialer   -> Hello     { node, nonce_d }
//! listener -> Challenge { node, nonce_l, HMAC(cookie, "listener" | nonce_d | nonce_l) }
//! dialer   -> Proof     { HMAC(cookie, "dialer" | nonce_l | nonce_d) }
//! ```
//!
//! Each side checks the other's code in constant time and closes the connection on a
//! mismatch; the nonces are fresh for every connection, so a recorded handshake proves
//! nothing later.

use std::io;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest frame accepted after the handshake.
pub(crate) const MAX_FRAME: u32 = 64 << 20;

/// The largest handshake frame.
const MAX_HANDSHAKE_FRAME: u32 = 256;

/// How long a handshake may take.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What went wrong on a connection, as the cluster logs it.
#[derive(Debug)]
pub(crate) enum WireError {
    /// The socket failed or closed.
    Io(io::Error),
    /// A frame longer than allowed.
    TooLarge(u32),
    /// Bytes that are not a frame of the protocol.
    Garbage(String),
    /// The other end does not know the cookie.
    WrongCookie,
    /// The other end took too long.
    Timeout,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "i/o: {e}"),
            WireError::TooLarge(n) => write!(f, "a frame of {n} bytes is over the limit"),
            WireError::Garbage(e) => write!(f, "not a frame of the protocol: {e}"),
            WireError::WrongCookie => f.write_str("the other end does not share the cookie"),
            WireError::Timeout => f.write_str("the other end took too long"),
        }
    }
}

impl std::error::Error for WireError {}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> Self {
        WireError::Io(e)
    }
}

impl From<WireError> for io::Error {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Io(e) => e,
            other => io::Error::other(other.to_string()),
        }
    }
}

/// One frame's bytes: the length, then `value` in postcard.
pub(crate) fn frame<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    let mut out = postcard::to_extend(value, vec![0u8; 4]).map_err(|e| WireError::Garbage(e.to_string()))?;
    let len = u32::try_from(out.len() - 4).map_err(|_| WireError::TooLarge(u32::MAX))?;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

/// Writes one frame's bytes (see [`frame`]).
pub(crate) async fn write_framed<W: AsyncWriteExt + Unpin>(w: &mut W, frame: &[u8]) -> Result<(), WireError> {
    w.write_all(frame).await?;
    w.flush().await?;
    Ok(())
}

/// Writes one frame.
pub(crate) async fn write_frame<W: AsyncWriteExt + Unpin, T: Serialize>(
    w: &mut W,
    value: &T,
) -> Result<(), WireError> {
    write_framed(w, &frame(value)?).await
}

/// Reads one frame of at most `max` bytes.
pub(crate) async fn read_frame<R: AsyncReadExt + Unpin, T: DeserializeOwned>(
    r: &mut R,
    max: u32,
) -> Result<T, WireError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len);
    if len > max {
        return Err(WireError::TooLarge(len));
    }
    let mut bytes = vec![0u8; len as usize];
    r.read_exact(&mut bytes).await?;
    decode(&bytes)
}

/// Decodes a frame's bytes: the whole of them.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok(_) => Err(WireError::Garbage("bytes left over after the frame's value".into())),
        Err(e) => Err(WireError::Garbage(e.to_string())),
    }
}

#[derive(Serialize, Deserialize)]
struct Hello {
    node: u64,
    nonce: [u8; 32],
}

#[derive(Serialize, Deserialize)]
struct Challenge {
    node: u64,
    nonce: [u8; 32],
    proof: [u8; 32],
}

#[derive(Serialize, Deserialize)]
struct Proof {
    proof: [u8; 32],
}

fn nonce() -> Result<[u8; 32], WireError> {
    let mut n = [0u8; 32];
    getrandom::fill(&mut n).map_err(|e| WireError::Io(io::Error::other(e.to_string())))?;
    Ok(n)
}

fn mac(cookie: &[u8], role: &[u8], first: &[u8; 32], second: &[u8; 32]) -> Hmac<Sha256> {
    // (HMAC takes keys of any length.)
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(cookie).unwrap_or_else(|_| unreachable!());
    m.update(role);
    m.update(first);
    m.update(second);
    m
}

fn code(cookie: &[u8], role: &[u8], first: &[u8; 32], second: &[u8; 32]) -> [u8; 32] {
    mac(cookie, role, first, second).finalize().into_bytes().into()
}

fn check(
    cookie: &[u8],
    role: &[u8],
    first: &[u8; 32],
    second: &[u8; 32],
    proof: &[u8; 32],
) -> Result<(), WireError> {
    mac(cookie, role, first, second).verify_slice(proof).map_err(|_| WireError::WrongCookie)
}

/// The dialing side of the handshake: returns the listener's node id.
pub(crate) async fn dial<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    s: &mut S,
    cookie: &[u8],
    me: u64,
) -> Result<u64, WireError> {
    let run = async {
        let mine = nonce()?;
        write_frame(s, &Hello { node: me, nonce: mine }).await?;
        let c: Challenge = read_frame(s, MAX_HANDSHAKE_FRAME).await?;
        check(cookie, b"listener", &mine, &c.nonce, &c.proof)?;
        write_frame(s, &Proof { proof: code(cookie, b"dialer", &c.nonce, &mine) }).await?;
        Ok(c.node)
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, run).await.map_err(|_| WireError::Timeout)?
}

/// The listening side of the handshake: returns the dialer's node id.
pub(crate) async fn accept<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    s: &mut S,
    cookie: &[u8],
    me: u64,
) -> Result<u64, WireError> {
    let run = async {
        let h: Hello = read_frame(s, MAX_HANDSHAKE_FRAME).await?;
        let mine = nonce()?;
        let proof = code(cookie, b"listener", &h.nonce, &mine);
        write_frame(s, &Challenge { node: me, nonce: mine, proof }).await?;
        let p: Proof = read_frame(s, MAX_HANDSHAKE_FRAME).await?;
        check(cookie, b"dialer", &mine, &h.nonce, &p.proof)?;
        Ok(h.node)
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, run).await.map_err(|_| WireError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
    }

    #[test]
    fn the_same_cookie_passes_both_ways() {
        rt().block_on(async {
            let (mut a, mut b) = tokio::io::duplex(1024);
            let (d, l) = tokio::join!(dial(&mut a, b"secret", 1), accept(&mut b, b"secret", 2));
            assert_eq!((d.expect("dialer"), l.expect("listener")), (2, 1));
        });
    }

    #[test]
    fn a_wrong_cookie_is_refused_on_both_sides() {
        rt().block_on(async {
            let (mut a, mut b) = tokio::io::duplex(1024);
            let listener = async {
                let r = accept(&mut b, b"secret", 2).await;
                drop(b);
                r
            };
            let (d, l) = tokio::join!(dial(&mut a, b"guess", 1), listener);
            assert!(matches!(d, Err(WireError::WrongCookie)), "{d:?}");
            // The listener learns it too: the dialer hangs up without a proof.
            assert!(l.is_err());
        });
    }

    #[test]
    fn oversized_and_garbage_frames_are_refused() {
        rt().block_on(async {
            let (mut a, mut b) = tokio::io::duplex(1024);
            a.write_all(&(MAX_HANDSHAKE_FRAME + 1).to_be_bytes()).await.expect("write");
            assert!(matches!(accept(&mut b, b"k", 2).await, Err(WireError::TooLarge(_))));
            let (mut a, mut b) = tokio::io::duplex(1024);
            a.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await.expect("write");
            assert!(matches!(accept(&mut b, b"k", 2).await, Err(WireError::Garbage(_))));
        });
    }

    #[test]
    fn a_silent_peer_times_out() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("rt");
        rt.block_on(async {
            let (_a, mut b) = tokio::io::duplex(1024);
            assert!(matches!(accept(&mut b, b"k", 2).await, Err(WireError::Timeout)));
        });
    }
}
