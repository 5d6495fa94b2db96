//! The wire: length-prefixed postcard frames, and the cookie handshake that comes before
//! any other frame.
//!
//! A frame is a big-endian `u32` length and that many bytes of postcard. The handshake
//! proves, in both directions, that the two ends share the cookie without sending it:
//!
//! ```text
//! dialer   -> Hello     { protocol, node_d, nonce_d }
//! listener -> Challenge { protocol, node_l, nonce_l,
//!                         HMAC(cookie, "listener" | protocol | node_d | node_l | nonce_d | nonce_l) }
//! dialer   -> Proof     { HMAC(cookie, "dialer" | protocol | node_d | node_l | nonce_l | nonce_d) }
//! ```
//!
//! Each side checks the other's code in constant time and closes the connection on a
//! mismatch; the nonces are fresh for every connection, so a recorded handshake proves
//! nothing later, and the node ids are in the codes, so that no one between the two ends
//! can change who either says it is. Both ends must speak the same [`PROTOCOL`]: the
//! listener answers a dialer of another one with its own (and no more), and each end
//! refuses the other with [`WireError::Protocol`], rather than misread its frames.

use std::io;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The version of the frames nodes exchange (their requests and answers): nodes of another
/// version are refused at the handshake.
pub(crate) const PROTOCOL: u16 = 2;

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
    /// The other end speaks another version of the protocol (its version).
    Protocol(u16),
    /// TLS refused the other end, or was refused by it (why).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    Tls(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "i/o: {e}"),
            WireError::TooLarge(n) => write!(f, "a frame of {n} bytes is over the limit"),
            WireError::Garbage(e) => write!(f, "not a frame of the protocol: {e}"),
            WireError::WrongCookie => f.write_str("the other end does not share the cookie"),
            WireError::Timeout => f.write_str("the other end took too long"),
            WireError::Tls(why) => write!(f, "TLS: {why}"),
            WireError::Protocol(v) => write!(
                f,
                "the other end speaks version {v} of the cluster protocol, this node {PROTOCOL}: run the same version of mnesia on every node"
            ),
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
    decode(&read_frame_bytes(r, max).await?)
}

/// The bytes of one frame of at most `max` bytes.
async fn read_frame_bytes<R: AsyncReadExt + Unpin>(r: &mut R, max: u32) -> Result<Vec<u8>, WireError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len);
    if len > max {
        return Err(WireError::TooLarge(len));
    }
    let mut bytes = vec![0u8; len as usize];
    r.read_exact(&mut bytes).await?;
    Ok(bytes)
}

/// Reads one handshake frame whose value begins with the protocol's version: refused as
/// [`WireError::Protocol`] when it is another version (whatever follows: a later version
/// may lay out the rest otherwise), decoded otherwise.
async fn read_versioned<R: AsyncReadExt + Unpin, T: DeserializeOwned>(r: &mut R) -> Result<T, WireError> {
    let bytes = read_frame_bytes(r, MAX_HANDSHAKE_FRAME).await?;
    match postcard::take_from_bytes::<u16>(&bytes) {
        Ok((version, _)) if version != PROTOCOL => Err(WireError::Protocol(version)),
        _ => decode(&bytes),
    }
}

/// Decodes a frame's bytes: the whole of them.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok(_) => Err(WireError::Garbage("bytes left over after the frame's value".into())),
        Err(e) => Err(WireError::Garbage(e.to_string())),
    }
}

// The handshake's first two frames begin with the protocol's version, whatever the
// version: a node reads it before the rest (see `read_versioned`).
#[derive(Serialize, Deserialize)]
struct Hello {
    protocol: u16,
    node: u64,
    nonce: [u8; 32],
}

