//! The table-scoped operations. `Table`'s provided functions and the explicit transaction
//! handle both call these, so there is one code path under both.

use crate::engine::meta::{all_ok, as_record, first_of, into_record, into_records, meta_of};
use crate::engine::store::{TableStore, Write};
use crate::error::{Error, Result};
use crate::schema::field::{Compare, Field, FieldValue};
use crate::schema::filter::Filter;
use crate::schema::record::{Record, TableType, Upserted};
use crate::schema::row::{Row, RowOf};
use crate::schema::stored::StoredRecord;
use crate::tx::Tx;
use crate::tx::context::{self, run, run_tx, with_tx};

pub(crate) fn not_found<T: Record>(key: &T::Key) -> Error {
    Error::NotFound { table: T::NAME.to_owned(), key: format!("{key:?}") }
}

fn no_bag<T: Record>(what: &str) -> Result<()> {
    if T::TYPE == TableType::Bag {
        return Err(Error::Invalid(format!("{what} is not defined on bag table {}", T::NAME)));
    }
    Ok(())
}

/// Writes a record: replaces the key's record (bag: adds it to the key's records). An
/// `#[auto_increment]` key left at 0 gets the next id.
pub(crate) fn write<T: Record>(mut rec: T) -> Result<T> {
    let fresh = wants_id(&rec);
    run_tx(|tx| {
        assign_id(tx, &mut rec, fresh)?;
        put(tx, rec.clone())
    })?;
    Ok(rec)
}

/// Gives an `#[auto_increment]` key left at 0 the table's next id. Ids come from an atomic
/// counter outside the transaction: they are unique even across concurrent transactions,
/// and an aborted transaction leaves a gap.
///
/// Also gives a record without a deadline the table's default lifetime, if it has one.
///
/// `fresh`: the caller's record asked for an id ([`wants_id`] before the first attempt).
/// With ordered commits, an attempt that runs again takes a new id: the one it took may be
/// another copy's.
fn assign_id<T: Record>(tx: &mut Tx, rec: &mut T, fresh: bool) -> Result<()> {
    let db = tx.db.clone();
    // (Not for a table this node keeps for itself: no other copy hands out its ids.)
    // (The table's part looked up only when ordering: not on a database alone's write path.)
    let ordered = db.ordering() && !tx.table::<T>()?.store.is_local();
    if fresh && ordered {
        rec.set_auto_id(0)?;
    }
    let assigning = wants_id(rec);
    prepare_new(&db, &tx.table::<T>()?.store, rec)?;
    if assigning && ordered {
        // Another copy may hand out the same id: ids this copy already holds are skipped,
        // and the read of the key makes the later of two commits taking the same id
        // conflict (and take a new one) instead of overwriting.
        while tx.table::<T>()?.exists(rec.key()) {
            rec.set_auto_id(0)?;
            prepare_new(&db, &tx.table::<T>()?.store, rec)?;
        }
    }
    Ok(())
}

/// Whether `rec` asks for an id: an `#[auto_increment]` key left at 0.
fn wants_id<T: Record>(rec: &T) -> bool {
    T::AUTO_INCREMENT && rec.auto_id() == Some(0)
}

/// Readies a new record for `store`: an `#[auto_increment]` key left at 0 gets the next
/// id; a `#[ttl]` left unset gets the table's default lifetime.
pub(crate) fn prepare_new<T: Record>(
    db: &crate::db::Database,
    store: &TableStore<RowOf<T>>,
    rec: &mut T,
) -> Result<()> {
    if T::AUTO_INCREMENT && rec.auto_id() == Some(0) {
        rec.set_auto_id(take_id(db, store)?)?;
    }
    crate::engine::ttl::apply_default(meta_of::<T>(), db.clock(), rec)
}

