//! The serde format of a table's record type, traced once from the type (with the
//! `serde-reflection` crate) and kept in the schema file, so that tools read a directory's
//! records without the program's Rust types: [`decode`] turns a record's postcard bytes
//! into the JSON value `serde_json` would give for the record.
//!
//! A type whose format cannot be traced (a hand-written `Deserialize` that rejects the
//! tracer's sample values, `#[serde(flatten)]`, untagged enums, ..) has no stored format;
//! everything but the tools works as before.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use serde_reflection::{
    ContainerFormat, Format, Named, Registry, Samples, Tracer, TracerConfig, VariantFormat,
};

use crate::error::{Error, Result};

/// The serde format of a record type: its root, and every named type it contains.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecordFormat {
    pub(crate) root: Format,
    pub(crate) registry: Registry,
}

/// How many rounds of tracing a type gets to find every variant of the enums it contains.
const TRACE_ROUNDS: usize = 16;
/// How many times a round traces the type (each pass finds one more variant).
const TRACE_PASSES: usize = 1024;
/// How deep a decoded value may nest (a bound for damaged input and recursive types).
const MAX_DEPTH: usize = 128;
/// Values a record may decode to, per byte and at least (see `Reader::budget`).
const VALUES_PER_BYTE: usize = 16;
const VALUES_AT_LEAST: usize = 4096;

impl RecordFormat {
    /// Traces `T`'s format; `None` if it cannot be traced.
    pub(crate) fn of<T: DeserializeOwned>() -> Option<RecordFormat> {
        // The tracer runs the type's own `Deserialize` on sample values: a panic there is
        // not the database's to propagate.
        std::panic::catch_unwind(trace::<T>).ok().flatten()
    }

    /// The format as the schema file keeps it.
    pub(crate) fn into_stored(self) -> Option<Value> {
        serde_json::to_value(self).ok()
    }

    /// A format kept by the schema file.
    pub(crate) fn from_stored(stored: &Value) -> Result<RecordFormat> {
        RecordFormat::deserialize(stored).map_err(|e| Error::codec("a stored record format", e))
    }
}

fn trace<T: DeserializeOwned>() -> Option<RecordFormat> {
    trace_with(&|tracer, samples| tracer.trace_type_once::<T>(samples).ok().map(|(format, _)| format))
}

