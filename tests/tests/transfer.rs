//! Export and import: JSON, JSON Lines and CSV round-trip every field type for the three
//! table types; malformed input gives an error naming the line (and column) and imports
//! nothing; key and unique constraints hold; auto-increment counters move past imported ids.

use std::collections::BTreeMap;

use mnesia::prelude::*;
use mnesia::{Error, Format, ImportOptions};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Address {
    city: String,
    zip: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Status {
    Active,
    Banned { reason: String },
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Person {
    #[key]
    #[auto_increment]
    id: u64,
    #[index(unique)]
    email: String,
    name: String,
    nickname: Option<String>,
    age: Option<u32>,
    balance: i64,
    big: u64,
    score: f64,
    admin: bool,
    address: Address,
    tags: Vec<String>,
    status: Status,
    extra: BTreeMap<String, i32>,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "ordered_set")]
struct Reading {
    #[key]
    at: (u32, u32),
    value: f64,
    note: String,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "bag")]
struct Tag {
    #[key]
    item: u32,
    label: String,
}

fn people() -> Vec<Person> {
    let tricky = [
        "plain",
        "comma, inside",
        "a \"quoted\" word",
        "two\nlines",
        "crlf\r\nline",
        "unicode: 日本語 🎉 é",
        "",
        "  spaces  ",
        "123",
        "null",
        "[1,2]",
    ];
    tricky
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let i = i as u64 + 1;
            Person {
                id: i,
                email: format!("p{i}@x.io"),
                name: (*s).to_owned(),
                nickname: if i.is_multiple_of(2) { Some(format!("nick {s}")) } else { None },
                age: if i.is_multiple_of(3) { None } else { Some(i as u32 * 7) },
                balance: if i == 1 { i64::MIN } else { -(i as i64) * 1000 },
                big: if i == 2 { u64::MAX } else { i * 1_000_000_007 },
                score: i as f64 / 3.0,
                admin: i % 2 == 1,
                address: Address {
                    city: format!("{s} city"),
                    zip: (i.is_multiple_of(2)).then_some(10_000 + i as u32),
                },
                tags: (0..i % 3).map(|t| format!("t{t},{s}")).collect(),
                status: if i.is_multiple_of(4) {
                    Status::Banned { reason: (*s).to_owned() }
                } else {
                    Status::Active
                },
                extra: (0..i % 2).map(|k| (format!("k{k}"), k as i32 - 5)).collect(),
            }
        })
        .collect()
}

fn sorted<T: Table>(mut v: Vec<T>) -> Vec<T> {
    v.sort_by_key(|r| serde_json::to_string(r).unwrap_or_default());
    v
}

fn round_trip<T: Table + PartialEq + std::fmt::Debug>(records: Vec<T>) {
    for format in [Format::Json, Format::JsonLines, Format::Csv] {
        let db = Database::in_memory().expect("db");
        db.scope(|| -> mnesia::Result<()> {
            T::create_table(TableOptions::new())?;
            T::batch_write(records.clone())?;
            let mut out = Vec::new();
            assert_eq!(T::export_to(&mut out, format)?, records.len());
            T::clear()?;
            let n = T::import_from(out.as_slice(), format, &ImportOptions::new())?;
            assert_eq!(n, records.len(), "{format:?}");
            assert_eq!(
                sorted(T::list()?),
                sorted(records.clone()),
                "{format:?}:\n{}",
                String::from_utf8_lossy(&out)
            );
            Ok(())
        })
        .expect("round trip");
    }
}

#[test]
fn every_field_type_round_trips_in_every_format() {
    round_trip(people());
}

#[test]
fn ordered_sets_and_bags_round_trip() {
    round_trip(
        (0..20u32)
            .map(|i| Reading {
                at: (i / 5, i % 5),
                value: f64::from(i) * 1.5 - 3.0,
                note: format!("n,{i}\n\""),
            })
            .collect(),
    );
    round_trip(
        (0..20u32).map(|i| Tag { item: i % 4, label: format!("label {i}, \"x\"") }).collect::<Vec<_>>(),
    );
}

#[test]
fn export_and_import_by_file_extension() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::in_memory().expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Person::create_table(TableOptions::new())?;
        Person::batch_write(people())?;
        for name in ["p.json", "p.jsonl", "p.ndjson", "p.csv"] {
            let path = dir.path().join(name);
            assert_eq!(Person::export(&path)?, people().len());
            Person::clear()?;
            assert_eq!(Person::import(&path)?, people().len());
        }
        assert!(matches!(Person::export(dir.path().join("p.xml")), Err(Error::Invalid(_))));
        assert!(matches!(Person::import(dir.path().join("missing.csv")), Err(Error::Io { .. })));
        Ok(())
    })
    .expect("body");
}