/// The next id of a table's auto-increment counter. `Err(Conflict)` if a new store took
/// this one's place (take it again there): while one is about to (the store is sealed), it
/// waits for the schema lock, which the change holds until it is done.
fn take_id<R: StoredRecord>(db: &crate::db::Database, store: &TableStore<R>) -> Result<u64> {
    use std::sync::atomic::Ordering;
    loop {
        let previous =
            store.counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| c.checked_add(1)).map_err(
                |_| Error::Exhausted { what: format!("auto-increment ids of table {}", store.meta.name) },
            )?;
        // Pairs with the fence of `TableStore::seal`: either it counts this id, or this sees
        // the seal (and the id is not handed out: a gap).
        std::sync::atomic::fence(Ordering::SeqCst);
        if store.is_replaced() {
            return Err(Error::Conflict);
        }
        if !store.is_sealed() {
            return Ok(previous + 1);
        }
        drop(db.inner.schema.lock());
    }
}

/// Takes the table's next auto-increment id, as a key.
pub(crate) fn next_table_id<T: Record>() -> Result<T::Key> {
    if !T::AUTO_INCREMENT {
        return Err(Error::Invalid(format!("table {} has no #[auto_increment] key", T::NAME)));
    }
    let db = context::current_db()?;
    let store = db.table::<T>()?;
    // (A node without the table's records has no current counter either.)
    store.place.check(T::NAME)?;
    if db.ordering()
        && let Some(sequencer) = db.sequencer_of(store.is_local())
    {
        return claim_ordered_id::<T>(&db, &**sequencer);
    }
    take_id_locked::<T>(&db)
}

/// The key of table `T`'s id `id`.
fn key_of<T: Record>(id: u64) -> Result<T::Key> {
    T::key_for_id(id)
        .ok_or_else(|| Error::Invalid(format!("table {}: id {id} does not fit the key type", T::NAME)))
}

/// Takes the table's next id without a record. On disc the counter is logged at once, so
/// that the id is never handed out again after a crash; a sink, if there is one, is handed
/// the claim (so that a replica's counter moves past it too). Both in their place among the
/// table's commits: with a commit lock of the table held from the id to its logging and
/// handing, which every change of the table as a whole (a counter reset, a drop, a
/// transform) waits for (a reset logged between the id and its logging would leave the
/// recovered counter below it).
fn take_id_locked<T: Record>(db: &crate::db::Database) -> Result<T::Key> {
    use crate::base::lock::{HeldLocks, LockReq, lock_order};
    for _ in 0..CLAIM_ATTEMPTS {
        let store = db.table::<T>()?;
        let Some((_, lock)) = store.all_commit_locks().next() else {
            return Err(Error::Internal(format!("table {}: a store without shards", T::NAME)));
        };
        let held =
            HeldLocks::acquire(vec![LockReq { order: lock_order(store.id, 0, 0), exclusive: false, lock }]);
        if store.is_dropped() || store.is_sealed() {
            // A new store takes (or took) this one's place, holding the schema lock until
            // it is done: the id comes from that one.
            drop(held);
            drop(db.inner.schema.lock());
            continue;
        }
        // (Neither sealed nor replaced meanwhile: both hold every commit lock of the table.)
        let id = match take_id(db, &store) {
            Err(Error::Conflict) => continue,
            taken => taken?,
        };
        let seq = log_counter(db, &store)?;
        let key = key_of::<T>(id)?;
        if db.replicating() {
            db.hand(claim_record::<T>(&key, id, 0)?, seq);
        }
        drop(held);
        return Ok(key);
    }
    Err(Error::Conflict)
}

