//! CSV rows and records. Writing: `write_cells` serializes a record's fields into cells
//! (scalars as text, `None` empty, a plain enum variant as its name, anything nested as its
//! JSON text, and a `Some` whose cell would be empty or begin with a quote as its JSON text). Reading: a serde deserializer that gives each field what it asks for, so that
//! the rules follow the field's type, whatever its name (an alias, a newtype, `Cow<str>`):
//!
//! - a string is the cell as it is (an empty cell: the empty string);
//! - an `Option` is `None` when the cell is empty; a cell that starts with a quote and is a
//!   JSON value is that value (so `Some("")`, written `""`, stays apart from `None`); else
//!   the cell read as its inner type;
//! - a number or a boolean is the cell parsed;
//! - a plain enum variant is the cell's text (`Active`); an enum with data, a list, a map or
//!   a struct is the cell read as JSON;
//! - anything the record does not say (`serde_json::Value`) is the cell as JSON when it is
//!   JSON, else the cell as a string.

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::forward_to_deserialize_any;
use serde::ser;
use serde_json::Error;

/// A CSV row: the header's names and the row's cells, in order.
pub(crate) struct Row<'a> {
    pub(crate) headers: &'a csv::StringRecord,
    pub(crate) cells: &'a csv::StringRecord,
}

impl<'de> de::Deserializer<'de> for Row<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_map(Fields { names: self.headers.iter(), cells: self.cells.iter(), cell: None })
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct Fields<'a, N, C> {
    names: N,
    cells: C,
    cell: Option<&'a str>,
}

impl<'de, N: Iterator<Item = &'de str>, C: Iterator<Item = &'de str>> MapAccess<'de> for Fields<'de, N, C> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        match (self.names.next(), self.cells.next()) {
            (Some(name), Some(cell)) => {
                self.cell = Some(cell);
                seed.deserialize(name.into_deserializer()).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(Cell(self.cell.take().unwrap_or_default()))
    }
}

/// One cell, read as the field asks.
struct Cell<'a>(&'a str);

impl<'a> Cell<'a> {
    fn parse<T: std::str::FromStr>(&self, what: &str) -> Result<T, Error> {
        self.0.trim().parse().map_err(|_| de::Error::custom(format!("expected {what}, found `{}`", self.0)))
    }

    /// A float cell. A number out of the type's range is refused (parsing makes it an
    /// infinity, which the text did not say); `inf`, `-inf` and `NaN` are read as written
    /// (a CSV export writes them so).
    fn float<T: std::str::FromStr + Copy>(&self, ty: &str, infinite: fn(T) -> bool) -> Result<T, Error> {
        let v: T = self.parse("a number")?;
        let spelled = self.0.trim().trim_start_matches(['+', '-']).to_ascii_lowercase();
        if infinite(v) && spelled != "inf" && spelled != "infinity" {
            return Err(de::Error::custom(format!("`{}` is out of the range of an {ty}", self.0)));
        }
        Ok(v)
    }

