//! What the log and the snapshots hold: records and keys encoded with postcard, grouped by
//! table, tagged with the commit sequence number.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Encodes a key, a record or a commit with postcard. Nothing larger than one record of a
/// file may hold ([`super::frame::MAX_FRAME`]) is ever encoded whole: the encoding stops
/// with an error as soon as it passes that size.
pub(crate) fn encode<S: Serialize + ?Sized>(value: &S) -> Result<Vec<u8>> {
    postcard::serialize_with_flavor(value, Capped(Vec::new())).map_err(|e| match e {
        postcard::Error::SerializeBufferFull => Error::TooLarge {
            what: format!(
                "a value larger than {} bytes (the most one record of the log holds) cannot be stored: split it",
                super::frame::MAX_FRAME
            ),
        },
        e => Error::codec("encoding", e),
    })
}

/// Appends a value's postcard encoding to a buffer (`postcard::to_extend` for one type).
pub(crate) type Extend<S> = fn(&S, Vec<u8>) -> postcard::Result<Vec<u8>>;

/// A postcard output that refuses to grow past [`super::frame::MAX_FRAME`].
struct Capped(Vec<u8>);

impl postcard::ser_flavors::Flavor for Capped {
    type Output = Vec<u8>;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() > super::frame::MAX_FRAME - self.0.len() {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        if self.0.len() >= super::frame::MAX_FRAME {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

/// A key's content after a write, encoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Logged {
    /// The key's one record (`set`, `ordered_set`).
    Put(#[serde(serialize_with = "bytes::one")] Vec<u8>),
    /// The key's records (`bag`).
    Group(#[serde(serialize_with = "bytes::many")] Vec<Vec<u8>>),
    /// The key is gone.
    Delete,
}

/// The bytes of a key's encoded content.
pub(crate) fn logged_len(value: &Logged) -> usize {
    match value {
        Logged::Put(b) => b.len(),
        Logged::Group(bs) => bs.iter().map(Vec::len).sum(),
        Logged::Delete => 0,
    }
}

/// One table's part of a commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TableOps {
    /// The table's id in the schema (a new id for every table created, so a dropped table's
    /// records never reach a new table of the same name).
    pub(crate) table: u64,
    /// The commit emptied the table first.
    pub(crate) clear: bool,
    /// The table's auto-increment counter when the commit was logged (0 if it has none), so
    /// that no id is handed out twice after a restart. Replay keeps the highest, unless
    /// `reset` says the counter was set to this value on purpose.
    pub(crate) counter: u64,
    /// The counter was reset (`reset_counter`): replay sets it rather than raising it.
    pub(crate) reset: bool,
    /// Encoded key and its new content.
    #[serde(serialize_with = "bytes::keyed")]
    pub(crate) writes: Vec<(Vec<u8>, Logged)>,
}

/// Encoded bytes written as one byte string rather than byte by byte: the same postcard
/// encoding (a length, then the bytes), in one copy.
mod bytes {
    use serde::ser::{SerializeSeq, SerializeTuple};
    use serde::{Serialize, Serializer};

    /// Bytes, serialized as a byte string.
    struct Raw<'a>(&'a [u8]);

    impl Serialize for Raw<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    /// A key and its content.
    struct Keyed<'a>(&'a (Vec<u8>, super::Logged));

    impl Serialize for Keyed<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut t = s.serialize_tuple(2)?;
            t.serialize_element(&Raw(&self.0.0))?;
            t.serialize_element(&self.0.1)?;
            t.end()
        }
    }

    pub(super) fn one<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn many<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for b in v {
            seq.serialize_element(&Raw(b))?;
        }
        seq.end()
    }

    pub(super) fn keyed<S: Serializer>(v: &[(Vec<u8>, super::Logged)], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for w in v {
            seq.serialize_element(&Keyed(w))?;
        }
        seq.end()
    }
}

// A commit record in the log is the commit's sequence number (8 bytes, little endian)
// followed by its `Vec<TableOps>` encoded with postcard.

/// One record of a snapshot: a key, the sequence number of the commit that wrote it, and
/// its content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotEntry {
    #[serde(serialize_with = "bytes::one")]
    pub(crate) key: Vec<u8>,
    pub(crate) version: u64,
    pub(crate) value: Logged,
}

