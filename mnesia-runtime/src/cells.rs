//! Reading a CSV row as a record: a serde deserializer that gives each field what it asks
//! for, so that the rules follow the field's type, whatever its name (an alias, a newtype,
//! `Cow<str>`):
//!
//! - a string is the cell as it is (an empty cell: the empty string);
//! - an `Option` is `None` when the cell is empty, else the cell read as its inner type;
//! - a number or a boolean is the cell parsed;
//! - a plain enum variant is the cell's text (`Active`); an enum with data, a list, a map or
//!   a struct is the cell read as JSON;
//! - anything the record does not say (`serde_json::Value`) is the cell as JSON when it is
//!   JSON, else the cell as a string.

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::forward_to_deserialize_any;
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
        deserialize_f32 visit_f32 f32, "a number";
        deserialize_f64 visit_f64 f64, "a number";
        deserialize_char visit_char char, "one character";
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
        if self.0.is_empty() { visitor.visit_none() } else { visitor.visit_some(self) }
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