/// Imports `input` into a table holding one record, expecting a located error and no change.
/// Refused into a table holding a record (imported in a transaction) and into an empty
/// one (loaded into a new store), with the same line and column.
fn refused_both(format: Format, input: &str, line: u64, column: Option<&str>) {
    refused(format, input, line, column);
    refused_into(false, format, input, line, column);
}

fn refused(format: Format, input: &str, line: u64, column: Option<&str>) {
    refused_into(true, format, input, line, column);
}

fn refused_into(holding: bool, format: Format, input: &str, line: u64, column: Option<&str>) {
    let db = Database::in_memory().expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Tag::create_table(TableOptions::new())?;
        Reading::create_table(TableOptions::new())?;
        Person::create_table(TableOptions::new())?;
        let kept: Vec<Person> = if holding { vec![people().remove(0)] } else { Vec::new() };
        Person::batch_write(kept.iter().cloned())?;
        match Person::import_from(input.as_bytes(), format, &ImportOptions::new()) {
            Err(Error::Import { line: l, column: c, reason }) => {
                assert_eq!((l, c.as_deref()), (line, column), "{reason}");
            }
            other => panic!("{format:?} {input:?}: {other:?}"),
        }
        assert_eq!(Person::list()?, kept, "nothing imported");
        Ok(())
    })
    .expect("body");
}

fn person_json(id: u64, email: &str) -> String {
    let mut p = people().remove(1);
    p.id = id;
    p.email = email.into();
    serde_json::to_string(&p).expect("json")
}

fn person_csv_rows(rows: &[(u64, &str)]) -> String {
    let db = Database::in_memory().expect("db");
    db.scope(|| {
        Person::create_table(TableOptions::new()).expect("table");
        for (id, email) in rows {
            let mut p = people().remove(1);
            p.id = *id;
            p.email = (*email).into();
            p.age = Some(4242);
            Person::write(p).expect("write");
        }
        let mut out = Vec::new();
        Person::export_to(&mut out, Format::Csv).expect("export");
        String::from_utf8(out).expect("utf8")
    })
}

#[test]
fn malformed_input_is_refused_with_its_line_and_nothing_is_imported() {
    // Bad JSON syntax.
    let good = person_json(50, "a@x.io");
    refused_both(Format::JsonLines, &format!("{good}\n{{\"id\": 51,\n"), 2, None);
    refused_both(Format::Json, &format!("[\n{good},\n{good}\n"), 4, None);
    // A wrong type in a field.
    let wrong = good.replace("\"balance\":-2000", "\"balance\":\"lots\"");
    assert_ne!(wrong, good);
    refused_both(Format::JsonLines, &format!("{good}\n\n{wrong}\n"), 3, Some("balance"));
    refused_both(
        Format::Json,
        &format!("[\n{},\n{wrong}\n]", person_json(52, "b@x.io")),
        3,
        Some("[1].balance"),
    );
    // CSV: a wrong type in a cell, a wrong column count, an unknown column, a missing one.
    let csv = person_csv_rows(&[(60, "c@x.io"), (61, "d@x.io")]);
    let header = csv.lines().next().expect("header").to_owned();
    // The second record's age (records are one line each: no cell here holds a newline).
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "{csv}");
    let bad_row = rows[2].replacen(",4242,", ",abc,", 1);
    assert_ne!(bad_row, rows[2]);
    refused_both(Format::Csv, &format!("{}\n{}\n{bad_row}\n", rows[0], rows[1]), 3, Some("age"));
    refused_both(Format::Csv, &format!("{header}\n1,2,3\n"), 2, None);
    refused_both(Format::Csv, &format!("{header},shoe_size\n"), 1, Some("shoe_size"));
    refused_both(Format::Csv, "id,email\n1,a@x.io\n", 1, Some("name"));
    // CSV quoting the `csv` crate reads leniently: a quote never closed (which would take
    // the rows after it into one cell), text after a closing quote (glued to the cell).
    let (id, rest) = rows[2].split_once(',').expect("cells");
    refused_both(Format::Csv, &format!("{}\n{}\n{id},\"{rest}\n", rows[0], rows[1]), 3, None);
    let (email, rest) = rest.split_once(',').expect("cells");
    refused_both(Format::Csv, &format!("{}\n{}\n{id},\"{email}\"junk,{rest}\n", rows[0], rows[1]), 3, None);
    refused_both(Format::Csv, &format!("{}\n{id},\"{email}\n{}\n", rows[0], rows[1]), 2, None);
    // CSV: a number out of a float's range (parsing would make it an infinity the text did
    // not say).
    let huge = rows[2].replacen(",0.6666666666666666,", ",1e400,", 1);
    assert_ne!(huge, rows[2]);
    refused_both(Format::Csv, &format!("{}\n{}\n{huge}\n", rows[0], rows[1]), 3, Some("score"));
    // A field the struct does not have, at the top or nested: serde would drop it.
    let unknown = good.replacen('{', "{\"shoe_size\":44,", 1);
    refused_both(Format::JsonLines, &format!("{good}\n{unknown}\n"), 2, Some("shoe_size"));
    refused_both(
        Format::Json,
        &format!("[\n{},\n{unknown}\n]", person_json(53, "e@x.io")),
        3,
        Some("[1].shoe_size"),
    );
    let nested = good.replacen("\"city\":", "\"planet\":\"earth\",\"city\":", 1);
    assert_ne!(nested, good);
    refused_both(Format::JsonLines, &nested, 1, Some("address.planet"));
    // A field missing is named, nested too.
    let missing = good.replacen("\"balance\":-2000,", "", 1);
    assert_ne!(missing, good);
    refused_both(Format::JsonLines, &missing, 1, Some("balance"));
    let missing_city = good.replacen("\"city\":", "\"town\":", 1);
    refused_both(Format::Json, &format!("[{missing_city}]"), 1, Some("[0].address.city"));
}

