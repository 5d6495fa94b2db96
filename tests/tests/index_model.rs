//! Model-based property test of secondary indexes.
//!
//! Random sequences of writes, inserts, updates, deletes and multi-operation transactions
//! (committed or aborted) run against a fresh in-memory database and against a plain
//! `BTreeMap` model that mirrors only what committed. After every operation, and after
//! every operation inside a transaction (read-your-writes), the table must agree with the
//! model through `list`, `read`, `count`, index lookups on the plain index (`city`) and on the
//! unique index (`email`, via `select` and `get_by`).
//!
//! Rules modelled:
//! - a write that would give two keys the same `email` fails with `UniqueViolation` and
//!   changes nothing; inside a transaction the check happens at commit, on the final state,
//!   and fails the whole transaction;
//! - `insert` on an existing key fails with `AlreadyExists`, `update` on a missing key with
//!   `NotFound`; both change nothing (inside a transaction, the transaction goes on);
//! - a transaction whose closure returns `Err(Error::abort(..))` changes nothing.

use std::collections::BTreeMap;
use std::fmt::Debug;

use mnesia::prelude::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

static CITIES: [&str; 3] = ["a", "b", "c"];
static EMAILS: [&str; 4] = ["w", "x", "y", "z"];
/// Keys are drawn from `0..KEYS`, so that operations often hit existing records.
const KEYS: u32 = 8;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Person {
    #[key]
    id: u32,
    #[index]
    city: String,
    #[index(unique)]
    email: String,
    age: u8,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "ordered_set")]
struct PersonOrd {
    #[key]
    id: u32,
    #[index]
    city: String,
    #[index(unique)]
    email: String,
    age: u8,
}

/// A change made by `update`; `None` leaves the field as it is.
#[derive(Clone, Debug)]
struct Change {
    city: Option<&'static str>,
    email: Option<&'static str>,
    age: Option<u8>,
}

/// What the two record types have in common, so one test body drives both.
trait Rec: Table<Key = u32> + PartialEq + Debug {
    const CITY_F: Field<Self, String>;
    const EMAIL_F: Field<Self, String>;
    fn make(id: u32, city: &str, email: &str, age: u8) -> Self;
    fn id(&self) -> u32;
    fn city(&self) -> &str;
    fn email(&self) -> &str;
    fn apply(&mut self, c: &Change);
}

macro_rules! impl_rec {
    ($t:ident) => {
        impl Rec for $t {
            const CITY_F: Field<Self, String> = $t::CITY;
            const EMAIL_F: Field<Self, String> = $t::EMAIL;
            fn make(id: u32, city: &str, email: &str, age: u8) -> Self {
                $t { id, city: city.into(), email: email.into(), age }
            }
            fn id(&self) -> u32 {
                self.id
            }
            fn city(&self) -> &str {
                &self.city
            }
            fn email(&self) -> &str {
                &self.email
            }
            fn apply(&mut self, c: &Change) {
                if let Some(x) = c.city {
                    self.city = x.into();
                }
                if let Some(x) = c.email {
                    self.email = x.into();
                }
                if let Some(x) = c.age {
                    self.age = x;
                }
            }
        }
    };
}
impl_rec!(Person);
impl_rec!(PersonOrd);

/// One record operation: alone it is a transaction of its own, or part of `Op::Tx`.
#[derive(Clone, Debug)]
enum RecOp {
    Write { id: u32, city: &'static str, email: &'static str, age: u8 },
    Insert { id: u32, city: &'static str, email: &'static str, age: u8 },
    Update { id: u32, change: Change },
    Delete { id: u32 },
}

#[derive(Clone, Debug)]
enum Op {
    One(RecOp),
    Tx { ops: Vec<RecOp>, commit: bool },
}

fn city() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&CITIES[..])
}

fn email() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&EMAILS[..])
}

