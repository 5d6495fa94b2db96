//! Expiry figures: `ttl_write` (a write with a deadline, against a plain `tx_write` of the
//! same record measured here) and `reaper_100k_ms` (the reaper removing 100k expired
//! records, against `batch_delete` removing the same keys in batches of the same size).

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use mnesia::prelude::*;
use serde_json::json;

use crate::{Report, User, round, time_per_op, user};

/// `User` with a deadline.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "sessions")]
pub struct Session {
    #[key]
    id: u64,
    name: String,
    #[index(unique)]
    email: String,
    age: u32,
    #[ttl]
    expires_at: Option<SystemTime>,
}

pub fn session(id: u64) -> Session {
    let User { id, name, email, age } = user(id);
    Session { id, name, email, age, expires_at: None }
}

pub fn figures(report: &mut Report, records: u64, ops: u64) -> mnesia::Result<()> {
    if report.wants("ttl_write") {
        let db = Database::open(Config::default().auto_cleanup(false))?;
        db.scope(|| -> mnesia::Result<()> {
            User::create_table(TableOptions::new())?;
            Session::create_table(TableOptions::new())?;
            User::batch_write((0..records).map(user))?;
            Session::batch_write((0..records).map(session))?;
            let users: Vec<User> = (0..records).map(user).collect();
            let sessions: Vec<Session> = (0..records).map(session).collect();
            let pick = |i: u64| ((i.wrapping_mul(7919)) % records) as usize;
            let hour = Duration::from_secs(3600);
            let ours = time_per_op(ops, 3, |i| {
                black_box(Session::write_with_ttl(sessions[pick(i)].clone(), hour).ok());
            });
            let base = time_per_op(ops, 3, |i| {
                black_box(User::write(users[pick(i)].clone()).ok());
            });
            report.add("ttl_write", ours, base);
            Ok(())
        })?;
    }
    if report.wants("reaper_100k_ms") {
        let n = 100_000;
        let expired = |i: u64| Session { expires_at: Some(SystemTime::UNIX_EPOCH), ..session(i) };
        let (mut ms, mut floor) = (f64::MAX, f64::MAX);
        for _ in 0..3 {
            let db = Database::open(Config::default().auto_cleanup(false))?;
            db.scope(|| -> mnesia::Result<()> {
                Session::create_table(TableOptions::new())?;
                Session::batch_write((0..n).map(expired))?;
                let t = Instant::now();
                let removed = db.cleanup_expired()?;
                ms = ms.min(t.elapsed().as_secs_f64() * 1000.0);
                if removed as u64 != n {
                    return Err(mnesia::Error::Invalid(format!("reaper_100k_ms: removed {removed} of {n}")));
                }
                // The floor: the same records (live this time) deleted by key in batches of
                // the reaper's size.
                Session::batch_write((0..n).map(session))?;
                let keys: Vec<u64> = (0..n).collect();
                let t = Instant::now();
                for chunk in keys.chunks(1000) {
                    black_box(Session::batch_delete(chunk.iter().copied())?);
                }
                floor = floor.min(t.elapsed().as_secs_f64() * 1000.0);
                Ok(())
            })?;
        }
        eprintln!("{:<22} {ms:>10.1} ms        floor {floor:>10.1} ms (batch_delete)", "reaper_100k_ms");
        report.figures.insert(
            "reaper_100k_ms".into(),
            json!({ "value": round(ms), "floor_ms": round(floor), "ratio": round(ms / floor), "records": n }),
        );
    }
    Ok(())
}