#[test]
fn infinities_written_as_such_in_csv_are_read_back() {
    let db = Database::in_memory().expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Reading::create_table(TableOptions::new())?;
        let input = "at,value,note\n\"[1,2]\",inf,a\n\"[1,3]\",-Infinity,b\n\"[1,4]\",NaN,c\n";
        assert_eq!(Reading::import_from(input.as_bytes(), Format::Csv, &ImportOptions::new())?, 3);
        let values: Vec<f64> = Reading::list()?.iter().map(|r| r.value).collect();
        assert_eq!(values[..2], [f64::INFINITY, f64::NEG_INFINITY]);
        assert!(values[2].is_nan());
        Ok(())
    })
    .expect("import");
}

#[test]
fn key_and_unique_constraints_are_enforced_with_the_line() {
    let taken = people().remove(0);
    // The key of the stored record.
    refused(
        Format::JsonLines,
        &format!("{}\n{}\n", person_json(70, "e@x.io"), person_json(taken.id, "f@x.io")),
        2,
        None,
    );
    // Its unique email.
    refused(
        Format::JsonLines,
        &format!("{}\n{}\n", person_json(71, "g@x.io"), person_json(72, &taken.email)),
        2,
        Some("email"),
    );
    // Two lines of the file with one email.
    refused_both(
        Format::JsonLines,
        &format!(
            "{}\n{}\n{}\n",
            person_json(73, "h@x.io"),
            person_json(74, "i@x.io"),
            person_json(75, "h@x.io")
        ),
        3,
        Some("email"),
    );
    // The same key twice in the file.
    refused_both(
        Format::JsonLines,
        &format!("{}\n{}\n", person_json(76, "j@x.io"), person_json(76, "k@x.io")),
        2,
        None,
    );
}