/// [`trace`]'s rounds, compiled once: `once` traces the type one more time.
fn trace_with(once: &dyn Fn(&mut Tracer, &Samples) -> Option<Format>) -> Option<RecordFormat> {
    // The enums nested in the traced type: each needs its "still incomplete" mark cleared
    // between passes so that the next pass explores its next variant (the tracer does this
    // itself only for the traced type). Their names are learnt from the error of a round that missed some.
    let mut enums: Vec<String> = Vec::new();
    let samples = Samples::new();
    for _ in 0..TRACE_ROUNDS {
        let mut tracer = Tracer::new(TracerConfig::default());
        let mut root = None;
        for _ in 0..TRACE_PASSES {
            root = Some(once(&mut tracer, &samples)?);
            let mut more = false;
            for name in &enums {
                more |= tracer.check_incomplete_enum(name).is_some();
            }
            if !more {
                break;
            }
        }
        match tracer.registry() {
            Ok(registry) => return Some(RecordFormat { root: root?, registry }),
            Err(serde_reflection::Error::MissingVariants(missing)) => {
                let known = enums.len();
                enums.extend(missing.into_iter().filter(|m| !enums.contains(m)).collect::<Vec<_>>());
                if enums.len() == known {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
    None
}

impl RecordFormat {
    /// Whether records of the two formats have the same bytes for the same values: the same
    /// shape, field and variant names included, whatever the types are called.
    pub(crate) fn same_shape(&self, other: &RecordFormat) -> bool {
        let mut seen = Vec::new();
        same(&self.root, &self.registry, &other.root, &other.registry, &mut seen)
    }
}

/// Compares two formats, following type names into their registries (`seen`: pairs of
/// names already being compared, so that recursive types end).
fn same(a: &Format, ra: &Registry, b: &Format, rb: &Registry, seen: &mut Vec<(String, String)>) -> bool {
    use Format as F;
    match (a, b) {
        (F::TypeName(x), F::TypeName(y)) => {
            let pair = (x.clone(), y.clone());
            if seen.contains(&pair) {
                return true;
            }
            seen.push(pair);
            match (ra.get(x), rb.get(y)) {
                (Some(cx), Some(cy)) => same_container(cx, ra, cy, rb, seen),
                _ => false,
            }
        }
        (F::Option(x), F::Option(y)) | (F::Seq(x), F::Seq(y)) => same(x, ra, y, rb, seen),
        (F::Map { key: kx, value: vx }, F::Map { key: ky, value: vy }) => {
            same(kx, ra, ky, rb, seen) && same(vx, ra, vy, rb, seen)
        }
        (F::Tuple(xs), F::Tuple(ys)) => all_same(xs, ra, ys, rb, seen),
        (F::TupleArray { content: x, size: n }, F::TupleArray { content: y, size: m }) => {
            n == m && same(x, ra, y, rb, seen)
        }
        (F::Variable(_), _) | (_, F::Variable(_)) => false,
        _ => a == b,
    }
}

fn all_same(
    xs: &[Format],
    ra: &Registry,
    ys: &[Format],
    rb: &Registry,
    seen: &mut Vec<(String, String)>,
) -> bool {
    xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same(x, ra, y, rb, seen))
}

fn same_fields(
    xs: &[Named<Format>],
    ra: &Registry,
    ys: &[Named<Format>],
    rb: &Registry,
    seen: &mut Vec<(String, String)>,
) -> bool {
    xs.len() == ys.len()
        && xs.iter().zip(ys).all(|(x, y)| x.name == y.name && same(&x.value, ra, &y.value, rb, seen))
}

fn same_container(
    a: &ContainerFormat,
    ra: &Registry,
    b: &ContainerFormat,
    rb: &Registry,
    seen: &mut Vec<(String, String)>,
) -> bool {
    use ContainerFormat as C;
    match (a, b) {
        (C::UnitStruct, C::UnitStruct) => true,
        (C::NewTypeStruct(x), C::NewTypeStruct(y)) => same(x, ra, y, rb, seen),
        (C::TupleStruct(xs), C::TupleStruct(ys)) => all_same(xs, ra, ys, rb, seen),
        (C::Struct(xs), C::Struct(ys)) => same_fields(xs, ra, ys, rb, seen),
        (C::Enum(xs), C::Enum(ys)) => {
            xs.len() == ys.len()
                && xs.iter().zip(ys).all(|((i, x), (j, y))| {
                    i == j
                        && x.name == y.name
                        && match (&x.value, &y.value) {
                            (VariantFormat::Unit, VariantFormat::Unit) => true,
                            (VariantFormat::NewType(p), VariantFormat::NewType(q)) => {
                                same(p, ra, q, rb, seen)
                            }
                            (VariantFormat::Tuple(p), VariantFormat::Tuple(q)) => {
                                all_same(p, ra, q, rb, seen)
                            }
                            (VariantFormat::Struct(p), VariantFormat::Struct(q)) => {
                                same_fields(p, ra, q, rb, seen)
                            }
                            _ => false,
                        }
                })
        }
        _ => false,
    }
}

/// Decodes one record's postcard bytes by `format`, as the JSON value serde_json gives
/// for it. Damaged bytes are an error, never a panic or a huge allocation.
pub(crate) fn decode(bytes: &[u8], format: &RecordFormat) -> Result<Value> {
    decode_as(bytes, &format.root, format)
}

impl RecordFormat {
    /// The record's fields, in order (the record is a struct with named fields).
    pub(crate) fn fields(&self) -> Result<&[Named<Format>]> {
        let not_struct =
            || Error::Invalid("the stored record format is not a struct with named fields".into());
        let Format::TypeName(root) = &self.root else { return Err(not_struct()) };
        match self.registry.get(root) {
            Some(ContainerFormat::Struct(fields)) => Ok(fields),
            _ => Err(not_struct()),
        }
    }

    /// The format of the record's field named `name` (the key's, say).
    pub(crate) fn field(&self, name: &str) -> Result<&Format> {
        self.fields()?
            .iter()
            .find(|f| f.name == name)
            .map(|f| &f.value)
            .ok_or_else(|| Error::Invalid(format!("the stored record format has no field `{name}`")))
    }
}

/// Decodes `bytes` as a value of `root`, a format within `format` (a field's: the key's).
pub(crate) fn decode_as(bytes: &[u8], root: &Format, format: &RecordFormat) -> Result<Value> {
    let budget = bytes.len().saturating_mul(VALUES_PER_BYTE).saturating_add(VALUES_AT_LEAST);
    let mut r = Reader { bytes, at: 0, registry: &format.registry, budget };
    let value = r.value(root, 0)?;
    if r.at != bytes.len() {
        return Err(r.error("bytes left over after the record"));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    registry: &'a BTreeMap<String, ContainerFormat>,
    /// Values still allowed: values that take no bytes (units, fixed-size arrays of them)
    /// could otherwise make a few bytes decode to billions of values.
    budget: usize,
}

impl Reader<'_> {
    fn error(&self, what: &str) -> Error {
        Error::codec_msg(format!("a record does not match its stored format at byte {}: {what}", self.at))
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| self.error("cut short"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    /// An unsigned LEB128 varint of at most `bits` bits (postcard's integers past 8 bits).
    fn varint(&mut self, bits: u32) -> Result<u128> {
        let mut out: u128 = 0;
        for i in 0..bits.div_ceil(7) {
            let b = self.byte()?;
            let part = u128::from(b & 0x7f);
            let shift = 7 * i;
            if (part << shift) >> shift != part {
                return Err(self.error("a number too large for its type"));
            }
            out |= part << shift;
            if b & 0x80 == 0 {
                if bits < 128 && out >> bits != 0 {
                    return Err(self.error("a number too large for its type"));
                }
                return Ok(out);
            }
        }
        Err(self.error("a number too long for its type"))
    }

    fn signed(&mut self, bits: u32) -> Result<i128> {
        let z = self.varint(bits)?;
        // Zigzag: 0, -1, 1, -2, ..
        Ok(((z >> 1) as i128) ^ -((z & 1) as i128))
    }

    /// A length: never more than the bytes left, so a damaged length allocates nothing.
    fn len(&mut self) -> Result<usize> {
        let n = usize::try_from(self.varint(64)?).map_err(|_| self.error("a length too large"))?;
        if n > self.bytes.len() - self.at {
            return Err(self.error("a length past the end"));
        }
        Ok(n)
    }

    fn str(&mut self) -> Result<String> {
        let n = self.len()?;
        let b = self.take(n)?;
        std::str::from_utf8(b).map(str::to_owned).map_err(|_| self.error("a string that is not UTF-8"))
    }

    fn value(&mut self, format: &Format, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deep"));
        }
        self.budget =
            self.budget.checked_sub(1).ok_or_else(|| self.error("more values than its bytes can hold"))?;
        let d = depth + 1;
        Ok(match format {
            Format::Variable(_) => return Err(self.error("an incomplete format")),
            Format::TypeName(name) => {
                let c = self.registry.get(name).ok_or_else(|| self.error("an unknown type name"))?;
                self.container(c, d)?
            }
            Format::Unit => Value::Null,
            Format::Bool => match self.byte()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                _ => return Err(self.error("a bool that is neither 0 nor 1")),
            },
            Format::I8 => Value::from(self.byte()? as i8),
            Format::U8 => Value::from(self.byte()?),
            Format::I16 => int(self.signed(16)?),
            Format::I32 => int(self.signed(32)?),
            Format::I64 => int(self.signed(64)?),
            Format::I128 => int(self.signed(128)?),
            Format::U16 => uint(self.varint(16)?),
            Format::U32 => uint(self.varint(32)?),
            Format::U64 => uint(self.varint(64)?),
            Format::U128 => uint(self.varint(128)?),
            Format::F32 => {
                let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| self.error("cut short"))?;
                // Through its shortest decimal form, as serde_json writes an f32 (1.1, not
                // 1.100000023841858).
                let f = f32::from_le_bytes(b);
                float(f.to_string().parse::<f64>().unwrap_or(f64::from(f)))
            }
            Format::F64 => {
                let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| self.error("cut short"))?;
                float(f64::from_le_bytes(b))
            }
            Format::Char | Format::Str => Value::String(self.str()?),
            Format::Bytes => {
                let n = self.len()?;
                Value::Array(self.take(n)?.iter().map(|b| Value::from(*b)).collect())
            }
            Format::Option(inner) => match self.byte()? {
                0 => Value::Null,
                1 => self.value(inner, d)?,
                _ => return Err(self.error("an option tag that is neither 0 nor 1")),
            },
            Format::Seq(item) => {
                let n = self.len()?;
                // Not sized by the length read: nested sequences would each reserve it.
                let mut out = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    out.push(self.value(item, d)?);
                }
                Value::Array(out)
            }
            Format::Map { key, value } => {
                let n = self.len()?;
                let mut out = Map::new();
                for _ in 0..n {
                    let k = match self.value(key, d)? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    out.insert(k, self.value(value, d)?);
                }
                Value::Object(out)
            }
            Format::Tuple(items) => {
                Value::Array(items.iter().map(|f| self.value(f, d)).collect::<Result<_>>()?)
            }
            Format::TupleArray { content, size } => {
                if *size > self.bytes.len() - self.at {
                    return Err(self.error("an array past the end"));
                }
                Value::Array((0..*size).map(|_| self.value(content, d)).collect::<Result<_>>()?)
            }
        })
    }

    fn container(&mut self, c: &ContainerFormat, d: usize) -> Result<Value> {
        Ok(match c {
            ContainerFormat::UnitStruct => Value::Null,
            ContainerFormat::NewTypeStruct(inner) => self.value(inner, d)?,
            ContainerFormat::TupleStruct(items) => {
                Value::Array(items.iter().map(|f| self.value(f, d)).collect::<Result<_>>()?)
            }
            ContainerFormat::Struct(fields) => self.fields(fields, d)?,
            ContainerFormat::Enum(variants) => {
                let index =
                    u32::try_from(self.varint(32)?).map_err(|_| self.error("a variant index too large"))?;
                let Named { name, value } =
                    variants.get(&index).ok_or_else(|| self.error("an unknown variant"))?;
                let content = match value {
                    VariantFormat::Unit => return Ok(Value::String(name.clone())),
                    VariantFormat::NewType(inner) => self.value(inner, d)?,
                    VariantFormat::Tuple(items) => {
                        Value::Array(items.iter().map(|f| self.value(f, d)).collect::<Result<_>>()?)
                    }
                    VariantFormat::Struct(fields) => self.fields(fields, d)?,
                    VariantFormat::Variable(_) => return Err(self.error("an incomplete format")),
                };
                let mut out = Map::new();
                out.insert(name.clone(), content);
                Value::Object(out)
            }
        })
    }

    fn fields(&mut self, fields: &[Named<Format>], d: usize) -> Result<Value> {
        let mut out = Map::new();
        for f in fields {
            out.insert(f.name.clone(), self.value(&f.value, d)?);
        }
        Ok(Value::Object(out))
    }
}