fn rec_op() -> impl Strategy<Value = RecOp> {
    prop_oneof![
        3 => (0..KEYS, city(), email(), 0u8..100)
            .prop_map(|(id, city, email, age)| RecOp::Write { id, city, email, age }),
        1 => (0..KEYS, city(), email(), 0u8..100)
            .prop_map(|(id, city, email, age)| RecOp::Insert { id, city, email, age }),
        3 => (0..KEYS, option::of(city()), option::of(email()), option::of(0u8..100))
            .prop_map(|(id, city, email, age)| RecOp::Update { id, change: Change { city, email, age } }),
        2 => (0..KEYS).prop_map(|id| RecOp::Delete { id }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => rec_op().prop_map(Op::One),
        1 => (vec(rec_op(), 1..6), any::<bool>()).prop_map(|(ops, commit)| Op::Tx { ops, commit }),
    ]
}

/// Why a run failed: a database error where none was expected, or a check that failed.
#[derive(Debug)]
enum Fail {
    Db(mnesia::Error),
    Check(String),
}

impl From<mnesia::Error> for Fail {
    fn from(e: mnesia::Error) -> Self {
        Fail::Db(e)
    }
}

impl From<String> for Fail {
    fn from(s: String) -> Self {
        Fail::Check(s)
    }
}

macro_rules! ensure_eq {
    ($got:expr, $want:expr, $($ctx:tt)+) => {
        match (&$got, &$want) {
            (got, want) => {
                if got != want {
                    return Err(Fail::Check(format!(
                        "{}:\n   got: {:?}\n  want: {:?}",
                        format!($($ctx)+),
                        got,
                        want
                    )));
                }
            }
        }
    };
}

type Model<T> = BTreeMap<u32, T>;

/// Whether two keys of the model hold the same email.
fn has_dup<T: Rec>(m: &Model<T>) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    m.values().any(|r| !seen.insert(r.email().to_owned()))
}

/// The table as the caller sees it (inside a transaction: with its pending writes) must be
/// exactly the model.
fn check<T: Rec>(model: &Model<T>) -> Result<(), Fail> {
    let ordered = T::TYPE == TableType::OrderedSet;
    let want: Vec<&T> = model.values().collect();

    // list(): on an ordered_set in key order as returned; on a set in any order.
    let mut all = T::list()?;
    if !ordered {
        all.sort_by_key(Rec::id);
    }
    ensure_eq!(all.iter().collect::<Vec<_>>(), want, "list()");
    ensure_eq!(T::count()?, model.len(), "count()");
    ensure_eq!(T::all_keys()?.len(), model.len(), "all_keys().len()");
    for id in 0..KEYS {
        ensure_eq!(T::read(&id)?.as_ref(), model.get(&id), "read(&{id})");
    }

    // The plain index on city.
    for c in CITIES {
        ensure_eq!(
            T::query().filter(T::CITY_F.eq(c)).explain()?,
            Plan::IndexLookup { field: "city", values: 1 },
            "explain(city == {c:?})"
        );
        let mut got = T::select(T::CITY_F.eq(c))?;
        if !ordered {
            got.sort_by_key(Rec::id);
        }
        let want: Vec<&T> = model.values().filter(|r| r.city() == c).collect();
        ensure_eq!(got.iter().collect::<Vec<_>>(), want, "select(city == {c:?})");
    }

    // The unique index on email. Inside a transaction the pending state may hold a duplicate
    // (it is refused at commit): get_by then gives the first record in key order.
    for e in EMAILS {
        ensure_eq!(
            T::query().filter(T::EMAIL_F.eq(e)).explain()?,
            Plan::IndexLookup { field: "email", values: 1 },
            "explain(email == {e:?})"
        );
        let want = model.values().find(|r| r.email() == e);
        ensure_eq!(T::get_by(T::EMAIL_F, e)?.as_ref(), want, "get_by(email, {e:?})");
        let mut got = T::select(T::EMAIL_F.eq(e))?;
        if !ordered {
            got.sort_by_key(Rec::id);
        }
        let want: Vec<&T> = model.values().filter(|r| r.email() == e).collect();
        ensure_eq!(got.iter().collect::<Vec<_>>(), want, "select(email == {e:?})");
    }
    Ok(())
}