#[test]
fn imported_ids_move_the_counter_and_replace_and_batches_work() {
    let db = Database::in_memory().expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Person::create_table(TableOptions::new())?;
        let input = format!("{}\n{}\n", person_json(100, "a@x.io"), person_json(0, "b@x.io"));
        Person::import_from(input.as_bytes(), Format::JsonLines, &ImportOptions::new())?;
        // The record with id 0 got the next id, and the counter is past 100.
        assert!(Person::read(&101)?.is_some_and(|p| p.email == "b@x.io"));
        let next = Person::insert(Person { email: "c@x.io".into(), ..people().remove(0) }.with_id(0))?;
        assert_eq!(next.id, 102);
        // Replacing.
        let again = person_json(100, "z@x.io");
        assert!(Person::import_from(again.as_bytes(), Format::JsonLines, &ImportOptions::new()).is_err());
        Person::import_from(
            again.as_bytes(),
            Format::JsonLines,
            &ImportOptions::new().replace_existing(true),
        )?;
        assert_eq!(Person::read(&100)?.map(|p| p.email), Some("z@x.io".into()));
        // In batches: what came before the failing batch stays.
        let input: String =
            (200..210).map(|i| person_json(i, &format!("m{i}@x.io")) + "\n").collect::<String>()
                + &person_json(100, "dup@x.io");
        assert!(
            Person::import_from(input.as_bytes(), Format::JsonLines, &ImportOptions::new().in_batches(5))
                .is_err()
        );
        assert_eq!(Person::all_keys()?.iter().filter(|k| (200..210).contains(*k)).count(), 10);
        // A malformed line after two batches: the batches before it stay, nothing after.
        let input: String =
            (300..311).map(|i| person_json(i, &format!("q{i}@x.io")) + "\n").collect::<String>()
                + "{not json\n"
                + &person_json(400, "late@x.io");
        match Person::import_from(input.as_bytes(), Format::JsonLines, &ImportOptions::new().in_batches(5)) {
            Err(Error::Import { line: 12, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(Person::all_keys()?.iter().filter(|k| (300..311).contains(*k)).count(), 10);
        assert!(Person::read(&400)?.is_none());
        Ok(())
    })
    .expect("body");
}

trait WithId {
    fn with_id(self, id: u64) -> Self;
}

impl WithId for Person {
    fn with_id(mut self, id: u64) -> Self {
        self.id = id;
        self
    }
}

type Email = String;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Handle(String);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Role {
    Admin,
    Custom(String),
    Pair(u8, u8),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Unit;

/// Shapes the first CSV writer got wrong: strings that look like JSON behind an alias or a
/// newtype, one-element lists, newtype and tuple variants, times, unit structs.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Tricky {
    #[key]
    id: (u32, String),
    email: Email,
    handle: Handle,
    #[index(unique)]
    nick: Option<String>,
    one: Vec<String>,
    none: Vec<u8>,
    role: Role,
    since: Option<std::time::SystemTime>,
    unit: Unit,
    letter: char,
    nested: Option<Option<u8>>,
}

fn tricky() -> Vec<Tricky> {
    let looks_like_json = ["123", "true", "null", "[1]", "{\"a\":1}", "1.0", "\"quoted\""];
    looks_like_json
        .iter()
        .enumerate()
        .map(|(i, s)| Tricky {
            id: (i as u32, format!("k,{s}")),
            email: (*s).to_owned(),
            handle: Handle((*s).to_owned()),
            nick: Some(format!("n{s}")),
            one: vec![(*s).to_owned()],
            none: Vec::new(),
            role: match i % 3 {
                0 => Role::Admin,
                1 => Role::Custom((*s).to_owned()),
                _ => Role::Pair(i as u8, 2),
            },
            since: (i % 2 == 0)
                .then(|| std::time::UNIX_EPOCH + std::time::Duration::from_millis(i as u64 * 1001)),
            unit: Unit,
            letter: if i == 0 { ',' } else { 'é' },
            nested: if i == 1 { Some(Some(7)) } else { None },
        })
        .collect()
}

#[test]
fn strings_that_look_like_json_and_nested_shapes_round_trip() {
    round_trip(tricky());
}

#[test]
fn a_unique_value_of_an_optional_field_is_located() {
    let db = Database::in_memory().expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Tricky::create_table(TableOptions::new())?;
        let rows = tricky();
        Tricky::write(rows[0].clone())?;
        let mut dup = rows[1].clone();
        dup.nick = rows[0].nick.clone();
        let input = format!(
            "{}\n{}\n",
            serde_json::to_string(&rows[2]).expect("json"),
            serde_json::to_string(&dup).expect("json")
        );
        match Tricky::import_from(input.as_bytes(), Format::JsonLines, &ImportOptions::new()) {
            Err(Error::Import { line: 2, column: Some(c), .. }) => assert_eq!(c, "nick"),
            other => panic!("{other:?}"),
        }
        Ok(())
    })
    .expect("body");
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Renamed {
    #[key]
    id: u32,
    #[serde(rename = "fullName")]
    full_name: String,
}

