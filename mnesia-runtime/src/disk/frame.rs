//! Length- and checksum-framed records, the unit of every file the database writes.
//!
//! A file starts with an 8-byte magic that names its kind and format version, followed by
//! frames: `[payload length: u32 LE][crc32 of the length: u32 LE][crc32 of the payload: u32
//! LE][payload]`. The length has a checksum of its own, so a damaged length is never
//! mistaken for a record that runs past the end of the file.
//!
//! Reading tells a *torn tail* — the last frame of a file cut short, zero-filled or garbled
//! by a crash while it was being appended, which was never acknowledged — from
//! *corruption*: a bad frame followed by a valid one. The first is cut off; the second is an
//! error naming the file and the offset.

use std::io::{self, Read};
use std::path::Path;

use super::files::{self, DiscFile, io_error};
use crate::error::{Error, Result};

/// The frame header: length, its checksum, the payload's checksum.
pub(crate) const HEADER: usize = 12;
/// Frames larger than this are refused (and a length field above it is damage).
pub(crate) const MAX_FRAME: usize = 1 << 30;

/// Appends one frame to `out`.
pub(crate) fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    encode_frame_parts(&[payload], out);
}

/// Appends one frame whose payload is the concatenation of `parts`.
pub(crate) fn encode_frame_parts(parts: &[&[u8]], out: &mut Vec<u8>) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    parts.iter().for_each(|p| crc.update(p));
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc32fast::hash(&len).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    parts.iter().for_each(|p| out.extend_from_slice(p));
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The whole valid frame starting at `at`, if there is one.
fn frame_at(bytes: &[u8], at: usize) -> Option<std::ops::Range<usize>> {
    if bytes.len() - at < HEADER {
        return None;
    }
    if crc32fast::hash(&bytes[at..at + 4]) != u32_at(bytes, at + 4) {
        return None;
    }
    let len = u32_at(bytes, at) as usize;
    let body = at + HEADER;
    if len > MAX_FRAME || len > bytes.len() - body {
        return None;
    }
    (crc32fast::hash(&bytes[body..body + len]) == u32_at(bytes, at + 8)).then_some(body..body + len)
}

/// Whether a valid frame starts anywhere after `at`: then the damage at `at` is in the
/// middle of the file, not a torn tail.
fn valid_frame_after(bytes: &[u8], at: usize) -> bool {
    (at + 1..bytes.len().saturating_sub(HEADER - 1)).any(|p| frame_at(bytes, p).is_some())
}

/// The magic of a file kind at the current format version, e.g. `MNSWAL01`.
pub(crate) fn magic(kind: &[u8; 6], version: u8) -> [u8; 8] {
    let mut m = [0u8; 8];
    m[..6].copy_from_slice(kind);
    m[6] = b'0' + version / 10;
    m[7] = b'0' + version % 10;
    m
}

/// How a file's frames ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Every byte belonged to a whole, valid frame.
    Clean,
    /// The bytes from this offset on are a torn last frame.
    Torn(u64),
}

/// The frames of one file, read whole.
#[derive(Debug)]
pub(crate) struct Frames {
    /// The file's format version (one of those the reader accepts).
    pub(crate) version: u8,
    bytes: Vec<u8>,
    /// Each frame's offset in the file and where its payload is in `bytes`.
    frames: Vec<(u64, std::ops::Range<usize>)>,
    pub(crate) end: End,
}

impl Frames {
    /// Parses a whole file's bytes, of a format version in `versions`.
    pub(crate) fn parse(path: &Path, bytes: Vec<u8>, kind: &[u8; 6], versions: Versions) -> Result<Frames> {
        let (frames, end, version) = parse_frames(path, &bytes, kind, versions)?;
        Ok(Frames { version, bytes, frames, end })
    }

    /// Each frame's offset in the file and its payload.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.frames.iter().map(|(at, r)| (*at, &self.bytes[r.clone()]))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }
}

/// Reads a file of frames of the given kind. A damaged frame followed by more data is
/// corruption (an error naming the file and offset); a damaged frame at the end is a torn
/// tail (reported in [`Frames::end`]).
pub(crate) fn read_frames(path: &Path, kind: &[u8; 6], versions: Versions) -> Result<Frames> {
    let bytes = DiscFile::open(path)?.read_to_end()?;
    Frames::parse(path, bytes, kind, versions)
}

/// The format versions a reader accepts, oldest to newest (the newest is what is written).
pub(crate) type Versions = std::ops::RangeInclusive<u8>;

/// Where each frame's payload is, how the frames ended, and the file's format version.
pub(crate) type Parsed = (Vec<(u64, std::ops::Range<usize>)>, End, u8);