/// Checks that `got` is the `UniqueViolation` on `email` that writing `rec` over `model`
/// must give (outside a transaction: exactly one other key holds the email).
fn expect_unique_violation<T: Rec, X: Debug>(
    got: mnesia::Result<X>,
    rec: &T,
    model: &Model<T>,
) -> Result<(), Fail> {
    let holder = model
        .values()
        .find(|r| r.id() != rec.id() && r.email() == rec.email())
        .map(|r| format!("{:?}", r.id()));
    match got {
        Err(mnesia::Error::UniqueViolation { table, field, value, existing_key }) => {
            ensure_eq!(table, T::NAME, "UniqueViolation.table");
            ensure_eq!(field, "email", "UniqueViolation.field");
            ensure_eq!(value, format!("{:?}", rec.email()), "UniqueViolation.value");
            ensure_eq!(Some(existing_key), holder, "UniqueViolation.existing_key");
            Ok(())
        }
        other => Err(Fail::Check(format!(
            "writing {rec:?} must fail with UniqueViolation (email held by key {holder:?}), got {other:?}"
        ))),
    }
}

/// Runs one record operation and mirrors it in `model`. Outside a transaction a unique
/// violation fails the operation at once; inside one it is only found at commit.
fn apply_rec<T: Rec>(op: &RecOp, model: &mut Model<T>, in_tx: bool) -> Result<(), Fail> {
    match op {
        RecOp::Write { id, city, email, age } => {
            let rec = T::make(*id, city, email, *age);
            let mut next = model.clone();
            next.insert(*id, rec.clone());
            let got = T::write(rec.clone());
            if !in_tx && has_dup(&next) {
                return expect_unique_violation(got, &rec, model);
            }
            ensure_eq!(got?, rec, "write result");
            *model = next;
        }
        RecOp::Insert { id, city, email, age } => {
            let rec = T::make(*id, city, email, *age);
            let got = T::insert(rec.clone());
            if model.contains_key(id) {
                return match got {
                    Err(mnesia::Error::AlreadyExists { .. }) => Ok(()),
                    other => Err(Fail::Check(format!(
                        "insert of existing key {id} must fail with AlreadyExists, got {other:?}"
                    ))),
                };
            }
            let mut next = model.clone();
            next.insert(*id, rec.clone());
            if !in_tx && has_dup(&next) {
                return expect_unique_violation(got, &rec, model);
            }
            ensure_eq!(got?, rec, "insert result");
            *model = next;
        }
        RecOp::Update { id, change } => {
            let got = T::update(id, |r| r.apply(change));
            let Some(old) = model.get(id) else {
                return match got {
                    Err(mnesia::Error::NotFound { .. }) => Ok(()),
                    other => Err(Fail::Check(format!(
                        "update of missing key {id} must fail with NotFound, got {other:?}"
                    ))),
                };
            };
            let mut rec = old.clone();
            rec.apply(change);
            let mut next = model.clone();
            next.insert(*id, rec.clone());
            if !in_tx && has_dup(&next) {
                return expect_unique_violation(got, &rec, model);
            }
            ensure_eq!(got?, rec, "update result");
            *model = next;
        }
        RecOp::Delete { id } => {
            let got = T::delete(id)?;
            ensure_eq!(got, model.remove(id), "delete result");
        }
    }
    Ok(())
}