#[test]
fn a_failed_export_leaves_the_earlier_file_and_renamed_fields_are_refused_in_csv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.csv");
    std::fs::write(&path, "earlier").expect("write");
    let db = Database::in_memory().expect("db");
    db.scope(|| -> mnesia::Result<()> {
        // No such table yet.
        assert!(Renamed::export(&path).is_err());
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "earlier");
        Renamed::create_table(TableOptions::new())?;
        Renamed::write(Renamed { id: 1, full_name: "Ann".into() })?;
        assert!(matches!(Renamed::export(&path), Err(Error::Invalid(_))));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "earlier");
        // JSON keeps the serde names, both ways.
        let json = dir.path().join("r.json");
        Renamed::export(&json)?;
        assert!(std::fs::read_to_string(&json).expect("read").contains("fullName"));
        Renamed::clear()?;
        Renamed::import(&json)?;
        assert_eq!(Renamed::read(&1)?.map(|r| r.full_name), Some("Ann".into()));
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 2, "no partial file left");
        Ok(())
    })
    .expect("body");
}

/// Every field type at once, for the property test below.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Mixed {
    #[key]
    id: u32,
    text: String,
    maybe_text: Option<String>,
    maybe_handle: Option<Handle>,
    maybe_number: Option<i32>,
    letter: char,
    maybe_letter: Option<char>,
    small: i8,
    big: u64,
    real: f64,
    flag: bool,
    list: Vec<String>,
    map: BTreeMap<String, u16>,
    status: Status,
    maybe_status: Option<Status>,
    address: Address,
    nested: Option<Option<String>>,
}

fn text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        proptest::string::string_regex("[a-z\"', \n\r{}\\[\\]0-9é🎉]{0,8}").expect("regex"),
        Just(String::new()),
        Just("\"".to_owned()),
        Just("\"\"".to_owned()),
        Just("null".to_owned()),
        Just("\"quoted\"".to_owned()),
        Just(" ".to_owned()),
    ]
}

fn mixed() -> impl proptest::strategy::Strategy<Value = Mixed> {
    use proptest::prelude::*;
    let status = prop_oneof![Just(Status::Active), text().prop_map(|reason| Status::Banned { reason })];
    (
        (text(), proptest::option::of(text()), proptest::option::of(text()), any::<Option<i32>>()),
        (any::<char>(), any::<Option<char>>(), any::<i8>(), any::<u64>(), -1e300..1e300f64, any::<bool>()),
        (
            proptest::collection::vec(text(), 0..3),
            proptest::collection::btree_map(text(), any::<u16>(), 0..3),
            status.clone(),
            proptest::option::of(status),
        ),
        (text(), proptest::option::of(any::<u32>()), proptest::option::of(text())),
    )
        .prop_map(|(a, b, c, d)| Mixed {
            id: 0,
            text: a.0,
            maybe_text: a.1,
            maybe_handle: a.2.map(Handle),
            maybe_number: a.3,
            letter: b.0,
            maybe_letter: b.1,
            small: b.2,
            big: b.3,
            real: b.4,
            flag: b.5,
            list: c.0,
            map: c.1,
            status: c.2,
            maybe_status: c.3,
            address: Address { city: d.0, zip: d.1 },
            // `Some(None)` cannot be told from `None` in CSV: refused (tested below).
            nested: d.2.map(Some),
        })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    /// Arbitrary records of every field type come back equal through JSON, JSON Lines and
    /// CSV — `Some("")` included, which CSV writes apart from `None`.
    #[test]
    fn arbitrary_records_round_trip_in_every_format(records in proptest::collection::vec(mixed(), 0..6)) {
        let records: Vec<Mixed> = records.into_iter().zip(0..).map(|(r, id)| Mixed { id, ..r }).collect();
        round_trip(records);
    }
}

#[test]
fn csv_keeps_some_empty_apart_from_none_and_refuses_what_it_cannot() {
    let db = Database::in_memory().expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Tricky::create_table(TableOptions::new())?;
        let mut rows = tricky();
        rows[0].nick = Some(String::new());
        rows[1].nick = None;
        Tricky::batch_write(rows[..2].to_vec())?;
        let mut out = Vec::new();
        Tricky::export_to(&mut out, Format::Csv)?;
        Tricky::clear()?;
        Tricky::import_from(out.as_slice(), Format::Csv, &ImportOptions::new())?;
        assert_eq!(Tricky::read(&rows[0].id)?.and_then(|r| r.nick), Some(String::new()));
        assert_eq!(Tricky::read(&rows[1].id)?.map(|r| r.nick), Some(None));
        // `Some(None)` writes the cell `None` writes: refused, naming the field, and the
        // earlier rows are not written either.
        let mut odd = rows[2].clone();
        odd.nested = Some(None);
        Tricky::write(odd)?;
        let mut out = Vec::new();
        match Tricky::export_to(&mut out, Format::Csv) {
            Err(Error::Invalid(m)) => assert!(m.contains("`nested`") && m.contains("JSON"), "{m}"),
            other => panic!("{other:?}"),
        }
        Ok(())
    })
    .expect("body");
}