#[derive(Serialize, Deserialize)]
struct Challenge {
    protocol: u16,
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

/// Who the two ends say they are: the dialer's node id, then the listener's.
type Ends = (u64, u64);

fn mac(cookie: &[u8], role: &[u8], ends: Ends, first: &[u8; 32], second: &[u8; 32]) -> Hmac<Sha256> {
    // (HMAC takes keys of any length.)
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(cookie).unwrap_or_else(|_| unreachable!());
    m.update(role);
    m.update(&PROTOCOL.to_be_bytes());
    m.update(&ends.0.to_be_bytes());
    m.update(&ends.1.to_be_bytes());
    m.update(first);
    m.update(second);
    m
}

fn code(cookie: &[u8], role: &[u8], ends: Ends, first: &[u8; 32], second: &[u8; 32]) -> [u8; 32] {
    mac(cookie, role, ends, first, second).finalize().into_bytes().into()
}

fn check(
    cookie: &[u8],
    role: &[u8],
    ends: Ends,
    (first, second): (&[u8; 32], &[u8; 32]),
    proof: &[u8; 32],
) -> Result<(), WireError> {
    mac(cookie, role, ends, first, second).verify_slice(proof).map_err(|_| WireError::WrongCookie)
}

/// The dialing side of the handshake: returns the listener's node id.
pub(crate) async fn dial<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    s: &mut S,
    cookie: &[u8],
    me: u64,
) -> Result<u64, WireError> {
    let run = async {
        let mine = nonce()?;
        write_frame(s, &Hello { protocol: PROTOCOL, node: me, nonce: mine }).await?;
        let c: Challenge = read_versioned(s).await?;
        let ends = (me, c.node);
        check(cookie, b"listener", ends, (&mine, &c.nonce), &c.proof)?;
        write_frame(s, &Proof { proof: code(cookie, b"dialer", ends, &c.nonce, &mine) }).await?;
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
        let mine = nonce()?;
        let h: Hello = match read_versioned(s).await {
            Err(WireError::Protocol(theirs)) => {
                // Its version only (no code for its nonce): the dialer can say what differs.
                let c = Challenge { protocol: PROTOCOL, node: me, nonce: mine, proof: [0; 32] };
                write_frame(s, &c).await?;
                return Err(WireError::Protocol(theirs));
            }
            h => h?,
        };
        let ends = (h.node, me);
        let proof = code(cookie, b"listener", ends, &h.nonce, &mine);
        write_frame(s, &Challenge { protocol: PROTOCOL, node: me, nonce: mine, proof }).await?;
        let p: Proof = read_frame(s, MAX_HANDSHAKE_FRAME).await?;
        check(cookie, b"dialer", ends, (&mine, &h.nonce), &p.proof)?;
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
    fn another_protocol_version_is_refused_on_both_sides_saying_so() {
        rt().block_on(async {
            // A dialer of another version: the listener refuses it, and answers with its own.
            // (Its version first, then a layout this version does not know.)
            let (mut a, mut b) = tokio::io::duplex(1024);
            write_frame(&mut a, &(PROTOCOL + 1, "a later hello", vec![7u8; 40])).await.expect("hello");
            let l = accept(&mut b, b"secret", 2).await;
            assert!(matches!(l, Err(WireError::Protocol(v)) if v == PROTOCOL + 1), "{l:?}");
            let c: Challenge = read_frame(&mut a, MAX_HANDSHAKE_FRAME).await.expect("its version");
            assert_eq!(c.protocol, PROTOCOL);
            // A listener of another version: the dialer refuses it, naming both versions.
            let (mut a, mut b) = tokio::io::duplex(1024);
            let listener = async {
                let _: Hello = read_frame(&mut b, MAX_HANDSHAKE_FRAME).await.expect("hello");
                let c = Challenge { protocol: PROTOCOL + 1, node: 2, nonce: [7; 32], proof: [0; 32] };
                write_frame(&mut b, &c).await.expect("challenge");
            };
            let (d, ()) = tokio::join!(dial(&mut a, b"secret", 1), listener);
            let d = d.map_err(|e| e.to_string());
            assert!(matches!(&d, Err(why) if why.contains(&format!("version {}", PROTOCOL + 1))), "{d:?}");
        });
    }

    /// The version leads the handshake's frames, as every version must keep it.
    #[test]
    fn the_version_leads_the_handshake_frames() {
        let hello =
            postcard::to_allocvec(&Hello { protocol: PROTOCOL, node: 300, nonce: [1; 32] }).expect("hello");
        let challenge =
            postcard::to_allocvec(&Challenge { protocol: PROTOCOL, node: 3, nonce: [1; 32], proof: [2; 32] })
                .expect("challenge");
        for frame in [hello, challenge] {
            assert_eq!(postcard::take_from_bytes::<u16>(&frame).expect("version").0, PROTOCOL);
        }
    }

    /// The node ids are in the codes: a listener whose challenge names another node than
    /// the one that made its code is refused.
    #[test]
    fn a_node_id_changed_on_the_way_is_refused() {
        rt().block_on(async {
            let (mut a, mut b) = tokio::io::duplex(1024);
            let listener = async {
                let h: Hello = read_frame(&mut b, MAX_HANDSHAKE_FRAME).await.expect("hello");
                let mine = [9; 32];
                let proof = code(b"secret", b"listener", (h.node, 2), &h.nonce, &mine);
                let c = Challenge { protocol: PROTOCOL, node: 3, nonce: mine, proof };
                write_frame(&mut b, &c).await.expect("challenge");
            };
            let (d, ()) = tokio::join!(dial(&mut a, b"secret", 1), listener);
            assert!(matches!(d, Err(WireError::WrongCookie)), "{d:?}");
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
