//! Crash recovery: a child process commits transactions on disc_copies tables and reports
//! each one the moment its commit returns; the parent kills it with SIGKILL at random
//! moments, reopens the directory and checks that every acknowledged commit is there, that
//! no transaction is half applied, and that indexes agree with the data.

use std::time::Duration;

use mnesia::Error;
use mnesia::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Account {
    #[key]
    id: u32,
    balance: i64,
}

/// One row per committed transfer, written in the same transaction as the transfer.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Transfer {
    #[key]
    #[auto_increment]
    id: u64,
    #[index(unique)]
    token: String,
    from: u32,
    to: u32,
    amount: i64,
}

/// A disc_only_copies table written in the same transactions: one row per transfer.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Receipt {
    #[key]
    token: String,
    #[index]
    amount: i64,
}

const ACCOUNTS: u32 = 8;
const TOTAL: i64 = ACCOUNTS as i64 * 1000;
const CHILD_ENV: &str = "MNESIA_CRASH_CHILD_DIR";

fn disc<T: Table>() -> TableOptions<T> {
    TableOptions::new().disc_copies(["local@localhost"])
}

/// The child: runs only when the parent starts this test binary with the directory set.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let run: u64 = std::env::var("MNESIA_CRASH_RUN").ok().and_then(|r| r.parse().ok()).unwrap_or(0);
    let db = Database::open(Config::default().dir(&dir)).expect("child open");
    db.scope(|| -> mnesia::Result<()> {
        // Each step of the set-up on its own: a kill may fall between any two of them, and
        // the next run does what is missing.
        if !Account::exists()? {
            Account::create_table(disc())?;
        }
        if !Transfer::exists()? {
            Transfer::create_table(disc())?;
        }
        if !Receipt::exists()? {
            Receipt::create_table(TableOptions::new().disc_only_copies(["local@localhost"]))?;
        }
        if Account::count()? == 0 {
            // One transaction: all the accounts or none.
            Account::batch_write((0..ACCOUNTS).map(|id| Account { id, balance: 1000 }))?;
        }
        let mut seed = run * 7919 + 17;
        for n in 0u64.. {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let (from, to, amount) = ((seed % 8) as u32, ((seed >> 8) % 8) as u32, (seed >> 16) as i64 % 50);
            let token = format!("{run}-{n}");
            mnesia::transaction(|| {
                Account::update(&from, |a| a.balance -= amount)?;
                Account::update(&to, |a| a.balance += amount)?;
                Transfer::insert(Transfer { id: 0, token: token.clone(), from, to, amount })?;
                Receipt::write(Receipt { token: token.clone(), amount })?;
                Ok::<_, Error>(())
            })?;
            // Acknowledged: the commit returned.
            println!("ACK {token}");
        }
        Ok(())
    })
    .expect("child");
}

#[test]
fn every_acknowledged_commit_survives_sigkill() {
    let dir = tests::schema_dir();
    let mut acknowledged: Vec<String> = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let rounds = 50;
    for run in 0..rounds {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let lifetime = Duration::from_millis(5 + seed % 60);
        let run_env = run.to_string();
        let child = tests::Child::spawn(
            "crash_child",
            &[(CHILD_ENV, dir.path().as_os_str()), ("MNESIA_CRASH_RUN", run_env.as_ref())],
        );
        acknowledged.extend(child.kill_after(lifetime).0);

        let db = Database::open(Config::default().dir(dir.path())).expect("reopen after SIGKILL");
        db.scope(|| -> mnesia::Result<()> {
            let ready = Account::exists()? && Transfer::exists()? && Receipt::exists()?;
            if !ready || Account::count()? == 0 {
                assert!(
                    acknowledged.is_empty(),
                    "run {run}: killed during the set-up, yet commits were acknowledged"
                );
                return Ok(());
            }
            let accounts = Account::list()?;
            let total: i64 = accounts.iter().map(|a| a.balance).sum();
            assert_eq!(total, TOTAL, "run {run}: a transfer was half applied");
            // Each transfer row was written in the transaction that moved the money: the
            // balances must be exactly what the recorded transfers add up to.
            let transfers = Transfer::list()?;
            let mut expected = vec![1000i64; ACCOUNTS as usize];
            for t in &transfers {
                expected[t.from as usize] -= t.amount;
                expected[t.to as usize] += t.amount;
            }
            for a in &accounts {
                assert_eq!(
                    a.balance, expected[a.id as usize],
                    "run {run}: account {} disagrees with the transfers",
                    a.id
                );
            }
            for token in &acknowledged {
                let t = Transfer::get_by(Transfer::TOKEN, token)?;
                assert!(t.is_some(), "run {run}: acknowledged commit {token} is lost");
                assert!(Receipt::read(token)?.is_some(), "run {run}: the disc_only part of {token} is lost");
            }
            // Both tables hold the same commits: no transaction is half applied across them.
            assert_eq!(
                Receipt::count()?,
                Transfer::count()?,
                "run {run}: disc_only and disc_copies disagree"
            );
            // The unique index agrees with the data, both ways.
            for t in &transfers {
                assert_eq!(Transfer::get_by(Transfer::TOKEN, &t.token)?.as_ref(), Some(t));
            }
            let mut ids: Vec<u64> = transfers.iter().map(|t| t.id).collect();
            ids.dedup();
            assert_eq!(ids.len(), transfers.len());
            Ok(())
        })
        .expect("check");
        if run % 10 == 9 {
            db.checkpoint().expect("checkpoint between crashes");
        }
        db.close().expect("close");
    }
    assert!(
        acknowledged.len() > rounds,
        "the children committed too little to prove anything: {}",
        acknowledged.len()
    );
}
