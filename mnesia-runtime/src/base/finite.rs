//! A check that a value holds no NaN or infinite float, for what is written as JSON (JSON
//! exports, nested CSV cells): serde_json writes such a float as `null`, which reads back
//! as no float at all, so the value is refused instead of written wrong.

use serde::ser::{self, Serialize};

/// Why the probe stopped: a float JSON cannot hold, or an error of the value's own
/// `Serialize` (not this check's to judge: serde_json reports it).
#[derive(Debug)]
enum Stop {
    NotFinite,
    Other,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::NotFinite => f.write_str("a NaN or infinite float, which JSON cannot hold"),
            Stop::Other => f.write_str("the value's own serialization failed"),
        }
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Stop::Other
    }
}

/// The path of the first NaN or infinite float in `value` (`address.lat`, `tags[2]`; inside
/// an `Option`, the option's), if any.
pub(crate) fn first_non_finite<V: Serialize + ?Sized>(value: &V) -> Option<String> {
    match serde_path_to_error::serialize(value, Probe) {
        Err(e) if matches!(e.inner(), Stop::NotFinite) => Some(e.path().to_string()),
        _ => None,
    }
}

/// A serializer that writes nothing and fails at the first non-finite float.
struct Probe;

type Done = Result<(), Stop>;

macro_rules! accept {
    ($($name:ident: $ty:ty),* $(,)?) => {
        $(fn $name(self, _: $ty) -> Done { Ok(()) })*
    };
}

impl ser::Serializer for Probe {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Probe;
    type SerializeTuple = Probe;
    type SerializeTupleStruct = Probe;
    type SerializeTupleVariant = Probe;
    type SerializeMap = Probe;
    type SerializeStruct = Probe;
    type SerializeStructVariant = Probe;

    accept! {
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_char: char,
        serialize_str: &str, serialize_bytes: &[u8], serialize_unit_struct: &'static str,
    }

    fn serialize_f32(self, v: f32) -> Done {
        if v.is_finite() { Ok(()) } else { Err(Stop::NotFinite) }
    }
    fn serialize_f64(self, v: f64) -> Done {
        if v.is_finite() { Ok(()) } else { Err(Stop::NotFinite) }
    }
    fn serialize_none(self) -> Done {
        Ok(())
    }
    fn collect_str<T: std::fmt::Display + ?Sized>(self, _: &T) -> Done {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Done {
        v.serialize(Probe)
    }
    fn serialize_unit(self) -> Done {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Done {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Done {
        v.serialize(Probe)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        v: &T,
    ) -> Done {
        v.serialize(Probe)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Probe, Stop> {
        Ok(Probe)
    }
    fn serialize_tuple(self, _: usize) -> Result<Probe, Stop> {
        Ok(Probe)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Probe, Stop> {
        Ok(Probe)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Probe, Stop> {
        Ok(Probe)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Probe, Stop> {
        Ok(Probe)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Probe, Stop> {
        Ok(Probe)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Probe, Stop> {
        Ok(Probe)
    }
}

/// The compound forms: each element, key, value or field probed in turn.
macro_rules! compound {
    ($($trait:ident :: $method:ident),* $(,)?) => {
        $(impl ser::$trait for Probe {
            type Ok = ();
            type Error = Stop;
            fn $method<T: Serialize + ?Sized>(&mut self, v: &T) -> Done {
                v.serialize(Probe)
            }
            fn end(self) -> Done {
                Ok(())
            }
        })*
    };
}

compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl ser::SerializeMap for Probe {
    type Ok = ();
    type Error = Stop;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Done {
        k.serialize(Probe)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Done {
        v.serialize(Probe)
    }
    fn end(self) -> Done {
        Ok(())
    }
}

/// The struct forms: each field probed in turn.
macro_rules! fields {
    ($($trait:ident),* $(,)?) => {
        $(impl ser::$trait for Probe {
            type Ok = ();
            type Error = Stop;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, v: &T) -> Done {
                v.serialize(Probe)
            }
            fn end(self) -> Done {
                Ok(())
            }
        })*
    };
}

fields!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::first_non_finite;

    #[derive(serde::Serialize)]
    struct Point {
        x: f64,
        tags: Vec<(String, f32)>,
        inner: Option<Box<Point>>,
    }

    #[test]
    fn finds_the_first_non_finite_float_and_its_path() {
        let ok = Point { x: 1.5, tags: vec![("a".into(), 0.0)], inner: None };
        assert_eq!(first_non_finite(&ok), None);
        let nan = Point { x: 1.0, tags: vec![("a".into(), 1.0), ("b".into(), f32::NAN)], inner: None };
        assert_eq!(first_non_finite(&nan).as_deref(), Some("tags[1][1]"));
        let deep = Point {
            x: 0.0,
            tags: Vec::new(),
            inner: Some(Box::new(Point { x: f64::INFINITY, tags: Vec::new(), inner: None })),
        };
        assert_eq!(first_non_finite(&deep).as_deref(), Some("inner"));
    }
}