/// A [`TableOps`] read in place from a commit record: the same bytes, borrowed.
#[derive(Debug, Deserialize)]
pub(crate) struct TableOpsRef<'a> {
    pub(crate) table: u64,
    pub(crate) clear: bool,
    pub(crate) counter: u64,
    pub(crate) reset: bool,
    #[serde(borrow)]
    pub(crate) writes: Vec<(&'a [u8], LoggedRef<'a>)>,
}

impl TableOps {
    /// The part, borrowed.
    pub(crate) fn as_ref(&self) -> TableOpsRef<'_> {
        TableOpsRef {
            table: self.table,
            clear: self.clear,
            counter: self.counter,
            reset: self.reset,
            writes: self.writes.iter().map(|(k, v)| (k.as_slice(), v.as_ref())).collect(),
        }
    }
}

impl Logged {
    /// The value, borrowed.
    pub(crate) fn as_ref(&self) -> LoggedRef<'_> {
        match self {
            Logged::Put(b) => LoggedRef::Put(b),
            Logged::Group(bs) => LoggedRef::Group(bs.iter().map(Vec::as_slice).collect()),
            Logged::Delete => LoggedRef::Delete,
        }
    }

    /// How many records the value holds.
    pub(crate) fn records(&self) -> u64 {
        match self {
            Logged::Put(_) => 1,
            Logged::Group(g) => g.len() as u64,
            Logged::Delete => 0,
        }
    }
}

impl TableOpsRef<'_> {
    /// The part, owned.
    pub(crate) fn to_owned(&self) -> TableOps {
        TableOps {
            table: self.table,
            clear: self.clear,
            counter: self.counter,
            reset: self.reset,
            writes: self.writes.iter().map(|(k, v)| (k.to_vec(), v.to_owned())).collect(),
        }
    }
}

/// A [`SnapshotEntry`] read in place from a buffer: the same bytes, borrowed.
#[derive(Debug, Deserialize)]
pub(crate) struct EntryRef<'a> {
    #[serde(borrow)]
    pub(crate) key: &'a [u8],
    pub(crate) version: u64,
    #[serde(borrow)]
    pub(crate) value: LoggedRef<'a>,
}

/// A [`Logged`] read in place.
#[derive(Debug, Deserialize)]
pub(crate) enum LoggedRef<'a> {
    Put(&'a [u8]),
    Group(#[serde(borrow)] Vec<&'a [u8]>),
    Delete,
}

impl EntryRef<'_> {
    /// The entry, owned.
    pub(crate) fn to_owned(&self) -> SnapshotEntry {
        SnapshotEntry { key: self.key.to_vec(), version: self.version, value: self.value.to_owned() }
    }
}

impl LoggedRef<'_> {
    /// The value, owned.
    pub(crate) fn to_owned(&self) -> Logged {
        match self {
            LoggedRef::Put(b) => Logged::Put(b.to_vec()),
            LoggedRef::Group(bs) => Logged::Group(bs.iter().map(|b| b.to_vec()).collect()),
            LoggedRef::Delete => Logged::Delete,
        }
    }
}

/// Appends [`SnapshotEntry`] encodings to a buffer straight from keys and records, with no
/// allocation per entry: the bytes are those postcard gives for the entry itself.
#[derive(Default)]
pub(crate) struct EntryEncoder {
    /// The entries, one after another.
    pub(crate) bytes: Vec<u8>,
    scratch: Vec<u8>,
    /// How many entries were appended.
    pub(crate) count: u64,
    /// Entry boundaries in `bytes`, about every [`CHUNK`] bytes: where a frame may end.
    ends: Vec<usize>,
}

/// About how many bytes of entries go in one frame of a backup.
pub(crate) const CHUNK: usize = 256 << 10;

impl EntryEncoder {
    /// An entry was appended.
    fn done(&mut self) {
        self.count += 1;
        if self.bytes.len() - self.ends.last().copied().unwrap_or(0) >= CHUNK {
            self.ends.push(self.bytes.len());
        }
    }

