//! Property: whatever several threads do at once on a primary (transactions, dirty writes,
//! batches, a unique index, a bag, deletes, clears, index changes, named counters, ids
//! taken and the auto-increment counter set back, on a disc table and a ram table), a replica fed the primary's commit records ends with the same records and
//! counters, and the primary opened again from its directory (its log replayed) with the
//! same disc table and counters.

use std::sync::mpsc;

use mnesia::prelude::*;
use mnesia::{CommitRecord, Error};
use proptest::prelude::*;

/// On disc on the primary.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Account {
    #[key]
    #[auto_increment]
    id: u32,
    #[index(unique)]
    email: String,
    balance: i64,
}

/// In memory.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "bag")]
struct Entry {
    #[key]
    account: u32,
    #[index]
    note: String,
}

#[derive(Clone, Debug)]
enum Op {
    /// Writes an account (its email may be another's: a unique violation).
    Write {
        id: u32,
        email: u8,
        balance: i64,
    },
    /// Inserts an account (refused when the key is taken).
    Insert {
        id: u32,
        email: u8,
    },
    /// Moves an amount between two accounts in one transaction.
    Transfer {
        from: u32,
        to: u32,
        amount: i64,
    },
    Delete {
        id: u32,
    },
    DirtyWrite {
        id: u32,
        email: u8,
        balance: i64,
    },
    /// Adds a bag entry and deletes another key's entries, in one transaction.
    Note {
        account: u32,
        note: u8,
        forget: u32,
    },
    /// Writes several accounts in one batch.
    Batch {
        first: u32,
        n: u32,
    },
    Count {
        name: u8,
        by: i64,
    },
    /// Empties the bag table.
    Clear,
    /// Empties the disc table (a clear in the log).
    ClearAccounts,
    /// Adds an index on the balance, or removes it.
    Reindex,
    /// Takes the next auto-increment id without a record.
    NextId,
    /// Sets the auto-increment counter back (or forward).
    Reset {
        next: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0u32..12;
    prop_oneof![
        3 => (id.clone(), 0u8..8, -50i64..50).prop_map(|(id, email, balance)| Op::Write { id, email, balance }),
        2 => (id.clone(), 0u8..8).prop_map(|(id, email)| Op::Insert { id, email }),
        3 => (id.clone(), id.clone(), 1i64..20).prop_map(|(from, to, amount)| Op::Transfer { from, to, amount }),
        2 => id.clone().prop_map(|id| Op::Delete { id }),
        2 => (id.clone(), 0u8..8, -50i64..50).prop_map(|(id, email, balance)| Op::DirtyWrite {
            id,
            email,
            balance
        }),
        3 => (id.clone(), 0u8..4, id.clone()).prop_map(|(account, note, forget)| Op::Note {
            account,
            note,
            forget
        }),
        2 => (id, 1u32..4).prop_map(|(first, n)| Op::Batch { first, n }),
        2 => (0u8..3, -3i64..4).prop_map(|(name, by)| Op::Count { name, by }),
        1 => Just(Op::Clear),
        1 => Just(Op::ClearAccounts),
        1 => Just(Op::Reindex),
        1 => Just(Op::NextId),
        1 => (1u64..20).prop_map(|next| Op::Reset { next }),
    ]
}

fn email(n: u8) -> String {
    format!("user{n}@example.com")
}

fn run(op: &Op) -> mnesia::Result<()> {
    match *op {
        Op::Write { id, email: e, balance } => {
            Account::write(Account { id, email: email(e), balance }).map(drop)
        }
        Op::Insert { id, email: e } => Account::insert(Account { id, email: email(e), balance: 0 }).map(drop),
        Op::Transfer { from, to, amount } => mnesia::transaction(|| {
            Account::update(&from, |a| a.balance -= amount)?;
            Account::update(&to, |a| a.balance += amount).map(drop)
        }),
        Op::Delete { id } => Account::delete(&id).map(drop),
        Op::DirtyWrite { id, email: e, balance } => {
            Account::dirty_write(Account { id, email: email(e), balance }).map(drop)
        }
        Op::Note { account, note, forget } => mnesia::transaction(|| {
            Entry::write(Entry { account, note: format!("note {note}") })?;
            Entry::delete(&forget).map(drop)
        }),
        Op::Batch { first, n } => Account::batch_write((first..first + n).map(|id| Account {
            id,
            email: format!("batch{id}@example.com"),
            balance: 1,
        }))
        .map(drop),
        Op::Count { name, by } => mnesia::dirty_update_counter(&format!("c{name}"), by).map(drop),
        Op::Clear => Entry::clear(),
        Op::ClearAccounts => Account::clear(),
        Op::Reindex => match Account::add_index(Account::BALANCE) {
            Err(Error::IndexExists { .. }) => Account::remove_index(Account::BALANCE),
            other => other,
        },
        Op::NextId => Account::next_id().map(drop),
        Op::Reset { next } => Account::reset_counter(next),
    }
}

/// Every record of both tables as sorted JSON lines, the named counters, and the disc
/// table's indexes.
fn state(db: &Database, ram_too: bool) -> (Vec<String>, Vec<String>, Vec<i64>, Vec<mnesia::IndexInfo>) {
    db.scope(|| -> mnesia::Result<_> {
        let lines = |f: &dyn Fn(&mut Vec<u8>) -> mnesia::Result<usize>| -> mnesia::Result<Vec<String>> {
            let mut buf = Vec::new();
            f(&mut buf)?;
            let mut v: Vec<String> =
                String::from_utf8(buf).expect("utf-8").lines().map(str::to_owned).collect();
            v.sort();
            Ok(v)
        };
        let accounts = lines(&|b| Account::export_to(b, mnesia::Format::JsonLines))?;
        let entries =
            if ram_too { lines(&|b| Entry::export_to(b, mnesia::Format::JsonLines))? } else { Vec::new() };
        // (Not the auto-increment counter: a write raises it when buffered, also when its
        // transaction then fails, which no record tells a replica or the log.)
        let counters =
            (0..3).map(|n| mnesia::current_value(&format!("c{n}"))).collect::<mnesia::Result<_>>()?;
        Ok((accounts, entries, counters, Account::table_info()?.indexes))
    })
    .expect("state")
}

fn check(threads: &[Vec<Op>]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("dir");
    mnesia::Schema::create(dir.path()).expect("schema");
    let open = || Database::open(Config::default().dir(dir.path()).auto_cleanup(false)).expect("open");
    let primary = open();
    let replica = Database::in_memory().expect("replica");
    primary
        .scope(|| -> mnesia::Result<()> {
            Account::create_table(TableOptions::new().disc_copies([primary.node()]))?;
            Entry::create_table(TableOptions::new())
        })
        .expect("primary's tables");
    replica
        .scope(|| -> mnesia::Result<()> {
            Account::create_table(TableOptions::new())?;
            Entry::create_table(TableOptions::new())
        })
        .expect("replica's tables");
    let (to_replica, records) = mpsc::channel::<CommitRecord>();
    primary.replicate_to(move |r: &CommitRecord| {
        let _ = to_replica.send(r.clone());
    });
    let applier = {
        let replica = replica.clone();
        std::thread::spawn(move || records.iter().try_for_each(|r| replica.apply_commit(&r)))
    };
    std::thread::scope(|s| {
        for ops in threads {
            let primary = primary.clone();
            s.spawn(move || {
                primary.scope(|| {
                    for op in ops {
                        match run(op) {
                            Ok(())
                            | Err(Error::UniqueViolation { .. })
                            | Err(Error::NotFound { .. })
                            | Err(Error::AlreadyExists { .. })
                            | Err(Error::IndexExists { .. })
                            | Err(Error::NoSuchIndex { .. }) => {}
                            Err(e) => panic!("{op:?}: {e}"),
                        }
                    }
                })
            });
        }
    });
    primary.stop_replicating();
    applier.join().expect("applier").expect("every record applies");
    let here = state(&primary, true);
    prop_assert_eq!(&state(&replica, true), &here, "the replica differs from the primary");
    drop(primary);
    // Dropped without a closing checkpoint: opening the directory replays the log.
    let recovered = state(&open(), false);
    prop_assert_eq!(&recovered.0, &here.0, "the disc table recovered from the log differs");
    prop_assert_eq!(&recovered.2, &here.2, "the counters recovered from the log differ");
    prop_assert_eq!(&recovered.3, &here.3, "the indexes recovered differ");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn a_replica_and_the_recovered_primary_end_as_the_primary(
        threads in prop::collection::vec(prop::collection::vec(op(), 1..30), 1..4)
    ) {
        check(&threads)?;
    }
}