/// [`read_frames`] over bytes already in memory (also what the fuzz target drives).
pub(crate) fn parse_frames(path: &Path, bytes: &[u8], kind: &[u8; 6], versions: Versions) -> Result<Parsed> {
    let corrupt = |offset: usize, reason: String| Error::Corrupt {
        file: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    if bytes.len() < 8 {
        if bytes.is_empty() || magic(kind, *versions.end()).starts_with(bytes) {
            // Created but never completely written: nothing was ever acknowledged in it.
            return Ok((Vec::new(), End::Torn(0), *versions.end()));
        }
        return Err(corrupt(0, "not a file of this kind".into()));
    }
    let version = check_magic(path, &bytes[..8], kind, versions)?;
    let mut frames = Vec::new();
    let mut at = 8usize;
    while at < bytes.len() {
        if let Some(body) = frame_at(bytes, at) {
            at = body.end;
            frames.push(((body.start - HEADER) as u64, body));
            continue;
        }
        // A damaged frame: the end of the file being appended when the process died (cut
        // short, zero-filled, garbled), unless a valid frame follows it.
        if valid_frame_after(bytes, at) {
            return Err(corrupt(at, "a damaged record followed by valid ones".into()));
        }
        return Ok((frames, End::Torn(at as u64), version));
    }
    Ok((frames, End::Clean, version))
}

/// Checks a file's first 8 bytes: its kind and a format version in `versions`; returns the
/// version.
fn check_magic(path: &Path, head: &[u8], kind: &[u8; 6], versions: Versions) -> Result<u8> {
    if head[..6] != kind[..] {
        return Err(Error::Corrupt {
            file: path.to_path_buf(),
            offset: 0,
            reason: format!("expected a {} file", String::from_utf8_lossy(kind)),
        });
    }
    match versions.clone().find(|v| head[6..8] == magic(kind, *v)[6..8]) {
        Some(v) => Ok(v),
        None => Err(Error::UnsupportedFormat {
            file: path.to_path_buf(),
            found: String::from_utf8_lossy(&head[6..8]).into_owned(),
            supported: versions
                .map(|v| String::from_utf8_lossy(&magic(kind, v)[6..8]).into_owned())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Reads a file of frames one at a time, for files written whole and renamed into place (a
/// backup): any damage, a frame cut short included, is an error naming the offset.
pub(crate) struct FrameReader<R> {
    inner: R,
    path: std::path::PathBuf,
    /// Where the next frame starts.
    offset: u64,
    buf: Vec<u8>,
}

impl<R: Read> FrameReader<R> {
    /// Reads and checks the magic.
    pub(crate) fn new(path: &Path, inner: R, kind: &[u8; 6], version: u8) -> Result<Self> {
        Self::of_versions(path, inner, kind, version..=version).map(|(reader, _)| reader)
    }

    /// Reads and checks the magic, of one of `versions`; returns the version found.
    pub(crate) fn of_versions(
        path: &Path,
        mut inner: R,
        kind: &[u8; 6],
        versions: Versions,
    ) -> Result<(Self, u8)> {
        let mut head = [0u8; 8];
        let got = read_full(&mut inner, &mut head).map_err(|e| io_error(path, e))?;
        if got < 8 {
            return Err(Error::Corrupt {
                file: path.to_path_buf(),
                offset: 0,
                reason: "the file is too short to be of this kind".into(),
            });
        }
        let version = check_magic(path, &head, kind, versions)?;
        Ok((FrameReader { inner, path: path.to_path_buf(), offset: 8, buf: Vec::new() }, version))
    }

    fn corrupt(&self, offset: u64, reason: &str) -> Error {
        Error::Corrupt { file: self.path.clone(), offset, reason: reason.into() }
    }

    /// The next frame's offset and payload; `None` at the end of the file.
    pub(crate) fn next_frame(&mut self) -> Result<Option<(u64, &[u8])>> {
        let at = self.offset;
        let mut head = [0u8; HEADER];
        match read_full(&mut self.inner, &mut head).map_err(|e| io_error(&self.path, e))? {
            0 => return Ok(None),
            HEADER => {}
            _ => return Err(self.corrupt(at, "the file ends in the middle of a record")),
        }
        if crc32fast::hash(&head[..4]) != u32_at(&head, 4) {
            return Err(self.corrupt(at, "a damaged record header"));
        }
        let len = u32_at(&head, 0) as usize;
        if len > MAX_FRAME {
            return Err(self.corrupt(at, "a record larger than any written"));
        }
        // Grown as the bytes come: a damaged length costs no more than the file holds.
        self.buf.clear();
        let got = (&mut self.inner)
            .take(len as u64)
            .read_to_end(&mut self.buf)
            .map_err(|e| io_error(&self.path, e))?;
        if got < len {
            return Err(self.corrupt(at, "the file ends in the middle of a record"));
        }
        if crc32fast::hash(&self.buf) != u32_at(&head, 8) {
            return Err(self.corrupt(at, "a damaged record"));
        }
        self.offset = at + (HEADER + len) as u64;
        Ok(Some((at, &self.buf)))
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Writes a whole file of frames atomically: to a temporary file, synced, then renamed over
/// `path`, and the directory synced. A crash leaves either the old file or the new one.
pub(crate) fn write_file_atomically(
    path: &Path,
    kind: &[u8; 6],
    version: u8,
    frames: &[Vec<u8>],
) -> Result<()> {
    let mut bytes = Vec::with_capacity(8 + frames.iter().map(|f| f.len() + HEADER).sum::<usize>());
    bytes.extend_from_slice(&magic(kind, version));
    for f in frames {
        encode_frame(f, &mut bytes);
    }
    files::write_atomically(path, |f| f.write_all(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND: &[u8; 6] = b"MNSTST";

    fn file(frames: &[&[u8]]) -> Vec<u8> {
        let mut b = magic(KIND, 1).to_vec();
        for f in frames {
            encode_frame(f, &mut b);
        }
        b
    }

    fn parse(bytes: &[u8]) -> Result<Frames> {
        Frames::parse(Path::new("t"), bytes.to_vec(), KIND, 1..=1)
    }

    #[test]
    fn round_trip() {
        let f = parse(&file(&[b"a", b"", b"hello"])).expect("parse");
        let payloads: Vec<&[u8]> = f.iter().map(|(_, p)| p).collect();
        assert_eq!(payloads, [&b"a"[..], b"", b"hello"]);
        assert_eq!(f.end, End::Clean);
        assert_eq!(f.iter().nth(1).map(|(at, _)| at), Some((8 + HEADER + 1) as u64));
    }

    #[test]
    fn every_truncation_of_the_last_frame_is_a_torn_tail() {
        let whole = file(&[b"first", b"second record"]);
        let last = 8 + HEADER + 5;
        for cut in last..whole.len() {
            let f = parse(&whole[..cut]).expect("torn tail is not an error");
            assert_eq!(f.len(), 1, "cut at {cut}");
            assert_eq!(f.end, if cut == last { End::Clean } else { End::Torn(last as u64) });
        }
        for cut in 0..8 {
            let f = parse(&whole[..cut]).expect("a header cut short");
            assert_eq!(f.len(), 0);
        }
    }

    #[test]
    fn damage_before_the_end_is_corruption_with_its_offset() {
        let whole = file(&[b"first", b"second", b"third"]);
        let second = 8 + HEADER + 5;
        let mut bad = whole.clone();
        bad[second + HEADER + 2] ^= 0x40;
        match parse(&bad) {
            Err(Error::Corrupt { offset, .. }) => assert_eq!(offset, second as u64),
            other => panic!("{other:?}"),
        }
        // Damage in the last frame is a torn tail: it was being written.
        let mut tail = whole.clone();
        let n = tail.len();
        tail[n - 1] ^= 1;
        assert_eq!(parse(&tail).expect("tail").len(), 2);
    }

    #[test]
    fn a_damaged_length_is_corruption_and_a_zero_filled_tail_is_torn() {
        let whole = file(&[b"first", b"second", b"third"]);
        let second = 8 + HEADER + 5;
        let mut bad = whole.clone();
        bad[second + 2] ^= 0x01; // the length of the second record, now far too large
        match parse(&bad) {
            Err(Error::Corrupt { offset, .. }) => assert_eq!(offset, second as u64),
            other => panic!("{other:?}"),
        }
        let mut zeros = whole.clone();
        zeros.extend_from_slice(&[0u8; 64]);
        let f = parse(&zeros).expect("a zero-filled tail is torn");
        assert_eq!((f.len(), f.end), (3, End::Torn(whole.len() as u64)));
    }

    #[test]
    fn the_frame_reader_reads_whole_files_and_names_the_offset_of_any_damage() {
        let whole = file(&[b"first", b"", b"third"]);
        let read_all = |bytes: &[u8]| -> Result<Vec<(u64, Vec<u8>)>> {
            let mut r = FrameReader::new(Path::new("t"), bytes, KIND, 1)?;
            let mut out = Vec::new();
            while let Some((at, p)) = r.next_frame()? {
                out.push((at, p.to_vec()));
            }
            Ok(out)
        };
        let frames = read_all(&whole).expect("read");
        let second = (8 + HEADER + 5) as u64;
        assert_eq!(frames.iter().map(|(at, _)| *at).collect::<Vec<_>>(), [8, second, second + HEADER as u64]);
        assert_eq!(frames[2].1, b"third");
        for cut in 0..whole.len() {
            let r = read_all(&whole[..cut]);
            let boundary = [8, second as usize, second as usize + HEADER].contains(&cut);
            assert_eq!(r.is_ok(), boundary, "cut at {cut}");
        }
        for at in 0..whole.len() {
            let mut bad = whole.clone();
            bad[at] ^= 0x10;
            match read_all(&bad) {
                Err(Error::Corrupt { offset, .. }) => assert!(offset <= at as u64, "flip at {at}"),
                Err(Error::UnsupportedFormat { .. }) => assert!((6..8).contains(&at)),
                other => panic!("flip at {at}: {other:?}"),
            }
        }
    }

    #[test]
    fn other_kinds_and_future_versions_are_refused() {
        let mut other = file(&[b"x"]);
        other[0] = b'X';
        assert!(matches!(parse(&other), Err(Error::Corrupt { offset: 0, .. })));
        let future = {
            let mut b = magic(KIND, 2).to_vec();
            encode_frame(b"x", &mut b);
            b
        };
        assert!(matches!(parse(&future), Err(Error::UnsupportedFormat { .. })));
    }
}