    /// The bytes appended since the last [`EntryEncoder::clear`], in runs of whole entries
    /// of about [`CHUNK`] bytes.
    pub(crate) fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().copied().chain(std::iter::once(self.bytes.len())).filter_map(move |end| {
            let run = &self.bytes[start..end];
            start = end;
            (!run.is_empty()).then_some(run)
        })
    }

    /// Forgets the bytes (the count stays).
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    fn varint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.bytes.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.bytes.push(n as u8);
    }

    /// Appends `value` encoded, preceded by its length (as postcard writes a `Vec<u8>`).
    fn nested<S: Serialize + ?Sized>(&mut self, value: &S) -> Result<()> {
        self.nested_by(value, postcard::to_extend::<S, Vec<u8>>)
    }

    /// Appends `value` encoded by `extend` (which appends its encoding to a buffer),
    /// preceded by its length.
    fn nested_by<S: ?Sized>(
        &mut self,
        value: &S,
        extend: fn(&S, Vec<u8>) -> postcard::Result<Vec<u8>>,
    ) -> Result<()> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let scratch = extend(value, scratch).map_err(|e| Error::codec("encoding", e))?;
        self.varint(scratch.len() as u64);
        self.bytes.extend_from_slice(&scratch);
        self.scratch = scratch;
        Ok(())
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.varint(bytes.len() as u64);
        self.bytes.extend_from_slice(bytes);
    }

    /// Appends the entry of a key holding one record, encoded by `extend`.
    pub(crate) fn record<K: Serialize, R>(
        &mut self,
        key: &K,
        version: u64,
        rec: &R,
        extend: Extend<R>,
    ) -> Result<()> {
        self.nested(key)?;
        self.varint(version);
        self.varint(0);
        self.nested_by(rec, extend)?;
        self.done();
        Ok(())
    }

    /// Appends the entry of a key holding a group of records, encoded by `extend`.
    pub(crate) fn group<K: Serialize, R>(
        &mut self,
        key: &K,
        version: u64,
        recs: &[R],
        extend: Extend<R>,
    ) -> Result<()> {
        self.nested(key)?;
        self.varint(version);
        self.varint(1);
        self.varint(recs.len() as u64);
        for r in recs {
            self.nested_by(r, extend)?;
        }
        self.done();
        Ok(())
    }

    /// Appends an entry already encoded in parts.
    pub(crate) fn entry(&mut self, key: &[u8], version: u64, value: &Logged) {
        self.raw(key);
        self.varint(version);
        match value {
            Logged::Put(b) => {
                self.varint(0);
                self.raw(b);
            }
            Logged::Group(bs) => {
                self.varint(1);
                self.varint(bs.len() as u64);
                for b in bs {
                    self.raw(b);
                }
            }
            Logged::Delete => self.varint(2),
        }
        self.done();
    }
}

