//! Transactions, mirroring MnesiaEx's `examples/07_transactions.exs`: composition, calls
//! that join an enclosing transaction, ids taken inside a transaction, rollback on an
//! error of your own type, and automatic retries under contention.
//!
//! Run: `cargo run -p examples --example 07_transactions`

use mnesia::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "accounts")]
struct Account {
    #[key]
    id: u32,
    #[index]
    owner: String,
    balance: i64,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "transfers")]
struct Transfer {
    #[key]
    #[auto_increment]
    id: u64,
    from: u32,
    to: u32,
    amount: i64,
}

/// An application error: transactions hand it back as it is.
#[derive(Debug)]
enum BankError {
    Insufficient { account: u32, balance: i64, wanted: i64 },
    Db(mnesia::Error),
}

impl std::fmt::Display for BankError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BankError::Insufficient { account, balance, wanted } => {
                write!(f, "account {account} has {balance}, wanted {wanted}")
            }
            BankError::Db(e) => write!(f, "database: {e}"),
        }
    }
}

impl From<mnesia::Error> for BankError {
    fn from(e: mnesia::Error) -> Self {
        BankError::Db(e)
    }
}

/// Works standalone (its own transaction) and inside another transaction (joins it).
fn transfer(from: u32, to: u32, amount: i64) -> Result<Transfer, BankError> {
    mnesia::transaction(|| {
        let source = Account::update(&from, |a| a.balance -= amount)?;
        if source.balance < 0 {
            return Err(BankError::Insufficient {
                account: from,
                balance: source.balance + amount,
                wanted: amount,
            });
        }
        Account::update(&to, |a| a.balance += amount)?;
        Ok(Transfer::insert(Transfer { id: 0, from, to, amount })?)
    })
}

fn balances() -> mnesia::Result<Vec<(String, i64)>> {
    let mut all: Vec<(String, i64)> = Account::list()?.into_iter().map(|a| (a.owner, a.balance)).collect();
    all.sort();
    Ok(all)
}

fn main() -> Result<(), BankError> {
    let _db = mnesia::start(Config::default())?;
    Account::create_table(TableOptions::new())?;
    Transfer::create_table(TableOptions::new())?;
    Account::batch_write([
        Account { id: 1, owner: "alice".into(), balance: 100 },
        Account { id: 2, owner: "bob".into(), balance: 50 },
        Account { id: 3, owner: "carol".into(), balance: 0 },
    ])?;
    println!("start:            {:?}", balances()?);

    let t = transfer(1, 2, 30)?;
    println!("transfer #{} done: {:?}", t.id, balances()?);
    let owed = |a: i64, b: i64, c: i64| {
        vec![("alice".to_owned(), a), ("bob".to_owned(), b), ("carol".to_owned(), c)]
    };
    assert_eq!((t.id, balances()?), (1, owed(70, 80, 0)));

    // Two transfers composed into one transaction: both or neither.
    let (a, b) = mnesia::transaction(|| Ok::<_, BankError>((transfer(2, 3, 20)?, transfer(3, 1, 5)?)))?;
    println!("composed #{} and #{}: {:?}", a.id, b.id, balances()?);
    assert_eq!((a.id, b.id, balances()?), (2, 3, owed(75, 60, 15)));

    // A failing step rolls back everything, including the first step and its id.
    let failed = mnesia::transaction(|| {
        transfer(1, 3, 10)?;
        transfer(3, 2, 1_000)
    });
    match failed {
        Err(e) => {
            println!("rolled back: {e}");
            assert!(matches!(e, BankError::Insufficient { account: 3, balance: 25, wanted: 1_000 }), "{e}");
        }
        Ok(t) => panic!("unexpected: {t:?}"),
    }
    println!("unchanged:        {:?}", balances()?);
    println!("transfers logged: {} (the aborted one left a gap in the ids)", Transfer::count()?);
    assert_eq!((balances()?, Transfer::count()?), (owed(75, 60, 15), 3));

    // mnesia::Error::abort for a plain reason, like Mnesia's abort/1.
    let r: mnesia::Result<()> = mnesia::transaction(|| {
        Account::update(&1, |a| a.balance = 0)?;
        Err(mnesia::Error::abort("audit lock"))
    });
    println!("abort: {}", r.as_ref().map(|_| "committed".to_string()).unwrap_or_else(|e| e.to_string()));
    assert!(matches!(r, Err(mnesia::Error::Aborted(_))), "{r:?}");
    assert_eq!(balances()?, owed(75, 60, 15));

    // Contention: 4 threads move money around; conflicts are retried, the total holds.
    let db = _db.clone();
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let db = db.clone();
            s.spawn(move || {
                db.scope(|| {
                    for i in 0..250u32 {
                        let from = (t + i) % 3 + 1;
                        let _ = transfer(from, from % 3 + 1, 1);
                    }
                })
            });
        }
    });
    let total: i64 = Account::list()?.iter().map(|a| a.balance).sum();
    println!("after 1000 concurrent transfers: {:?}, total {total}", balances()?);
    assert_eq!(total, 150, "no transfer was lost or half applied");
    mnesia::stop()?;
    Ok(())
}

/// `cargo test` runs the example: its assertions are the README's promises.
#[test]
fn the_example_holds() {
    main().expect("example");
}
