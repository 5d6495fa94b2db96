//! What the database tells a `tracing` subscriber: slow transactions, transactions that keep
//! losing conflicts, checkpoints, recovery, the reaper's removals, backup and restore,
//! export and import, each with its figures.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use mnesia::prelude::*;
use mnesia::{ManualClock, RestoreOptions};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// One event: its target, its message and its other fields.
#[derive(Clone, Debug)]
struct Seen {
    target: String,
    message: String,
    fields: Vec<(String, String)>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A subscriber that keeps the database's events.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Seen>>>);

impl Collect {
    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.0.lock().expect("lock"))
    }

    fn find(&self, target: &str, message: &str) -> Vec<Seen> {
        self.take().into_iter().filter(|s| s.target == target && s.message.contains(message)).collect()
    }
}

struct Fields<'a>(&'a mut Seen);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.message = format!("{value:?}");
        } else {
            self.0.fields.push((field.name().to_owned(), format!("{value:?}")));
        }
    }
}

impl Subscriber for Collect {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("mnesia")
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut seen =
            Seen { target: event.metadata().target().to_owned(), message: String::new(), fields: Vec::new() };
        event.record(&mut Fields(&mut seen));
        self.0.lock().expect("lock").push(seen);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Account {
    #[key]
    id: u32,
    balance: i64,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Session {
    #[key]
    token: String,
    #[ttl]
    expires_at: Option<SystemTime>,
}

#[test]
fn slow_transactions_and_repeated_conflicts_are_reported() {
    let seen = Collect::default();
    tracing::subscriber::with_default(seen.clone(), || {
        let config = Config::default().slow_transaction(Duration::ZERO).report_conflicts_after(1);
        let db = Database::open(config).expect("db");
        db.scope(|| -> mnesia::Result<()> {
            Account::create_table(TableOptions::new())?;
            Account::write(Account { id: 1, balance: 10 })?;
            seen.take();
            // Every transaction is slow past a threshold of zero.
            mnesia::transaction(|| Account::write(Account { id: 2, balance: 0 }))?;
            let slow = seen.find("mnesia::transaction", "slow transaction");
            assert_eq!(slow.len(), 1, "{slow:?}");
            assert_eq!(slow[0].field("attempts"), Some("1"));
            assert!(slow[0].field("took_ms").is_some());

            // A transaction whose read is overwritten before it commits loses once.
            let mut runs = 0;
            mnesia::transaction(|| {
                runs += 1;
                let a = Account::read(&1)?.expect("account");
                if runs == 1 {
                    let db = db.clone();
                    std::thread::spawn(move || db.scope(|| Account::write(Account { id: 1, balance: 99 })))
                        .join()
                        .expect("writer")?;
                }
                Account::write(Account { balance: a.balance + 1, ..a })
            })?;
            assert_eq!(runs, 2);
            assert_eq!(Account::read(&1)?.map(|a| a.balance), Some(100));
            let losing = seen.find("mnesia::transaction", "keeps losing");
            assert_eq!(losing.len(), 1, "{losing:?}");
            assert_eq!(losing[0].field("conflicts"), Some("1"));
            Ok(())
        })
        .expect("body");
    });
}

#[test]
fn checkpoints_recovery_backup_restore_export_import_and_the_reaper_are_reported() {
    let seen = Collect::default();
    let dir = tests::schema_dir();
    let clock = ManualClock::starting_now();
    let open = || {
        Database::open(Config::default().dir(dir.path()).auto_cleanup(false).clock(clock.clone()))
            .expect("open")
    };
    tracing::subscriber::with_default(seen.clone(), || {
        let db = open();
        let recovered = seen.find("mnesia::recovery", "recovered");
        assert_eq!(recovered.len(), 1, "{recovered:?}");
        assert_eq!(recovered[0].field("commits_replayed"), Some("0"));
        db.scope(|| -> mnesia::Result<()> {
            Account::create_table(TableOptions::new().disc_copies(["local@localhost"]))?;
            Session::create_table(TableOptions::new())?;
            Account::batch_write((0..5).map(|id| Account { id, balance: 1 }))?;
            Ok(())
        })
        .expect("write");
        db.checkpoint().expect("checkpoint");
        let checkpoints = seen.find("mnesia::checkpoint", "checkpoint written");
        assert_eq!(checkpoints.len(), 1, "{checkpoints:?}");
        assert_eq!(checkpoints[0].field("tables"), Some("1"));

        let file = dir.path().join("all.bak");
        db.scope(|| -> mnesia::Result<()> {
            db.backup(&file)?;
            let backups = seen.find("mnesia::backup", "backup written");
            assert_eq!(backups.len(), 1, "{backups:?}");
            assert_eq!(backups[0].field("records"), Some("5"));
            assert_eq!(db.restore(&file, &RestoreOptions::new())?, 5);
            assert_eq!(seen.find("mnesia::backup", "backup restored").len(), 1);

            let csv = dir.path().join("accounts.csv");
            assert_eq!(Account::export(&csv)?, 5);
            let exported = seen.find("mnesia::transfer", "exported");
            assert_eq!(exported.len(), 1, "{exported:?}");
            assert_eq!(
                (exported[0].field("table"), exported[0].field("records")),
                (Some("\"account\""), Some("5"))
            );
            Account::clear()?;
            assert_eq!(Account::import(&csv)?, 5);
            assert_eq!(seen.find("mnesia::transfer", "imported").len(), 1);

            Session::write_with_ttl(Session { token: "t".into(), expires_at: None }, Duration::from_secs(1))?;
            clock.advance(Duration::from_secs(1));
            seen.take();
            assert_eq!(db.cleanup_expired()?, 1);
            let reaped = seen.find("mnesia::reaper", "expired records removed");
            assert_eq!(reaped.len(), 1, "{reaped:?}");
            assert_eq!(reaped[0].field("removed"), Some("1"));
            Ok(())
        })
        .expect("body");
        drop(db);
        // Reopened: the commits since the checkpoint are replayed, and said so.
        seen.take();
        let db = open();
        let recovered = seen.find("mnesia::recovery", "recovered");
        assert_eq!(recovered.len(), 1, "{recovered:?}");
        assert!(recovered[0].field("commits_replayed").is_some_and(|n| n != "0"), "{recovered:?}");
        drop(db);
    });
}
