//! Transactions: joining, read-your-writes, rollback on `Err` and on panic, retries.

use std::sync::atomic::{AtomicU32, Ordering};

use mnesia::Error;
use mnesia::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Account {
    #[key]
    id: u32,
    #[index]
    owner: String,
    balance: i64,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Post {
    #[key]
    #[auto_increment]
    id: u64,
    account: u32,
}

fn acct(id: u32, owner: &str, balance: i64) -> Account {
    Account { id, owner: owner.into(), balance }
}

fn with_db(f: impl FnOnce() -> mnesia::Result<()>) {
    let db = Database::in_memory().expect("db");
    db.scope(|| {
        Account::create_table(TableOptions::new()).expect("accounts");
        Post::create_table(TableOptions::new()).expect("posts");
        f().expect("test body");
    });
}

#[test]
fn all_or_nothing_across_tables() {
    with_db(|| {
        let (a, p) = mnesia::transaction(|| {
            let a = Account::write(acct(1, "ann", 10))?;
            let p = Post::insert(Post { id: 0, account: a.id })?;
            Ok::<_, Error>((a, p))
        })?;
        assert_eq!(p.id, 1);
        assert_eq!(Account::read(&a.id)?, Some(a));
        let r: mnesia::Result<()> = mnesia::transaction(|| {
            Account::write(acct(2, "bob", 5))?;
            Post::insert(Post { id: 0, account: 2 })?;
            Err(Error::abort("changed my mind"))
        });
        assert!(matches!(r, Err(Error::Aborted(_))));
        assert_eq!(Account::read(&2)?, None);
        assert_eq!(Post::count()?, 1);
        // The aborted insert consumed id 2: gaps are allowed, reuse is not.
        assert_eq!(Post::insert(Post { id: 0, account: 1 })?.id, 3);
        Ok(())
    });
}

#[test]
fn read_your_writes_everywhere() {
    with_db(|| {
        Account::write(acct(1, "ann", 10))?;
        mnesia::transaction(|| {
            Account::write(acct(2, "bob", 20))?;
            Account::update(&1, |a| a.owner = "bob".into())?;
            assert_eq!(Account::read(&2)?.map(|a| a.balance), Some(20));
            assert_eq!(Account::count()?, 2);
            assert_eq!(
                Account::select(Account::OWNER.eq("bob"))?.len(),
                2,
                "index lookup sees pending writes"
            );
            assert_eq!(
                Account::select(Account::OWNER.eq("ann"))?.len(),
                0,
                "and pending changes of old values"
            );
            assert_eq!(Account::get_by(Account::OWNER, "bob")?.map(|a| a.id), Some(1));
            assert_eq!(Account::select(Account::BALANCE.gt(15))?.len(), 1, "scans too");
            Account::delete(&2)?;
            assert_eq!(Account::read(&2)?, None);
            assert_eq!(Account::count()?, 1);
            assert_eq!(Account::query().filter(Account::OWNER.eq("bob")).count()?, 1);
            let mut n = 0;
            for a in Account::query().chunk_size(1).iter() {
                a?;
                n += 1;
            }
            assert_eq!(n, 1, "chunked iteration sees the pending delete");
            Ok::<_, Error>(())
        })?;
        // Outside, before commit nothing was visible; after, everything is.
        assert_eq!(Account::read(&1)?.map(|a| a.owner), Some("bob".into()));
        assert_eq!(Account::read(&2)?, None);
        Ok(())
    });
}

#[test]
fn uncommitted_writes_are_invisible_to_others() {
    let db = Database::in_memory().expect("db");
    db.create_table::<Account>(TableOptions::new()).expect("table");
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            db.transaction(|tx| {
                tx.write(acct(1, "ann", 1))?;
                let _ = started_tx.send(());
                let _ = go_rx.recv();
                Ok::<_, Error>(())
            })
        })
    };
    started_rx.recv().expect("started");
    assert_eq!(db.scope(|| Account::read(&1)).expect("read"), None);
    go_tx.send(()).expect("go");
    writer.join().expect("join").expect("commit");
    assert!(db.scope(|| Account::read(&1)).expect("read").is_some());
}

#[test]
fn nested_transactions_join_the_outermost() {
    with_db(|| {
        let r: mnesia::Result<()> = mnesia::transaction(|| {
            Account::write(acct(1, "ann", 1))?;
            mnesia::transaction(|| {
                assert!(mnesia::is_transaction());
                Account::write(acct(2, "bob", 2))
            })?;
            assert_eq!(Account::count()?, 2);
            Err(Error::abort("outer fails"))
        });
        assert!(r.is_err());
        assert_eq!(Account::count()?, 0, "the inner transaction was part of the outer one");
        Ok(())
    });
}