fn apply<T: Rec>(op: &Op, model: &mut Model<T>) -> Result<(), Fail> {
    match op {
        Op::One(op) => apply_rec(op, model, false),
        Op::Tx { ops, commit } => {
            let before = model.clone();
            let mut last: Option<Model<T>> = None;
            let result = mnesia::transaction(|| -> Result<(), Fail> {
                // The closure may run again on a retry: start from the committed state.
                let mut m = before.clone();
                for (i, op) in ops.iter().enumerate() {
                    apply_rec(op, &mut m, true).map_err(|e| in_tx_op(i, op, e))?;
                    check(&m).map_err(|e| in_tx_op(i, op, e))?;
                }
                last = Some(m);
                if *commit { Ok(()) } else { Err(Fail::Db(mnesia::Error::abort("x"))) }
            });
            let Some(m) = last else {
                return Err(result
                    .err()
                    .unwrap_or(Fail::Check("the transaction's closure did not finish".into())));
            };
            let dup = has_dup(&m);
            match result {
                Ok(()) if *commit && !dup => *model = m,
                Err(Fail::Db(mnesia::Error::Aborted(_))) if !*commit => {}
                Err(Fail::Db(mnesia::Error::UniqueViolation { field, .. }))
                    if *commit && dup && field == "email" => {}
                other => {
                    return Err(Fail::Check(format!(
                        "transaction (commit: {commit}, pending state has duplicate email: \
                         {dup}) ended with {other:?}; pending state: {m:?}"
                    )));
                }
            }
            Ok(())
        }
    }
}

fn in_tx_op(i: usize, op: &RecOp, e: Fail) -> Fail {
    match e {
        Fail::Check(s) => Fail::Check(format!("inside the transaction, after op {i} {op:?}: {s}")),
        db => db,
    }
}

fn run<T: Rec>(ops: &[Op]) -> Result<(), TestCaseError> {
    let db = Database::in_memory().map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    let result = db.scope(|| -> Result<(), String> {
        T::create_table(TableOptions::new()).map_err(|e| format!("create_table: {e:?}"))?;
        let mut model: Model<T> = BTreeMap::new();
        check(&model).map_err(|e| format!("empty table: {e:?}"))?;
        for (i, op) in ops.iter().enumerate() {
            let ctx = |e: Fail| match e {
                Fail::Check(s) => format!("op {i} {op:?}: {s}"),
                Fail::Db(e) => format!("op {i} {op:?}: unexpected error {e:?}"),
            };
            apply(op, &mut model).map_err(ctx)?;
            check(&model).map_err(|e| format!("after {}", ctx(e)))?;
        }
        Ok(())
    });
    result.map_err(TestCaseError::fail)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn set_table_agrees_with_model(ops in vec(op(), 0..40)) {
        run::<Person>(&ops)?;
    }

    #[test]
    fn ordered_set_table_agrees_with_model(ops in vec(op(), 0..40)) {
        run::<PersonOrd>(&ops)?;
    }
}

/// A fixed sequence that exercises the cases the random ones may miss.
#[test]
fn unique_value_moves_between_keys_in_one_transaction() {
    let ops = vec![
        Op::One(RecOp::Write { id: 1, city: "a", email: "x", age: 1 }),
        Op::One(RecOp::Write { id: 2, city: "b", email: "x", age: 2 }), // refused
        // Key 1 gives "x" up and key 2 takes it, in one transaction: allowed.
        Op::Tx {
            ops: vec![
                RecOp::Write { id: 2, city: "b", email: "x", age: 2 },
                RecOp::Update { id: 1, change: Change { city: None, email: Some("y"), age: None } },
            ],
            commit: true,
        },
        // Swap the emails of 1 and 2.
        Op::Tx {
            ops: vec![
                RecOp::Update { id: 1, change: Change { city: Some("c"), email: Some("x"), age: None } },
                RecOp::Update { id: 2, change: Change { city: None, email: Some("y"), age: None } },
            ],
            commit: true,
        },
        // A duplicate left at commit fails the whole transaction.
        Op::Tx {
            ops: vec![RecOp::Delete { id: 1 }, RecOp::Write { id: 3, city: "a", email: "y", age: 3 }],
            commit: true,
        },
        Op::Tx { ops: vec![RecOp::Delete { id: 1 }, RecOp::Delete { id: 2 }], commit: false },
        Op::One(RecOp::Delete { id: 1 }),
        Op::One(RecOp::Insert { id: 3, city: "a", email: "x", age: 3 }),
    ];
    if let Err(e) = run::<Person>(&ops) {
        panic!("{e}");
    }
    if let Err(e) = run::<PersonOrd>(&ops) {
        panic!("{e}");
    }
}
