//! Model-based property test of expiry.
//!
//! Random sequences of writes with a deadline in the past, in the future or none,
//! `expire`, `persist`, deletes and reaper runs go to a fresh in-memory database and to a
//! `BTreeMap` model that holds what a reader may see. Deadlines are set relative to the
//! clock far enough on either side of it (an hour) that no sleeping is needed. After every
//! operation the table must agree with the model through `read`, `list`, `count`,
//! `all_keys`, `get_by` on a unique index and `ttl`; after a reaper run, the stored size and
//! the expiry index count match the model exactly.
//!
//! Rules modelled:
//! - an expired record is absent to every read, and its key is free for `insert`;
//! - a unique value held only by an expired record is free: the write that takes it
//!   removes the expired holder;
//! - `expire` and `persist` on an absent (or expired) key fail with `NotFound`;
//! - the reaper removes exactly the expired records.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use mnesia::Error;
use mnesia::prelude::*;
use proptest::prelude::*;

const KEYS: u32 = 6;
static HANDLES: [&str; 3] = ["a", "b", "c"];
const HOUR: Duration = Duration::from_secs(3600);

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Token {
    #[key]
    id: u32,
    #[index(unique)]
    handle: String,
    #[ttl]
    expires_at: Option<SystemTime>,
}

/// When a record written by the test expires.
#[derive(Clone, Copy, Debug)]
enum Life {
    /// An hour ago: expired as it is written.
    Past,
    /// In an hour.
    Future,
    /// Never.
    Forever,
}