#[derive(Debug, PartialEq)]
enum BankError {
    Insufficient { needed: i64 },
    Db(String),
}

impl From<Error> for BankError {
    fn from(e: Error) -> Self {
        BankError::Db(e.to_string())
    }
}

#[test]
fn user_error_types_roll_back_and_come_back() {
    with_db(|| {
        Account::write(acct(1, "ann", 10))?;
        let r: Result<(), BankError> = mnesia::transaction(|| {
            let a = Account::update(&1, |a| a.balance -= 50)?;
            if a.balance < 0 {
                return Err(BankError::Insufficient { needed: -a.balance });
            }
            Ok(())
        });
        assert_eq!(r, Err(BankError::Insufficient { needed: 40 }));
        assert_eq!(Account::read(&1)?.map(|a| a.balance), Some(10));
        Ok(())
    });
}

#[test]
fn a_panic_rolls_back_and_propagates() {
    let db = Database::in_memory().expect("db");
    db.create_table::<Account>(TableOptions::new()).expect("table");
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        db.scope(|| {
            let _ = mnesia::transaction(|| {
                Account::write(acct(1, "ann", 1))?;
                panic!("boom");
                #[allow(unreachable_code)]
                Ok::<_, Error>(())
            });
        })
    }));
    assert!(caught.is_err());
    db.scope(|| {
        assert!(!mnesia::is_transaction(), "the panicked transaction is gone");
        assert_eq!(Account::read(&1).expect("read"), None);
        Account::write(acct(1, "ann", 1)).expect("the thread still works");
    });
}

#[test]
fn explicit_handle_shares_the_code_path() {
    let db = Database::in_memory().expect("db");
    db.create_table::<Account>(TableOptions::new()).expect("table");
    let n = db
        .transaction(|tx| {
            tx.write(acct(1, "ann", 1))?;
            // Table-scoped calls inside join the same transaction.
            Account::write(acct(2, "bob", 2))?;
            assert_eq!(tx.count::<Account>()?, 2);
            assert_eq!(tx.get_by(Account::OWNER, "bob")?.map(|a| a.id), Some(2));
            tx.update::<Account>(&1, |a| a.balance = 100)?;
            assert_eq!(tx.select(Account::BALANCE.ge(100))?.len(), 1);
            tx.delete::<Account>(&2)?;
            tx.list::<Account>().map(|l| l.len())
        })
        .expect("tx");
    assert_eq!(n, 1);
    let other = Database::in_memory().expect("db2");
    let r = db.transaction(|_| other.transaction(|_| Ok::<_, Error>(())));
    assert!(matches!(r, Err(Error::Invalid(_))), "one transaction per thread and database");
}

#[test]
fn retries_stop_at_the_configured_bound() {
    retries_stop_at_the_configured_bound_with(Config::default());
}

/// The same when the transaction escalates at once: the writer it waits for inside its
/// closure waits at the gate for a while, then goes ahead (no deadlock).
#[test]
fn retries_stop_at_the_configured_bound_escalating_at_once() {
    retries_stop_at_the_configured_bound_with(Config::default().escalate_after(1));
}

fn retries_stop_at_the_configured_bound_with(config: Config) {
    let db = Database::open(config.max_retries(5)).expect("db");
    db.create_table::<Account>(TableOptions::new()).expect("table");
    db.scope(|| Account::write(acct(1, "ann", 0))).expect("seed");
    let runs = AtomicU32::new(0);
    let r = db.transaction(|tx| {
        runs.fetch_add(1, Ordering::SeqCst);
        let a = tx.read::<Account>(&1)?.expect("exists");
        // Another thread commits a change to what this transaction read: a conflict, every time.
        std::thread::scope(|s| {
            s.spawn(|| db.scope(|| Account::update(&1, |a| a.balance += 1)))
                .join()
                .expect("join")
                .expect("update");
        });
        tx.write(acct(2, "bob", a.balance))?;
        Ok::<_, Error>(())
    });
    assert!(matches!(r, Err(Error::TooManyRetries { attempts: 5 })), "{r:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 5);
    db.scope(|| {
        assert_eq!(Account::read(&2).expect("read"), None);
        assert_eq!(Account::read(&1).expect("read").map(|a| a.balance), Some(5));
    });
}