/// A key given twice in the input is told as such (not as a key the table holds), on the
/// bulk path (an empty table) and in transactions (a table with records); a key the table
/// holds is told as that.
#[test]
fn a_key_twice_in_the_input_is_told_apart_from_a_key_the_table_has() {
    let db = Database::in_memory().expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Person::create_table(TableOptions::new())?;
        let twice = format!("{}\n{}\n", person_json(76, "j@x.io"), person_json(76, "k@x.io"));
        let reason = |input: &str| match Person::import_from(
            input.as_bytes(),
            Format::JsonLines,
            &ImportOptions::new(),
        ) {
            Err(Error::Import { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert!(reason(&twice).contains("twice in the input"), "{}", reason(&twice));
        let kept = people().remove(0);
        Person::write(kept.clone())?;
        let r = reason(&twice);
        assert!(r.contains("twice in the input") && r.contains("line 1"), "{r}");
        let taken = person_json(kept.id, "new@x.io");
        assert!(
            reason(&format!("{taken}\n")).contains("already exists"),
            "{}",
            reason(&format!("{taken}\n"))
        );
        Ok(())
    })
    .expect("body");
}

/// A float JSON cannot hold (NaN, an infinity) makes a JSON export fail naming the record
/// and the field, instead of writing `null`, which its import refuses; CSV keeps it.
#[test]
fn a_json_export_refuses_a_float_json_cannot_hold_and_csv_keeps_it() {
    #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Score {
        #[key]
        id: u32,
        value: f64,
    }
    let db = Database::in_memory().expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Score::create_table(TableOptions::new())?;
        Score::write(Score { id: 1, value: 0.5 })?;
        Score::write(Score { id: 2, value: f64::NAN })?;
        for format in [Format::Json, Format::JsonLines] {
            match Score::export_to(Vec::new(), format) {
                Err(Error::Invalid(why)) => {
                    assert!(why.contains("`value`") && why.contains("key 2"), "{why}")
                }
                other => panic!("{format:?}: {other:?}"),
            }
        }
        let mut csv = Vec::new();
        Score::export_to(&mut csv, Format::Csv)?;
        Score::clear()?;
        Score::import_from(csv.as_slice(), Format::Csv, &ImportOptions::new())?;
        assert!(Score::read(&2)?.is_some_and(|s| s.value.is_nan()));
        // In a nested cell (written as its JSON text), CSV cannot hold one either.
        #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
        struct Series {
            #[key]
            id: u32,
            points: Vec<f64>,
        }
        Series::create_table(TableOptions::new())?;
        Series::write(Series { id: 1, points: vec![1.0, f64::INFINITY] })?;
        match Series::export_to(Vec::new(), Format::Csv) {
            Err(Error::Invalid(why)) => assert!(why.contains("`points`") && why.contains("[1]"), "{why}"),
            other => panic!("{other:?}"),
        }
        Ok(())
    })
    .expect("body");
}

/// A CSV quoting fault stops a batched import before the rows the lenient reader makes of
/// it are handed on: the batches before the fault's row stay, none after.
#[test]
fn a_batched_csv_import_stops_at_a_quoting_fault() {
    let db = Database::in_memory().expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Tag::create_table(TableOptions::new())?;
        let input = "item,label\n1,a\n2,b\n3,\"c\"junk\n4,d\n5,e\n6,f\n7,g\n";
        match Tag::import_from(input.as_bytes(), Format::Csv, &ImportOptions::new().in_batches(2)) {
            Err(Error::Import { line: 4, .. }) => {}
            other => panic!("{other:?}"),
        }
        let mut items: Vec<u32> = Tag::list()?.into_iter().map(|t| t.item).collect();
        items.sort_unstable();
        assert_eq!(items, [1, 2], "the batch before the fault, nothing after");
        Ok(())
    })
    .expect("body");
}

/// A float that orders totally: a map key serde_json writes as text.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Weight(f64);

impl Eq for Weight {}

impl PartialOrd for Weight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Weight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Scale {
    #[key]
    id: u32,
    marks: BTreeMap<Weight, String>,
}

#[test]
fn maps_with_float_keys_round_trip_through_json() {
    let scales: Vec<Scale> = (1..4)
        .map(|id| Scale {
            id,
            marks: BTreeMap::from([(Weight(0.5), "half".into()), (Weight(id as f64), "n".into())]),
        })
        .collect();
    round_trip(scales);
}