    /// The cell read wholly as JSON by `f` (nothing may follow the value).
    fn json<R>(
        self,
        f: impl FnOnce(&mut serde_json::Deserializer<serde_json::de::StrRead<'a>>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut de = serde_json::Deserializer::from_str(self.0);
        let value = f(&mut de)?;
        de.end()?;
        Ok(value)
    }
}

macro_rules! parsed {
    ($($method:ident $visit:ident $ty:ty, $what:literal;)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.$visit(self.parse::<$ty>($what)?)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Cell<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.0.is_empty() {
            return visitor.visit_none();
        }
        match serde_json::from_str::<serde_json::Value>(self.0) {
            Ok(v) => de::Deserializer::deserialize_any(v, visitor),
            Err(_) => visitor.visit_borrowed_str(self.0),
        }
    }

    parsed! {
        deserialize_bool visit_bool bool, "true or false";
        deserialize_i8 visit_i8 i8, "an integer";
        deserialize_i16 visit_i16 i16, "an integer";
        deserialize_i32 visit_i32 i32, "an integer";
        deserialize_i64 visit_i64 i64, "an integer";
        deserialize_i128 visit_i128 i128, "an integer";
        deserialize_u8 visit_u8 u8, "a non-negative integer";
        deserialize_u16 visit_u16 u16, "a non-negative integer";
        deserialize_u32 visit_u32 u32, "a non-negative integer";
        deserialize_u64 visit_u64 u64, "a non-negative integer";
        deserialize_u128 visit_u128 u128, "a non-negative integer";
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f32(self.float("f32", f32::is_infinite)?)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f64(self.float("f64", f64::is_infinite)?)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // As it is, not trimmed: a space or a tab is a character.
        let mut chars = self.0.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(de::Error::custom(format!("expected one character, found `{}`", self.0))),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.0.is_empty() {
            return visitor.visit_none();
        }
        // A value written as JSON text because it would otherwise be empty or begin with a
        // quote (`""` for `Some("")`); a cell that is not such JSON is read as it is.
        if self.0.starts_with('"') && serde_json::from_str::<de::IgnoredAny>(self.0).is_ok() {
            return self.json(|de| visitor.visit_some(de));
        }
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.0.is_empty() {
            visitor.visit_unit()
        } else {
            self.json(|de| de::Deserializer::deserialize_unit(de, visitor))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if self.0.is_empty() {
            visitor.visit_unit()
        } else {
            self.json(|de| de::Deserializer::deserialize_unit_struct(de, name, visitor))
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // A variant with data is JSON (`{"Banned":{..}}`); a plain one is its name.
        if self.0.starts_with('{') || self.0.starts_with('"') {
            self.json(|de| de::Deserializer::deserialize_enum(de, name, variants, visitor))
        } else {
            let plain: de::value::StrDeserializer<'_, Error> = self.0.into_deserializer();
            plain.deserialize_enum(name, variants, visitor)
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.json(|de| de::Deserializer::deserialize_bytes(de, visitor))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.json(|de| de::Deserializer::deserialize_byte_buf(de, visitor))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.json(|de| de::Deserializer::deserialize_seq(de, visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.json(|de| de::Deserializer::deserialize_tuple(de, len, visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.json(|de| de::Deserializer::deserialize_tuple_struct(de, name, len, visitor))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.json(|de| de::Deserializer::deserialize_map(de, visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.json(|de| de::Deserializer::deserialize_struct(de, name, fields, visitor))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

/// Methods of a `Serializer` that refuse every scalar with `$err()`.
macro_rules! refuse_scalars {
    ($err:ident) => {
        fn serialize_bool(self, _: bool) -> Result<(), Error> {
            Err($err())
        }
        fn serialize_i8(self, _: i8) -> Result<(), Error> {
            Err($err())
        }
        fn serialize_i16(self, _: i16) -> Result<(), Error> {
            Err($err())
        }
        fn serialize_i32(self, _: i32) -> Result<(), Error> {
            Err($err())
        }
        fn serialize_i64(self, _: i64) -> Result<(), Error> {
            Err($err())
        }
        fn serialize_u8(self, _: u8) -> Result<(), Error> {
            Err($err())
        }
        fn serialize_u16(self, _: u16) -> Result<(), Error> {
            Err($err())
        }
        fn serialize_u32(self, _: u32) -> Result<(), Error> {
            Err($err())
        }
        fn serialize_u64(self, _: u64) -> Result<(), Error> {
            Err($err())
        }
        fn serialize_f32(self, _: f32) -> Result<(), Error> {
            Err($err())
        }
        fn serialize_f64(self, _: f64) -> Result<(), Error> {
            Err($err())
        }
        fn serialize_char(self, _: char) -> Result<(), Error> {
            Err($err())
        }
        fn serialize_str(self, _: &str) -> Result<(), Error> {
            Err($err())
        }
        fn serialize_bytes(self, _: &[u8]) -> Result<(), Error> {
            Err($err())
        }
        fn serialize_none(self) -> Result<(), Error> {
            Err($err())
        }
        fn serialize_some<V: ser::Serialize + ?Sized>(self, _: &V) -> Result<(), Error> {
            Err($err())
        }
        fn serialize_unit(self) -> Result<(), Error> {
            Err($err())
        }
        fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
            Err($err())
        }
        fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Error> {
            Err($err())
        }
    };
}

/// Methods of a `Serializer` that refuse every compound value but a struct with `$err()`.
macro_rules! refuse_compound {
    ($err:ident) => {
        fn serialize_newtype_variant<V: ser::Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &V,
        ) -> Result<(), Error> {
            Err($err())
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
            Err($err())
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
            Err($err())
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, Error> {
            Err($err())
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, Error> {
            Err($err())
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
            Err($err())
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, Error> {
            Err($err())
        }
    };
}

/// Writes a record's top-level fields into `cells`, one per name in `names` (a field serde
/// skips stays empty). Fails on a field the names do not list (a serde rename or flatten).
pub(crate) fn write_cells<T: serde::Serialize>(
    rec: &T,
    names: &[&str],
    cells: &mut [String],
) -> Result<(), Error> {
    for c in cells.iter_mut() {
        c.clear();
    }
    rec.serialize(RowSer { names, cells, next: 0 })
}

fn not_a_struct() -> Error {
    ser::Error::custom("a record must serialize as a struct of named fields")
}

struct RowSer<'a> {
    names: &'a [&'a str],
    cells: &'a mut [String],
    /// Where the field after the last one written is in `names`.
    next: usize,
}

impl ser::SerializeStruct for RowSer<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<V: ser::Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &V,
    ) -> Result<(), Error> {
        // Fields come in the struct's order: the next name is almost always the one.
        let at = match self.names.get(self.next) {
            Some(n) if *n == key => Some(self.next),
            _ => self.names.iter().position(|n| *n == key),
        };
        let Some(at) = at else {
            return Err(ser::Error::custom(format!(
                "the record serializes a field `{key}` the struct does not name (a serde rename or flatten): CSV columns are the struct's field names; export as JSON instead"
            )));
        };
        self.next = at + 1;
        let cell = &mut self.cells[at];
        match value.serialize(CellSer(cell)) {
            Ok(()) => {}
            Err(e) if e.to_string().starts_with(UNTELLABLE) => {
                return Err(ser::Error::custom(format!("field `{key}`: {e}")));
            }
            Err(_) => {
                // Something nested: its JSON text (which has no NaN or infinity).
                if let Some(path) = crate::base::finite::first_non_finite(value) {
                    return Err(ser::Error::custom(format!(
                        "field `{key}` holds a NaN or infinite float at `{path}`, which the JSON text of a nested \
                         cell cannot hold: back the table up instead"
                    )));
                }
                cell.clear();
                cell.push_str(&serde_json::to_string(value)?);
            }
        }
        Ok(())
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

impl ser::Serializer for RowSer<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = ser::Impossible<(), Error>;
    type SerializeTuple = ser::Impossible<(), Error>;
    type SerializeTupleStruct = ser::Impossible<(), Error>;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = ser::Impossible<(), Error>;
    type SerializeStruct = Self;
    type SerializeStructVariant = ser::Impossible<(), Error>;

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }

    refuse_scalars!(not_a_struct);
    fn serialize_newtype_struct<V: ser::Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &V,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    refuse_compound!(not_a_struct);
}

/// One field's value as a cell: scalars as text, `None` and units empty, a plain variant
/// as its name; anything nested fails here, and the caller writes its JSON text instead.
struct CellSer<'a>(&'a mut String);

fn nested() -> Error {
    ser::Error::custom("nested")
}

/// How the error of a value that CSV cannot write apart from another begins.
const UNTELLABLE: &str = "CSV cannot tell this value apart";

/// Appends `v` in decimal (what `Display` writes, without the formatting machinery).
fn push_decimal(out: &mut String, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|d| char::from(*d)));
}

macro_rules! shown {
    ($($method:ident $ty:ty;)*) => {
        $(fn $method(self, v: $ty) -> Result<(), Error> {
            use std::fmt::Write as _;
            let _ = write!(self.0, "{v}");
            Ok(())
        })*
    };
}

impl ser::Serializer for CellSer<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = ser::Impossible<(), Error>;
    type SerializeTuple = ser::Impossible<(), Error>;
    type SerializeTupleStruct = ser::Impossible<(), Error>;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = ser::Impossible<(), Error>;
    type SerializeStruct = ser::Impossible<(), Error>;
    type SerializeStructVariant = ser::Impossible<(), Error>;

    shown! { serialize_bool bool; serialize_i128 i128; serialize_u128 u128; serialize_char char; }

    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        if v < 0 {
            self.0.push('-');
        }
        push_decimal(self.0, v.unsigned_abs());
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        push_decimal(self.0, v);
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.0.push_str(v);
        Ok(())
    }

    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        use std::fmt::Write as _;
        // `{:?}`: the shortest text that reads back the same (`1.0`, `1e100`, `NaN`).
        let _ = write!(self.0, "{v:?}");
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        use std::fmt::Write as _;
        let _ = write!(self.0, "{v:?}");
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Error> {
        Err(nested())
    }
    fn serialize_none(self) -> Result<(), Error> {
        Ok(())
    }
    fn serialize_some<V: ser::Serialize + ?Sized>(self, value: &V) -> Result<(), Error> {
        let start = self.0.len();
        value.serialize(CellSer(&mut *self.0))?;
        // An empty cell reads back as `None`, and one that starts with a quote as a quoted
        // value: such a value is written as its JSON text (`Some("")` as `""`).
        if self.0.len() == start || self.0[start..].starts_with('"') {
            let json = serde_json::to_string(value)?;
            if json == "null" {
                return Err(ser::Error::custom(format!(
                    "{UNTELLABLE}: a `Some` whose value is `None` or a unit writes the same cell as `None`; export as JSON instead"
                )));
            }
            self.0.truncate(start);
            self.0.push_str(&json);
        }
        Ok(())
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<(), Error> {
        self.0.push_str(variant);
        Ok(())
    }
    fn serialize_newtype_struct<V: ser::Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &V,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    refuse_compound!(nested);
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Err(nested())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::borrow::Cow;
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Email(String);

    type Name = String;

    #[derive(Debug, PartialEq, Deserialize)]
    enum Status {
        Active,
        Banned { reason: String },
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Rec<'a> {
        id: u64,
        name: Name,
        email: Email,
        nick: Option<String>,
        age: Option<u32>,
        note: Cow<'a, str>,
        score: f64,
        ok: bool,
        tags: Vec<String>,
        status: Status,
        other: Status,
        extra: BTreeMap<String, i32>,
        any: serde_json::Value,
        letter: char,
    }

    fn read<'a, T: Deserialize<'a>>(
        headers: &'a csv::StringRecord,
        cells: &'a csv::StringRecord,
    ) -> Result<T, Error> {
        T::deserialize(Row { headers, cells })
    }

    #[test]
    fn integers_are_written_as_display_writes_them() {
        use serde::Serialize as _;
        let cell = |v: &dyn Fn(CellSer<'_>) -> Result<(), Error>| {
            let mut s = String::new();
            v(CellSer(&mut s)).expect("cell");
            s
        };
        for v in [0, 1, 9, 10, 99, 100, 12_345, i64::MAX, -1, -10, -987_654, i64::MIN] {
            assert_eq!(cell(&|c| v.serialize(c)), v.to_string());
        }
        for v in [0, 7, 10, 1_000_000, u64::MAX] {
            assert_eq!(cell(&|c| v.serialize(c)), v.to_string());
        }
        assert_eq!(cell(&|c| i8::MIN.serialize(c)), "-128");
        assert_eq!(cell(&|c| u32::MAX.serialize(c)), "4294967295");
        assert_eq!(cell(&|c| (-32768i16).serialize(c)), "-32768");
    }

    #[test]
    fn each_field_reads_its_cell_as_its_type_asks() {
        let headers = csv::StringRecord::from(vec![
            "id", "name", "email", "nick", "age", "note", "score", "ok", "tags", "status", "other", "extra",
            "any", "letter",
        ]);
        let cells = csv::StringRecord::from(vec![
            "7",
            "123",
            "true",
            "",
            "",
            "null",
            "1.5",
            "false",
            "[\"a\"]",
            "Active",
            "{\"Banned\":{\"reason\":\"spam\"}}",
            "{\"k\":1}",
            "[1,2]",
            "é",
        ]);
        let rec: Rec<'_> = read(&headers, &cells).expect("row");
        assert_eq!(rec.name, "123", "a string alias holding digits stays a string");
        assert_eq!(rec.email, Email("true".into()), "a newtype of a string too");
        assert_eq!((rec.nick, rec.age), (None, None));
        assert_eq!(rec.note, "null");
        assert_eq!(rec.tags, ["a"]);
        assert_eq!((rec.status, rec.other), (Status::Active, Status::Banned { reason: "spam".into() }));
        assert_eq!(rec.extra.get("k"), Some(&1));
        assert_eq!(rec.any, serde_json::json!([1, 2]));
        assert_eq!(rec.letter, 'é');

        let bad = csv::StringRecord::from(vec![
            "x", "n", "e", "", "", "", "1", "true", "[]", "Active", "Active", "{}", "", "c",
        ]);
        let err = read::<Rec<'_>>(&headers, &bad).expect_err("id is not a number");
        assert!(err.to_string().contains("expected a non-negative integer, found `x`"), "{err}");
    }
}