/// The record of table `T`'s id `id` (the key `key`) handed out, made at place `based_on`
/// of the order (an ordered claim reads the key's bucket: a record writing the key after
/// that place makes it conflict).
fn claim_record<T: Record>(
    key: &T::Key,
    id: u64,
    based_on: u64,
) -> Result<crate::engine::commit_record::CommitRecord> {
    use crate::engine::commit_record::{CommitRecord, Content, KeyChange, TableChange, TableReads};
    let encoded = crate::disk::record::encode(key)?;
    Ok(CommitRecord {
        seq: 0,
        time: std::time::UNIX_EPOCH,
        reads: vec![TableReads {
            table: T::NAME.to_owned(),
            buckets: vec![crate::engine::sequencer::bucket(&encoded)],
            whole: false,
        }],
        changes: vec![TableChange {
            table: T::NAME.to_owned(),
            writes: vec![KeyChange { key: encoded, value: Content::Claim(id), expired: false }],
        }],
        based_on,
    })
}

/// How many times an ordered copy tries to claim an id that other copies keep taking first.
const CLAIM_ATTEMPTS: u32 = 10_000;

/// Takes the table's next auto-increment id on a copy whose commits are ordered: the id is
/// claimed through the order (a record that raises the table's counter on every copy and
/// reads and writes the id's key bucket), so that no two copies hand it out, and no record
/// written with it by another copy commits (an `insert` reads its new key: one of the two
/// conflicts and runs again with a new id).
fn claim_ordered_id<T: Record>(db: &crate::db::Database, sequencer: &dyn crate::Sequencer) -> Result<T::Key> {
    if context::is_transaction() {
        return Err(Error::Invalid(format!(
            "{}::next_id inside a transaction of a replicated database: take the id before the transaction, or let insert give it",
            T::NAME
        )));
    }
    for _ in 0..CLAIM_ATTEMPTS {
        // Before the id is taken: a record applied after this place that wrote its key
        // makes the claim conflict.
        let based_on = db.applied_index();
        let store = db.table::<T>()?;
        let id = match take_id(db, &store) {
            Err(Error::Conflict) => continue,
            taken => taken?,
        };
        let key = key_of::<T>(id)?;
        match sequencer.order(claim_record::<T>(&key, id, based_on)?) {
            Ok(()) => return Ok(key),
            Err(Error::Conflict) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::Conflict)
}

/// Logs a disc table's counter on its own (raised to it); returns the commit's number.
fn log_counter<R: StoredRecord>(db: &crate::db::Database, store: &TableStore<R>) -> Result<u64> {
    let counter = store.counter.load(std::sync::atomic::Ordering::Acquire);
    let logged = store.disk_id().map(|table| crate::disk::record::TableOps {
        table,
        clear: false,
        counter,
        reset: false,
        writes: Vec::new(),
    });
    db.sequence(logged.as_slice())
}

fn put<T: Record>(tx: &mut Tx, rec: T) -> Result<()> {
    let part = tx.table::<T>()?;
    if T::AUTO_INCREMENT
        && let Some(id) = rec.auto_id()
    {
        // Every id written moves the counter past it, so a new id never exists.
        part.store.counter.fetch_max(id, std::sync::atomic::Ordering::AcqRel);
    }
    part.put(Row::new(rec))
}

/// Writes one imported record in the current transaction: an `#[auto_increment]` key left
/// at 0 gets the next id; a key that exists is refused unless `replace` (a bag adds).
pub(crate) fn import_record<T: Record>(tx: &mut Tx, mut rec: T, replace: bool) -> Result<()> {
    assign_id(tx, &mut rec, false)?;
    if !replace && T::TYPE != TableType::Bag && tx.table::<T>()?.exists(rec.key()) {
        return Err(Error::AlreadyExists { table: T::NAME.to_owned(), key: format!("{:?}", rec.key()) });
    }
    put(tx, rec)
}

/// Inserts a new record: assigns the next id to an `#[auto_increment]` key left at 0;
/// refuses a key that exists (except on bags, which add).
pub(crate) fn insert<T: Record>(mut rec: T) -> Result<T> {
    let fresh = wants_id(&rec);
    run_tx(|tx| {
        assign_id(tx, &mut rec, fresh)?;
        if T::TYPE == TableType::Bag {
            return put(tx, rec.clone());
        }
        // Assigned ids are new unless a record was written with that id (an explicit
        // key) meanwhile: then the insert takes the next one. (The counter has moved
        // past every id written, so this ends.)
        while fresh && tx.table::<T>()?.exists(rec.key()) {
            rec.set_auto_id(0)?;
            assign_id(tx, &mut rec, false)?;
        }
        if !fresh && tx.table::<T>()?.exists(rec.key()) {
            return Err(Error::AlreadyExists { table: T::NAME.to_owned(), key: format!("{:?}", rec.key()) });
        }
        put(tx, rec.clone())
    })?;
    Ok(rec)
}

pub(crate) fn read<T: Record>(key: &T::Key) -> Result<Option<T>> {
    match run_tx(|tx| tx.table_to_read::<T>()?.read_one_with(key, |r| as_record::<T>(r).cloned()).transpose())
    {
        Err(Error::NotHere { table, nodes }) => Ok(first_of(read_elsewhere::<T>(key, table, nodes)?)),
        found => found,
    }
}

pub(crate) fn read_all<T: Record>(key: &T::Key) -> Result<Vec<T>> {
    match run_tx(|tx| into_records(tx.table_to_read::<T>()?.read_group(key))) {
        Err(Error::NotHere { table, nodes }) => read_elsewhere::<T>(key, table, nodes),
        found => found,
    }
}

/// The records of `key` read on a node holding table `T` (a read outside a transaction on
/// a node without its records); `table` and `nodes` say where the table is, for the error
/// of a read inside a transaction, or on a database alone.
fn read_elsewhere<T: Record>(key: &T::Key, table: String, nodes: Vec<String>) -> Result<Vec<T>> {
    let db = context::current_db()?;
    let sequencer = db.sequencer().filter(|_| !context::is_transaction());
    let Some(sequencer) = sequencer else { return Err(Error::NotHere { table, nodes }) };
    let found = match sequencer.read_elsewhere(T::NAME, &crate::disk::record::encode(key)?) {
        Err(Error::NotHere { .. }) => return Err(Error::NotHere { table, nodes }),
        found => found?,
    };
    found.iter().map(|bytes| into_record(meta_of::<T>().decode_whole(bytes)?)).collect()
}

pub(crate) fn update<T: Record>(key: &T::Key, mut f: impl FnMut(&mut T)) -> Result<T> {
    no_bag::<T>("update")?;
    run(|| {
        let mut rec = read::<T>(key)?.ok_or_else(|| not_found::<T>(key))?;
        f(&mut rec);
        if rec.key() != key {
            return Err(Error::Invalid(format!(
                "update must not change the key of a record of table {}",
                T::NAME
            )));
        }
        with_tx(|tx| {
            crate::engine::ttl::apply_default(meta_of::<T>(), tx.db.clock(), &mut rec)?;
            put(tx, rec.clone())
        })?;
        Ok(rec)
    })
}

pub(crate) fn delete<T: Record>(key: &T::Key) -> Result<Option<T>> {
    run_tx(|tx| {
        let part = tx.table::<T>()?;
        let old = part.read_group(key);
        if old.is_empty() {
            return Ok(None);
        }
        part.set(key.clone(), Write::Delete);
        first_of(old).map(into_record).transpose()
    })
}

pub(crate) fn delete_object<T: Record>(rec: &T) -> Result<bool> {
    let bytes = postcard::to_allocvec(rec).map_err(|e| Error::codec("encoding a record", e))?;
    run_tx(|tx| {
        let part = tx.table::<T>()?;
        let group = part.read_group(rec.key());
        let before = group.len();
        let mut rest = Vec::with_capacity(before);
        for r in group {
            let same = match r.typed::<T>() {
                Some(x) => {
                    postcard::to_allocvec(x).map_err(|e| Error::codec("encoding a record", e))? == bytes
                }
                None => false,
            };
            if !same {
                rest.push(r);
            }
        }
        if rest.len() == before {
            return Ok(false);
        }
        let write = if T::TYPE == TableType::Bag { Write::Group(rest) } else { Write::Delete };
        part.set(rec.key().clone(), write);
        Ok(true)
    })
}

pub(crate) fn upsert<T: Record>(mut rec: T) -> Result<Upserted<T>> {
    let fresh = wants_id(&rec);
    run_tx(|tx| {
        assign_id(tx, &mut rec, fresh)?;
        let old = tx.table::<T>()?.read_one_with(rec.key(), |r| as_record::<T>(r).cloned()).transpose()?;
        put(tx, rec.clone())?;
        Ok(match old {
            Some(old) if T::TYPE != TableType::Bag => Upserted::Replaced { new: rec.clone(), old },
            _ => Upserted::Inserted(rec.clone()),
        })
    })
}

pub(crate) fn select<T: Record>(filter: &Filter<T>) -> Result<Vec<T>> {
    run_tx(|tx| tx.select(filter, usize::MAX, T::clone))
}

pub(crate) fn get_by<T: Record, V: FieldValue>(
    field: Field<T, V>,
    value: impl Compare<V>,
) -> Result<Option<T>> {
    let value = value.into_field_value();
    run_tx(|tx| first_by(tx, field, &value))
}

/// The first record in key order whose field equals `value`: through the field's index, or
/// else as a planned query.
fn first_by<T: Record, V: FieldValue>(tx: &mut Tx, field: Field<T, V>, value: &V) -> Result<Option<T>> {
    let matches = |r: &RowOf<T>| r.typed::<T>().is_some_and(|x| field.get(x) == value);
    if let Some(found) = tx.table::<T>()?.first_by_index(field.position(), value, &matches) {
        return found.map(into_record).transpose();
    }
    // Only a better match than the best so far is copied.
    let mut best: Option<T> = None;
    tx.select(&field.eq(value.clone()), usize::MAX, |r| {
        if best.as_ref().is_none_or(|b| r.key() < b.key()) {
            best = Some(r.clone());
        }
    })?;
    Ok(best)
}

pub(crate) fn all_keys<T: Record>() -> Result<Vec<T::Key>> {
    let all = Filter::all();
    run_tx(|tx| {
        let mut keys = tx.select(&all, usize::MAX, |r: &T| r.key().clone())?;
        if T::TYPE == TableType::Bag {
            keys.sort();
            keys.dedup();
        }
        Ok(keys)
    })
}

pub(crate) fn count<T: Record>() -> Result<usize> {
    run_tx(|tx| Ok(tx.table_to_scan::<T>()?.count()))
}

pub(crate) fn batch_write<T: Record>(recs: impl IntoIterator<Item = T>) -> Result<Vec<T>> {
    let mut recs: Vec<T> = recs.into_iter().collect();
    let fresh: Vec<bool> = if T::AUTO_INCREMENT { recs.iter().map(wants_id).collect() } else { Vec::new() };
    run_tx(|tx| {
        for (i, r) in recs.iter_mut().enumerate() {
            assign_id(tx, r, fresh.get(i).copied().unwrap_or(false))?;
            put(tx, r.clone())?;
        }
        Ok(())
    })?;
    Ok(recs)
}

pub(crate) fn batch_delete<T: Record>(keys: impl IntoIterator<Item = T::Key>) -> Result<Vec<T>> {
    let keys: Vec<T::Key> = keys.into_iter().collect();
    run_tx(|tx| {
        let part = tx.table::<T>()?;
        let mut removed = Vec::new();
        for k in &keys {
            let old = part.read_group(k);
            if !old.is_empty() {
                part.set(k.clone(), Write::Delete);
                removed.extend(into_records::<T>(old)?);
            }
        }
        Ok(removed)
    })
}

/// Runs `f` in a transaction of its own, outside any transaction of the thread: what the
/// `dirty_*` writes do. They read nothing but what a `bag` write merges with, so they
/// conflict only with a concurrent change of that same group, and then run again.
pub(crate) fn dirty<R>(f: impl FnMut(&mut Tx) -> Result<R>) -> Result<R> {
    dirty_in(context::current_db()?, f)
}

/// [`dirty`] on a given database.
pub(crate) fn dirty_in<R>(mut db: crate::db::Database, mut f: impl FnMut(&mut Tx) -> Result<R>) -> Result<R> {
    let stats = db.stats();
    loop {
        let mut tx = Tx::new(db);
        let r = f(&mut tx);
        let committed = match r {
            Ok(r) => tx.commit().map(|_| r),
            Err(e) => Err(e),
        };
        if let Some(seq) = tx.installed_at() {
            context::note_dirty_commit(&tx.db, seq);
        }
        db = tx.finish();
        match committed {
            Err(Error::Conflict) => {
                stats.add(crate::base::stats::Stat::Retry);
                std::thread::yield_now();
            }
            other => {
                stats.add(crate::base::stats::Stat::Start);
                stats.add(if other.is_ok() {
                    crate::base::stats::Stat::Commit
                } else {
                    crate::base::stats::Stat::Abort
                });
                return other;
            }
        }
    }
}

pub(crate) fn dirty_write<T: Record>(mut rec: T) -> Result<T> {
    let fresh = wants_id(&rec);
    dirty(|tx| {
        assign_id(tx, &mut rec, fresh)?;
        put(tx, rec.clone())
    })?;
    Ok(rec)
}

pub(crate) fn dirty_read<T: Record>(key: &T::Key) -> Result<Option<T>> {
    let store = context::current_db()?.table::<T>()?;
    let hash = store.hash(key);
    let alive = store.alive();
    let found = store.get_with(key, hash, |_, recs| {
        recs.iter().find(|r| alive.keeps(*r)).map(|r| as_record::<T>(r).cloned())
    });
    store.healthy()?;
    // (A copy without the table's records holds none: looked at only when none is found.)
    if found.is_none() && !store.place.is_held() {
        return dirty_read_elsewhere(&store, key);
    }
    found.transpose()
}

/// [`dirty_read`] on a node without the table's records.
#[cold]
fn dirty_read_elsewhere<T: Record>(store: &TableStore<RowOf<T>>, key: &T::Key) -> Result<Option<T>> {
    match store.place.not_here(T::NAME) {
        Error::NotHere { table, nodes } => Ok(first_of(read_elsewhere::<T>(key, table, nodes)?)),
        other => Err(other),
    }
}

pub(crate) fn dirty_update<T: Record>(key: &T::Key, f: impl FnOnce(&mut T)) -> Result<T> {
    no_bag::<T>("dirty_update")?;
    let mut rec = dirty_read::<T>(key)?.ok_or_else(|| not_found::<T>(key))?;
    f(&mut rec);
    if rec.key() != key {
        return Err(Error::Invalid(format!(
            "update must not change the key of a record of table {}",
            T::NAME
        )));
    }
    dirty_write(rec)
}

pub(crate) fn dirty_delete<T: Record>(key: &T::Key) -> Result<Option<T>> {
    let old = dirty_read::<T>(key)?;
    dirty(|tx| {
        tx.table::<T>()?.set(key.clone(), Write::Delete);
        Ok(())
    })?;
    Ok(old)
}

pub(crate) fn dirty_select<T: Record>(filter: &Filter<T>) -> Result<Vec<T>> {
    let db = context::current_db()?;
    let mut tx = Tx::new(db);
    let rows = tx.table::<T>()?.select_with(&filter.for_rows(), |r| as_record::<T>(r).cloned());
    all_ok(rows)
}

pub(crate) fn dirty_get_by<T: Record, V: FieldValue>(
    field: Field<T, V>,
    value: impl Compare<V>,
) -> Result<Option<T>> {
    let value = value.into_field_value();
    let mut tx = Tx::new(context::current_db()?);
    first_by(&mut tx, field, &value)
}