impl Life {
    fn deadline(self) -> Option<SystemTime> {
        match self {
            Life::Past => Some(SystemTime::now() - HOUR),
            Life::Future => Some(SystemTime::now() + HOUR),
            Life::Forever => None,
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Write(u32, &'static str, Life),
    Insert(u32, &'static str, Life),
    Expire(u32),
    Persist(u32),
    Delete(u32),
    Reap,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS;
    let handle = proptest::sample::select(&HANDLES[..]);
    let life = prop_oneof![Just(Life::Past), Just(Life::Future), Just(Life::Forever)];
    prop_oneof![
        4 => (key.clone(), handle.clone(), life.clone()).prop_map(|(k, h, l)| Op::Write(k, h, l)),
        2 => (key.clone(), handle, life).prop_map(|(k, h, l)| Op::Insert(k, h, l)),
        1 => key.clone().prop_map(Op::Expire),
        1 => key.clone().prop_map(Op::Persist),
        1 => key.prop_map(Op::Delete),
        1 => Just(Op::Reap),
    ]
}

/// What is stored: every record, live or expired, with whether it has expired.
#[derive(Default)]
struct Model {
    stored: BTreeMap<u32, (&'static str, Option<bool>)>,
}

impl Model {
    /// The records a reader sees: key, handle, whether it has a deadline.
    fn live(&self) -> BTreeMap<u32, (&'static str, bool)> {
        self.stored
            .iter()
            .filter(|(_, (_, expired))| *expired != Some(true))
            .map(|(k, (h, expired))| (*k, (*h, expired.is_some())))
            .collect()
    }

    fn holder(&self, handle: &str) -> Option<u32> {
        self.live().into_iter().find(|(_, (h, _))| *h == handle).map(|(k, _)| k)
    }

    /// A write of `key` with `handle`: refused when a live record of another key holds the
    /// handle; else expired holders of the handle go, and the record is stored.
    fn write(&mut self, key: u32, handle: &'static str, life: Life) -> bool {
        if self.holder(handle).is_some_and(|k| k != key) {
            return false;
        }
        self.stored.retain(|k, (h, _)| *k == key || *h != handle);
        let expired = match life {
            Life::Past => Some(true),
            Life::Future => Some(false),
            Life::Forever => None,
        };
        self.stored.insert(key, (handle, expired));
        true
    }
}

fn check(model: &Model) -> Result<(), TestCaseError> {
    let live = model.live();
    let mut listed: Vec<(u32, String, bool)> =
        Token::list().expect("list").into_iter().map(|t| (t.id, t.handle, t.expires_at.is_some())).collect();
    listed.sort();
    let expected: Vec<(u32, String, bool)> =
        live.iter().map(|(k, (h, d))| (*k, (*h).to_owned(), *d)).collect();
    prop_assert_eq!(listed, expected);
    prop_assert_eq!(Token::count().expect("count"), live.len());
    prop_assert_eq!(Token::all_keys().expect("keys").len(), live.len());
    for k in 0..KEYS {
        let read = Token::read(&k).expect("read");
        prop_assert_eq!(read.map(|t| t.id), live.get(&k).map(|_| k));
        match (Token::ttl(&k), live.get(&k)) {
            (Err(Error::NotFound { .. }), None) => {}
            (Ok(left), Some((_, has))) => prop_assert_eq!(left.is_some(), *has),
            (other, m) => prop_assert!(false, "ttl({k}) = {other:?}, model {m:?}"),
        }
    }
    for h in HANDLES {
        let got = Token::get_by(Token::HANDLE, h).expect("get_by").map(|t| t.id);
        prop_assert_eq!(got, model.holder(h));
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let db = Database::open(Config::default().auto_cleanup(false)).expect("db");
    db.scope(|| -> Result<(), TestCaseError> {
        Token::create_table(TableOptions::new()).expect("table");
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Write(k, h, life) => {
                    let ok = model.write(k, h, life);
                    let got = Token::write(Token { id: k, handle: h.into(), expires_at: life.deadline() });
                    prop_assert_eq!(got.is_ok(), ok, "{:?}: {:?}", op, got);
                }
                Op::Insert(k, h, life) => {
                    let exists = model.live().contains_key(&k);
                    let got = Token::insert(Token { id: k, handle: h.into(), expires_at: life.deadline() });
                    if exists {
                        prop_assert!(matches!(got, Err(Error::AlreadyExists { .. })), "{:?}: {:?}", op, got);
                    } else {
                        let ok = model.write(k, h, life);
                        prop_assert_eq!(got.is_ok(), ok, "{:?}: {:?}", op, got);
                    }
                }
                Op::Expire(k) => {
                    let got = Token::expire(&k, HOUR);
                    match model.live().get(&k) {
                        Some((h, _)) => {
                            prop_assert!(got.is_ok(), "{:?}", got);
                            model.stored.insert(k, (h, Some(false)));
                        }
                        None => prop_assert!(matches!(got, Err(Error::NotFound { .. })), "{:?}", got),
                    }
                }
                Op::Persist(k) => {
                    let got = Token::persist(&k);
                    match model.live().get(&k) {
                        Some((h, _)) => {
                            prop_assert!(got.is_ok(), "{:?}", got);
                            model.stored.insert(k, (h, None));
                        }
                        None => prop_assert!(matches!(got, Err(Error::NotFound { .. })), "{:?}", got),
                    }
                }
                Op::Delete(k) => {
                    let got = Token::delete(&k).expect("delete").map(|t| t.id);
                    prop_assert_eq!(got, model.live().get(&k).map(|_| k));
                    if got.is_some() {
                        model.stored.remove(&k);
                    }
                }
                Op::Reap => {
                    let expired = model.stored.values().filter(|(_, e)| *e == Some(true)).count();
                    prop_assert_eq!(db.cleanup_expired().expect("reap"), expired);
                    model.stored.retain(|_, (_, e)| *e != Some(true));
                    let info = Token::table_info().expect("info");
                    let with_deadline = model.stored.values().filter(|(_, e)| e.is_some()).count();
                    prop_assert_eq!((info.size, info.expiring), (model.stored.len(), with_deadline));
                }
            }
            check(&model)?;
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn expiry_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}
