//! Warming a record's heap data before it is read: records visited in hash order have
//! their strings and buffers all over the heap, and serializing one waits on memory at
//! every field. [`Ahead`] asks the CPU to start loading the records a few places ahead,
//! so that those waits overlap.

use serde::Serialize;
use serde::ser::{self, Serializer};

/// How many records ahead the heap data is requested.
const DISTANCE: usize = 8;

/// Visits items in order, calling `warm_one` on each [`DISTANCE`] items before it is
/// handed to `f`.
pub(crate) fn each_warmed<'a, X: 'a>(
    items: impl Iterator<Item = &'a X>,
    warm_one: impl Fn(&X),
    mut f: impl FnMut(&'a X) -> crate::error::Result<()>,
) -> crate::error::Result<()> {
    let mut ring: [Option<&'a X>; DISTANCE] = [None; DISTANCE];
    let mut next = 0;
    for item in items {
        warm_one(item);
        if let Some(due) = ring[next].replace(item) {
            f(due)?;
        }
        next = (next + 1) % DISTANCE;
    }
    // What is left, oldest first.
    for k in 0..DISTANCE {
        if let Some(due) = ring[(next + k) % DISTANCE].take() {
            f(due)?;
        }
    }
    Ok(())
}

/// Asks the CPU to start loading what `rec`'s strings and byte buffers point to.
pub(crate) fn warm<R: Serialize + ?Sized>(rec: &R) {
    let _ = rec.serialize(Warm);
}

/// Asks the CPU to bring `bytes` into cache (a hint).
#[allow(unsafe_code)]
fn touch(bytes: &[u8]) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let p = bytes.as_ptr();
        // SAFETY: a prefetch is a hint that never faults and reads nothing into the
        // program, whatever the address; SSE, which provides it, is part of every x86_64
        // target.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p.cast());
            if bytes.len() > 64 {
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64).cast());
            }
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
    let _ = bytes;
}

/// A serializer that writes nothing: it only requests the heap data of strings and bytes.
struct Warm;

#[derive(Debug)]
struct Done;

impl std::fmt::Display for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("done")
    }
}

impl std::error::Error for Done {}

impl ser::Error for Done {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Done
    }
}

macro_rules! ignore {
    ($($name:ident: $ty:ty),* $(,)?) => {
        $(fn $name(self, _: $ty) -> Result<(), Done> { Ok(()) })*
    };
}

impl Serializer for Warm {
    type Ok = ();
    type Error = Done;
    type SerializeSeq = Warm;
    type SerializeTuple = Warm;
    type SerializeTupleStruct = Warm;
    type SerializeTupleVariant = Warm;
    type SerializeMap = Warm;
    type SerializeStruct = Warm;
    type SerializeStructVariant = Warm;

    ignore!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_f32: f32,
        serialize_f64: f64, serialize_char: char, serialize_unit_struct: &'static str);

    fn serialize_str(self, v: &str) -> Result<(), Done> {
        touch(v.as_bytes());
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Done> {
        touch(v);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Done> {
        Ok(())
    }

    fn serialize_some<V: Serialize + ?Sized>(self, value: &V) -> Result<(), Done> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Done> {
        Ok(())
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Done> {
        Ok(())
    }

    fn serialize_newtype_struct<V: Serialize + ?Sized>(self, _: &'static str, value: &V) -> Result<(), Done> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<V: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &V,
    ) -> Result<(), Done> {
        value.serialize(self)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Warm, Done> {
        Ok(Warm)
    }

    fn serialize_tuple(self, _: usize) -> Result<Warm, Done> {
        Ok(Warm)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Warm, Done> {
        Ok(Warm)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Warm, Done> {
        Ok(Warm)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Warm, Done> {
        Ok(Warm)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Warm, Done> {
        Ok(Warm)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Warm, Done> {
        Ok(Warm)
    }

    fn collect_str<V: std::fmt::Display + ?Sized>(self, _: &V) -> Result<(), Done> {
        // Formatting would cost more than the wait it could save.
        Ok(())
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

macro_rules! compound {
    ($($tr:ident { $($method:ident($($arg:ty),*)),* })*) => {$(
        impl ser::$tr for Warm {
            type Ok = ();
            type Error = Done;
            $(fn $method<V: Serialize + ?Sized>(&mut self, $(_: $arg,)* value: &V) -> Result<(), Done> {
                value.serialize(Warm)
            })*
            fn end(self) -> Result<(), Done> {
                Ok(())
            }
        }
    )*};
}

compound! {
    SerializeSeq { serialize_element() }
    SerializeTuple { serialize_element() }
    SerializeTupleStruct { serialize_field() }
    SerializeTupleVariant { serialize_field() }
    SerializeStruct { serialize_field(&'static str) }
    SerializeStructVariant { serialize_field(&'static str) }
}

impl ser::SerializeMap for Warm {
    type Ok = ();
    type Error = Done;

    fn serialize_key<V: Serialize + ?Sized>(&mut self, key: &V) -> Result<(), Done> {
        key.serialize(Warm)
    }

    fn serialize_value<V: Serialize + ?Sized>(&mut self, value: &V) -> Result<(), Done> {
        value.serialize(Warm)
    }

    fn end(self) -> Result<(), Done> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_visited_once_in_order_and_an_error_stops_the_visit() {
        for n in 0..3 * DISTANCE {
            let items: Vec<String> = (0..n).map(|i| format!("item {i}")).collect();
            let mut seen = Vec::new();
            each_warmed(items.iter(), warm, |s| {
                seen.push(s.clone());
                Ok(())
            })
            .expect("visit");
            assert_eq!(seen, items, "{n} items");
        }
        let items: Vec<u32> = (0..40).collect();
        let mut seen = 0;
        let stopped = each_warmed(items.iter(), warm, |i| {
            seen += 1;
            if *i == 20 { Err(crate::error::Error::Invalid("stop".into())) } else { Ok(()) }
        });
        assert!(stopped.is_err());
        assert_eq!(seen, 21);
    }

    #[test]
    fn warming_walks_any_shape_without_failing() {
        #[derive(Serialize)]
        enum Shape {
            Unit,
            New(String),
            Tuple(u8, Vec<u8>),
            Struct { name: String },
        }
        #[derive(Serialize)]
        struct Rec {
            id: u64,
            name: Option<String>,
            tags: Vec<String>,
            map: std::collections::BTreeMap<String, (i32, f64)>,
            shapes: Vec<Shape>,
            when: std::time::SystemTime,
            bytes: Vec<u8>,
        }
        let rec = Rec {
            id: 1,
            name: Some("x".repeat(200)),
            tags: vec!["a".into(), String::new()],
            map: [("k".to_owned(), (1, 2.5))].into(),
            shapes: vec![
                Shape::Unit,
                Shape::New("n".into()),
                Shape::Tuple(1, vec![2]),
                Shape::Struct { name: "s".into() },
            ],
            when: std::time::SystemTime::now(),
            bytes: vec![0; 100],
        };
        assert!(rec.serialize(Warm).is_ok());
        warm(&rec);
    }
}