/// The entries of a buffer written by [`EntryEncoder`], read in place.
pub(crate) fn entries_in(mut bytes: &[u8]) -> impl Iterator<Item = Result<EntryRef<'_>>> {
    std::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        match postcard::take_from_bytes::<EntryRef<'_>>(bytes) {
            Ok((e, rest)) => {
                bytes = rest;
                Some(Ok(e))
            }
            Err(e) => {
                bytes = &[];
                Some(Err(Error::codec("decoding an entry", e)))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same types with serde's derived, byte-by-byte encoding of `Vec<u8>`: the format
    /// files written before were in.
    mod plain {
        #[derive(serde::Serialize)]
        pub(super) enum Logged {
            Put(Vec<u8>),
            Group(Vec<Vec<u8>>),
            Delete,
        }
        #[derive(serde::Serialize)]
        pub(super) struct TableOps {
            pub(super) table: u64,
            pub(super) clear: bool,
            pub(super) counter: u64,
            pub(super) reset: bool,
            pub(super) writes: Vec<(Vec<u8>, Logged)>,
        }
        #[derive(serde::Serialize)]
        pub(super) struct SnapshotEntry {
            pub(super) key: Vec<u8>,
            pub(super) version: u64,
            pub(super) value: Logged,
        }
    }

    #[test]
    fn byte_strings_encode_as_the_derived_byte_sequences_did() {
        let long: Vec<u8> = (0..=255).cycle().take(300).collect();
        let ops = vec![TableOps {
            table: 7,
            clear: true,
            counter: 300,
            reset: false,
            writes: vec![
                (vec![1, 2], Logged::Put(long.clone())),
                (vec![], Logged::Group(vec![vec![9], long.clone(), vec![]])),
                (long.clone(), Logged::Delete),
            ],
        }];
        let plain_ops = vec![plain::TableOps {
            table: 7,
            clear: true,
            counter: 300,
            reset: false,
            writes: vec![
                (vec![1, 2], plain::Logged::Put(long.clone())),
                (vec![], plain::Logged::Group(vec![vec![9], long.clone(), vec![]])),
                (long.clone(), plain::Logged::Delete),
            ],
        }];
        assert_eq!(encode(&ops).expect("new"), postcard::to_allocvec(&plain_ops).expect("old"));
        let entry = SnapshotEntry { key: long.clone(), version: 5, value: Logged::Put(vec![3; 200]) };
        let plain_entry =
            plain::SnapshotEntry { key: long.clone(), version: 5, value: plain::Logged::Put(vec![3; 200]) };
        assert_eq!(encode(&entry).expect("new"), postcard::to_allocvec(&plain_entry).expect("old"));
        // And they read back as before.
        let back: SnapshotEntry = postcard::from_bytes(&encode(&entry).expect("encode")).expect("decode");
        assert_eq!(back, entry);
    }

    #[test]
    fn the_encoder_writes_what_postcard_writes_and_entries_read_back_in_place() {
        let mut enc = EntryEncoder::default();
        let mut expected = Vec::new();
        let long = "x".repeat(300);
        for (i, version) in [0u64, 1, 127, 128, 300, u64::MAX].into_iter().enumerate() {
            let key = (i as u32, format!("k{i}"));
            let rec = (key.clone(), long.clone(), version);
            enc.record(&key, version, &rec, postcard::to_extend).expect("encode");
            expected.extend(
                encode(&SnapshotEntry {
                    key: encode(&key).expect("key"),
                    version,
                    value: Logged::Put(encode(&rec).expect("rec")),
                })
                .expect("entry"),
            );
            let group = vec![rec.clone(), rec];
            enc.group(&key, version, &group, postcard::to_extend).expect("group");
            let value = Logged::Group(group.iter().map(|r| encode(r).expect("rec")).collect());
            let entry = SnapshotEntry { key: encode(&key).expect("key"), version, value };
            expected.extend(encode(&entry).expect("entry"));
            enc.entry(&entry.key, entry.version, &entry.value);
            expected.extend(encode(&entry).expect("entry"));
        }
        enc.entry(b"gone", 9, &Logged::Delete);
        expected.extend(
            encode(&SnapshotEntry { key: b"gone".to_vec(), version: 9, value: Logged::Delete }).expect("e"),
        );
        assert_eq!(enc.bytes, expected);
        assert_eq!(enc.count, 19);
        let back: Vec<SnapshotEntry> =
            entries_in(&enc.bytes).map(|e| e.map(|e| e.to_owned())).collect::<Result<_>>().expect("decode");
        let mut rest = &expected[..];
        for e in &back {
            let (want, tail) = postcard::take_from_bytes::<SnapshotEntry>(rest).expect("entry");
            assert_eq!(e, &want);
            rest = tail;
        }
        assert!(rest.is_empty());
        assert!(entries_in(&enc.bytes[..enc.bytes.len() - 1]).any(|e| e.is_err()));
        assert_eq!(enc.chunks().collect::<Vec<_>>(), [&enc.bytes[..]]);
    }

    #[test]
    fn chunks_are_runs_of_whole_entries() {
        let mut enc = EntryEncoder::default();
        let big = "y".repeat(1000);
        for i in 0..2000u32 {
            enc.record(&i, 1, &(i, &big), postcard::to_extend).expect("encode");
        }
        let chunks: Vec<&[u8]> = enc.chunks().collect();
        assert!(chunks.len() >= 7, "{} chunks", chunks.len());
        assert_eq!(chunks.concat(), enc.bytes);
        let n: usize = chunks
            .iter()
            .map(|c| entries_in(c).collect::<Result<Vec<_>>>().expect("whole entries").len())
            .sum();
        assert_eq!(n, 2000);
        enc.clear();
        assert_eq!((enc.chunks().count(), enc.count), (0, 2000));
    }
}