/// A signed integer as serde_json writes it (a number, even past 64 bits).
fn int(n: i128) -> Value {
    match i64::try_from(n) {
        Ok(n) => Value::from(n),
        Err(_) => big(n.to_string()),
    }
}

/// An unsigned integer as serde_json writes it.
fn uint(n: u128) -> Value {
    match u64::try_from(n) {
        Ok(n) => Value::from(n),
        Err(_) => big(n.to_string()),
    }
}

/// A number past 64 bits: a `serde_json::Value` (without serde_json's arbitrary-precision
/// feature) cannot hold it, so it is kept as its digits in a string.
fn big(digits: String) -> Value {
    Value::String(digits)
}

/// A float as serde_json writes it (`null` for NaN and infinities).
/// A float as a JSON value; NaN and the infinities, which JSON has no number for, as Rust
/// spells them (`NaN`, `inf`, `-inf`: a CSV cell of `mnesia dump` is then what the
/// table's own CSV export writes), not as `null`, which reads as a missing value.
fn float(f: f64) -> Value {
    Number::from_f64(f).map_or_else(|| Value::String(f.to_string()), Value::Number)
}

/// The order of keys given as JSON values: numbers by value, strings as text, anything
/// else by its JSON text.
pub(crate) fn json_order(a: &serde_json::Value, b: &serde_json::Value) -> std::cmp::Ordering {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(x), Some(y), _, _) => x.cmp(&y),
            (_, _, Some(x), Some(y)) => x.cmp(&y),
            _ => x.as_f64().unwrap_or(0.0).total_cmp(&y.as_f64().unwrap_or(0.0)),
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Dot,
        Circle(f64),
        Rect(u32, u32),
        Named { label: String, inner: Option<Box<Shape>> },
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Rec {
        id: u64,
        neg: i32,
        big: u128,
        flag: bool,
        text: String,
        none: Option<String>,
        empty: Option<String>,
        list: Vec<u16>,
        map: BTreeMap<String, i64>,
        pair: (u8, char),
        ratio: f32,
        shape: Shape,
        shapes: Vec<Shape>,
        at: std::time::SystemTime,
    }

    fn rec() -> Rec {
        Rec {
            id: 300,
            neg: -70_000,
            big: u128::from(u64::MAX) + 5,
            flag: true,
            text: "héllo".into(),
            none: None,
            empty: Some(String::new()),
            list: vec![1, 500, 65535],
            map: [("a".to_owned(), -1), ("b".to_owned(), i64::MIN)].into_iter().collect(),
            pair: (7, 'ß'),
            ratio: 1.1,
            shape: Shape::Named { label: "n".into(), inner: Some(Box::new(Shape::Rect(3, 4))) },
            shapes: vec![Shape::Dot, Shape::Circle(1.5)],
            at: std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 123),
        }
    }

    #[test]
    fn a_record_decodes_to_what_serde_json_gives() {
        let format = RecordFormat::of::<Rec>().expect("traced");
        let r = rec();
        let bytes = postcard::to_allocvec(&r).expect("encode");
        // `big` does not fit a serde_json Value without arbitrary precision: its digits.
        // (Through the text serde_json writes: `to_value` would widen the f32.)
        let text = serde_json::to_string(&Rec { big: 0, ..r.clone() }).expect("json");
        let mut expected: Value = serde_json::from_str(&text).expect("json");
        expected["big"] = Value::String((u128::from(u64::MAX) + 5).to_string());
        assert_eq!(decode(&bytes, &format).expect("decode"), expected);
    }

    #[test]
    fn floats_json_cannot_hold_are_spelled_not_nulled() {
        let format = RecordFormat::of::<(f64, f64, f32, f64)>().expect("traced");
        let bytes =
            postcard::to_allocvec(&(f64::NAN, f64::NEG_INFINITY, f32::INFINITY, 0.5)).expect("encode");
        let expected = serde_json::json!(["NaN", "-inf", "inf", 0.5]);
        assert_eq!(decode(&bytes, &format).expect("decode"), expected);
    }

    #[test]
    fn damaged_bytes_are_an_error_never_a_panic() {
        let format = RecordFormat::of::<Rec>().expect("traced");
        let bytes = postcard::to_allocvec(&rec()).expect("encode");
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], &format).is_err(), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode(&long, &format).is_err());
        for i in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= flip;
                let _ = decode(&b, &format);
            }
        }
        // A huge length allocates nothing.
        let bytes_format = RecordFormat { root: Format::Bytes, registry: Registry::new() };
        assert!(decode(&[0xff, 0xff, 0xff, 0xff, 0x0f], &bytes_format).is_err());
        // Values that take no bytes cannot multiply without bound.
        let units = Format::TupleArray { content: Box::new(Format::Unit), size: 64 };
        let nested = Format::TupleArray {
            content: Box::new(Format::TupleArray { content: Box::new(units), size: 64 }),
            size: 64,
        };
        let nested = RecordFormat { root: nested, registry: Registry::new() };
        assert!(decode(&[0; 64], &nested).is_err());
        // A varint longer than its type allows, or with bits past it.
        let u16_format = RecordFormat { root: Format::U16, registry: Registry::new() };
        assert_eq!(decode(&[0xff, 0xff, 0x03], &u16_format).expect("65535"), Value::from(65535));
        assert!(decode(&[0xff, 0xff, 0x04], &u16_format).is_err());
        assert!(decode(&[0x80, 0x80, 0x80, 0x00], &u16_format).is_err());
    }

    #[test]
    fn the_same_shape_under_other_names_is_the_same() {
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct A {
            x: u32,
            s: Option<Box<A>>,
        }
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct B {
            x: u32,
            s: Option<Box<B>>,
        }
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct C {
            x: u64,
            s: Option<Box<C>>,
        }
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct D {
            y: u32,
            s: Option<Box<D>>,
        }
        let [a, b, c, d] = [
            RecordFormat::of::<A>(),
            RecordFormat::of::<B>(),
            RecordFormat::of::<C>(),
            RecordFormat::of::<D>(),
        ]
        .map(|f| f.expect("traced"));
        assert!(a.same_shape(&b), "recursive, renamed");
        assert!(!a.same_shape(&c), "another integer type");
        assert!(!a.same_shape(&d), "another field name");
        let rec = RecordFormat::of::<Rec>().expect("traced");
        assert!(rec.same_shape(&rec.clone()));
        assert!(!rec.same_shape(&a));
    }

    #[test]
    fn the_format_survives_the_schema_file() {
        let format = RecordFormat::of::<Rec>().expect("traced");
        let json = serde_json::to_string(&format).expect("to json");
        let back: RecordFormat = serde_json::from_str(&json).expect("from json");
        assert_eq!(back, format);
    }
}
