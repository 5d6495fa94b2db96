//! The `Table` trait: the table-scoped API that `#[derive(Table)]` gives a record type.

use crate::error::{Error, Result};
use crate::schema::field::{Compare, Field, FieldValue, Indexable};
use crate::schema::filter::Filter;
use crate::schema::options::TableOptions;
use crate::schema::record::{Record, StorageType, TableInfo, Upserted};
use crate::tx::ops;
use crate::tx::query::Query;

/// The table-scoped API of a record type: implemented for every [`Record`] (which
/// `#[derive(Table)]` implements, with a typed [`Field`] constant per field, `User::AGE`),
/// it cannot be implemented, nor its functions replaced, by hand.
///
/// The provided functions are the table-scoped API. Each runs inside the calling thread's
/// transaction when there is one, and as a transaction of its own otherwise; the `dirty_*`
/// ones never use a transaction. They use the thread's default database (see
/// [`crate::start`] and [`crate::Database::scope`]).
///
/// ```
/// use mnesia::prelude::*;
///
/// #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
/// #[table(name = "users")]
/// struct User {
///     #[key]
///     #[auto_increment]
///     id: u64,
///     name: String,
///     #[index(unique)]
///     email: String,
///     age: u32,
/// }
///
/// let db = Database::in_memory()?;
/// db.scope(|| -> mnesia::Result<()> {
///     User::create_table(TableOptions::new())?;
///     let ann = User::insert(User { id: 0, name: "Ann".into(), email: "ann@x.io".into(), age: 30 })?;
///     assert_eq!(ann.id, 1);
///     assert_eq!(User::get_by(User::EMAIL, "ann@x.io")?, Some(ann.clone()));
///     let older = User::update(&1, |u| u.age += 1)?;
///     assert_eq!(older.age, 31);
///     assert_eq!(User::select(User::AGE.ge(18) & User::NAME.starts_with("A"))?.len(), 1);
///     assert_eq!(User::delete(&1)?.map(|u| u.name), Some("Ann".into()));
///     Ok(())
/// })?;
/// # Ok::<(), mnesia::Error>(())
/// ```
pub trait Table: Record {
    /// Creates the table in the default database.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// assert!(matches!(User::create_table(TableOptions::new()), Err(mnesia::Error::TableExists { .. })));
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn create_table(options: TableOptions<Self>) -> Result<()> {
        crate::tx::context::current_db()?.create_table::<Self>(options)
    }

    /// Whether the table exists.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// assert!(!User::exists()?);
    /// User::create_table(TableOptions::new())?;
    /// assert!(User::exists()?);
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn exists() -> Result<bool> {
        Ok(crate::tx::context::current_db()?.exists::<Self>())
    }

    /// Deletes the table and its records.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::drop_table()?;
    /// assert!(matches!(User::drop_table(), Err(mnesia::Error::NoSuchTable { .. })));
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn drop_table() -> Result<()> {
        crate::tx::context::current_db()?.drop_table::<Self>()
    }

    /// Removes every record, atomically.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::write(User { id: 1 })?;
    /// User::clear()?;
    /// assert_eq!(User::count()?, 0);
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn clear() -> Result<()> {
        crate::tx::context::current_db()?.clear_table::<Self>()
    }

    /// Facts about the table: size, memory, type, storage type, attributes, indexes.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// assert_eq!(User::table_info()?.name, "user");
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn table_info() -> Result<TableInfo> {
        crate::tx::context::current_db()?.table_info::<Self>()
    }

    /// Adds a secondary index on a field, built online from the current records.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::add_index(User::AGE)?;
    /// assert_eq!(User::query().filter(User::AGE.eq(3)).explain()?, Plan::IndexLookup { field: "age", values: 1 });
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn add_index<V: FieldValue + Indexable>(field: Field<Self, V>) -> Result<()> {
        crate::tx::context::current_db()?.add_index(field.index_spec(false))
    }

    /// Adds a unique secondary index on a field; fails if two records share a value.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, email: String }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::add_unique_index(User::EMAIL)?;
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn add_unique_index<V: FieldValue + Indexable>(field: Field<Self, V>) -> Result<()> {
        crate::tx::context::current_db()?.add_index(field.index_spec(true))
    }

    /// Removes the secondary index on a field.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, #[index] age: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::remove_index(User::AGE)?;
    /// assert_eq!(User::query().filter(User::AGE.eq(3)).explain()?, Plan::FullScan);
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn remove_index<V>(field: Field<Self, V>) -> Result<()> {
        crate::tx::context::current_db()?.remove_index::<Self>(field.name())
    }

    /// Where the table lives.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// assert_eq!(User::storage_type()?, StorageType::RamCopies);
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn storage_type() -> Result<StorageType> {
        Ok(Self::table_info()?.storage_type)
    }

    /// Moves the table between storage types on `node`, online: see
    /// [`crate::Database::change_table_copy_type`]. `node` is this node, or, for a table
    /// created on a running cluster node with a list of nodes, any node holding a copy
    /// (the change is then a record of the cluster's log).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::change_table_copy_type(&db.node(), StorageType::RamCopies)?;
    /// assert!(User::change_table_copy_type("other@host", StorageType::RamCopies).is_err());
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn change_table_copy_type(node: &str, to: StorageType) -> Result<()> {
        let db = crate::tx::context::current_db()?;
        if db.copies_ordered::<Self>()? {
            return db.order_copy_type::<Self>(node, to);
        }
        if node != db.config().node() {
            return Err(Error::Invalid(format!(
                "node {node} is not this node ({}): a copy moves between storage types on its own node",
                db.config().node()
            )));
        }
        db.change_table_copy_type::<Self>(to)
    }

    /// Adds a copy of the table on cluster node `node`, kept as `storage` says (MnesiaEx's
    /// `add_table_copy`): see [`crate::Database::add_table_copy`].
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// // On a database alone there is no other node.
    /// assert!(User::add_table_copy("other@host", StorageType::DiscCopies).is_err());
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn add_table_copy(node: &str, storage: StorageType) -> Result<()> {
        crate::tx::context::current_db()?.add_table_copy::<Self>(node, storage)
    }

    /// Removes the table's copy on cluster node `node` (MnesiaEx's `remove_table_copy`):
    /// see [`crate::Database::del_table_copy`].
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// assert!(User::del_table_copy(&db.node()).is_err());
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn del_table_copy(node: &str) -> Result<()> {
        crate::tx::context::current_db()?.del_table_copy::<Self>(node)
    }

    /// Takes the next id of the table's `#[auto_increment]` key, as `insert` would (the id is
    /// used up even if no record gets it).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Post { #[key] #[auto_increment] id: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// Post::create_table(TableOptions::new())?;
    /// assert_eq!(Post::next_id()?, 1);
    /// assert_eq!(Post::insert(Post { id: 0 })?.id, 2);
    /// assert_eq!(Post::current_id()?, 2);
    /// Post::reset_counter(10)?;
    /// assert_eq!(Post::insert(Post { id: 0 })?.id, 10);
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn next_id() -> Result<Self::Key> {
        ops::next_table_id::<Self>()
    }

    /// The last id the table's `#[auto_increment]` key handed out or was written with (0 for
    /// none).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Post { #[key] #[auto_increment] id: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// Post::create_table(TableOptions::new())?;
    /// assert_eq!(Post::current_id()?, 0);
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn current_id() -> Result<u64> {
        let store = crate::tx::context::current_db()?.table::<Self>()?;
        store.place.check(Self::NAME)?;
        Ok(store.counter.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Makes `next` the next id `insert` hands out (at least 1), durably on a disc table. An id
    /// that a record already has is never overwritten: `insert` skips it and takes the next
    /// free one. After a restart the counter is at least the highest id that a
    /// stored record has.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Post { #[key] #[auto_increment] id: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// Post::create_table(TableOptions::new())?;
    /// Post::reset_counter(50)?;
    /// assert_eq!(Post::insert(Post { id: 0 })?.id, 50);
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn reset_counter(next: u64) -> Result<()> {
        crate::tx::context::current_db()?.reset_counter::<Self>(next)
    }

    /// Subscribes to the table's changes: every committed write and delete (dirty ones and
    /// batches too), after the commit, in commit order, each commit's events together; never
    /// an aborted one. Events carry the new record (`Event::Write { old: None, .. }`). A
    /// subscriber that falls behind by more than `Config::event_buffer` events is told how
    /// many it missed (`Event::Lagged`); writers never wait for it. Dropping the
    /// subscription unsubscribes. A table with subscribers commits one transaction at a time.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// let events = User::subscribe()?;
    /// User::write(User { id: 1 })?;
    /// assert!(matches!(events.try_recv(), Some(mnesia::Event::Write { .. })));
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn subscribe() -> Result<crate::Subscription<Self>> {
        let db = crate::tx::context::current_db()?;
        Ok(db.table::<Self>()?.subs.add::<Self>(false, db.config().events_buffered()))
    }

    /// Like [`Table::subscribe`], and each event also carries the record it replaced or
    /// deleted (`old`).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, n: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::write(User { id: 1, n: 1 })?;
    /// let events = User::subscribe_detailed()?;
    /// User::update(&1, |u| u.n = 2)?;
    /// match events.try_recv() {
    ///     Some(mnesia::Event::Write { new, old: Some(old) }) => assert_eq!((old.n, new.n), (1, 2)),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn subscribe_detailed() -> Result<crate::Subscription<Self>> {
        let db = crate::tx::context::current_db()?;
        Ok(db.table::<Self>()?.subs.add::<Self>(true, db.config().events_buffered()))
    }

    /// Writes a record, replacing the one with the same key (a `bag` adds it next to the
    /// key's other records, unless an identical one is there). Returns the record as
    /// stored: an `#[auto_increment]` key left at 0 gets the table's next id, as with
    /// [`Table::insert`].
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, name: String }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::write(User { id: 1, name: "a".into() })?;
    /// User::write(User { id: 1, name: "b".into() })?;
    /// assert_eq!(User::read(&1)?.map(|u| u.name), Some("b".into()));
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn write(record: Self) -> Result<Self> {
        ops::write(record)
    }

    /// Inserts a new record. An `#[auto_increment]` key left at 0 gets the table's next id
    /// (ids increase and are never reused; a manual id above the counter moves it past that
    /// id; ids taken by a transaction that aborts are skipped, leaving gaps). A key that
    /// exists is refused with [`Error::AlreadyExists`] (a `bag` adds instead).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Post { #[key] #[auto_increment] id: u64, title: String }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// Post::create_table(TableOptions::new())?;
    /// assert_eq!(Post::insert(Post { id: 0, title: "a".into() })?.id, 1);
    /// assert_eq!(Post::insert(Post { id: 100, title: "b".into() })?.id, 100);
    /// assert_eq!(Post::insert(Post { id: 0, title: "c".into() })?.id, 101);
    /// assert!(matches!(Post::insert(Post { id: 1, title: "d".into() }), Err(mnesia::Error::AlreadyExists { .. })));
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn insert(record: Self) -> Result<Self> {
        ops::insert(record)
    }

    /// Reads the record with this key (a `bag`: the first one).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// assert!(User::read(&1)?.is_none());
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn read(key: &Self::Key) -> Result<Option<Self>> {
        ops::read(key)
    }

    /// Reads every record with this key (one at most, but for a `bag`).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # #[table(type = "bag")]
    /// # struct Tag { #[key] item: u32, tag: String }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// Tag::create_table(TableOptions::new())?;
    /// Tag::write(Tag { item: 1, tag: "red".into() })?;
    /// Tag::write(Tag { item: 1, tag: "big".into() })?;
    /// assert_eq!(Tag::read_all(&1)?.len(), 2);
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn read_all(key: &Self::Key) -> Result<Vec<Self>> {
        ops::read_all(key)
    }

    /// Changes the record with this key with `f` and writes it back, atomically; returns the
    /// new record, or [`Error::NotFound`]. `f` may run more than once when the transaction
    /// is retried. Not defined on `bag` tables.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::write(User { id: 1, age: 1 })?;
    /// assert_eq!(User::update(&1, |u| u.age = 2)?.age, 2);
    /// assert!(matches!(User::update(&9, |u| u.age = 2), Err(mnesia::Error::NotFound { .. })));
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn update(key: &Self::Key, f: impl FnMut(&mut Self)) -> Result<Self> {
        ops::update(key, f)
    }

    /// Deletes the record(s) with this key; returns the removed record (a `bag`: the first).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::write(User { id: 1 })?;
    /// assert!(User::delete(&1)?.is_some());
    /// assert!(User::delete(&1)?.is_none());
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn delete(key: &Self::Key) -> Result<Option<Self>> {
        ops::delete(key)
    }

    /// [`Table::write`] for async code, as a transaction of its own through
    /// [`transaction_async`](crate::transaction_async): on a cluster node the wait for the
    /// cluster does not block the executor's thread. The current database is taken when
    /// this is called.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, name: String }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<User>(TableOptions::new())?;
    /// let written = db.scope(|| User::write_async(User { id: 1, name: "a".into() }));
    /// // In an async fn: `written.await?`.
    /// mnesia::__private::block_on(written)?;
    /// assert_eq!(db.scope(|| User::read(&1))?.map(|u| u.name), Some("a".into()));
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn write_async(record: Self) -> impl std::future::Future<Output = Result<Self>> + Send {
        crate::tx::async_tx::transaction_async(move || ops::write(record.clone()))
    }

    /// [`Table::insert`] for async code (see [`Table::write_async`]).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct Post { #[key] #[auto_increment] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<Post>(TableOptions::new())?;
    /// let post = mnesia::__private::block_on(db.scope(|| Post::insert_async(Post { id: 0 })))?;
    /// assert_eq!(post.id, 1);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn insert_async(record: Self) -> impl std::future::Future<Output = Result<Self>> + Send {
        crate::tx::async_tx::transaction_async(move || ops::insert(record.clone()))
    }

    /// [`Table::update`] for async code (see [`Table::write_async`]); `f` may run more than
    /// once.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<User>(TableOptions::new())?;
    /// # db.scope(|| User::write(User { id: 1, age: 1 }))?;
    /// let older = db.scope(|| User::update_async(1, |u| u.age += 1));
    /// assert_eq!(mnesia::__private::block_on(older)?.age, 2);
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn update_async(
        key: Self::Key,
        mut f: impl FnMut(&mut Self) + Send,
    ) -> impl std::future::Future<Output = Result<Self>> + Send {
        crate::tx::async_tx::transaction_async(move || ops::update(&key, &mut f))
    }

    /// [`Table::delete`] for async code (see [`Table::write_async`]).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.create_table::<User>(TableOptions::new())?;
    /// # db.scope(|| User::write(User { id: 1 }))?;
    /// let removed = mnesia::__private::block_on(db.scope(|| User::delete_async(1)))?;
    /// assert!(removed.is_some());
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn delete_async(key: Self::Key) -> impl std::future::Future<Output = Result<Option<Self>>> + Send {
        crate::tx::async_tx::transaction_async(move || ops::delete(&key))
    }

    /// Deletes exactly this record (for a `bag`: this one of the key's records); returns
    /// whether it was there.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # #[table(type = "bag")]
    /// # struct Tag { #[key] item: u32, tag: String }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// Tag::create_table(TableOptions::new())?;
    /// Tag::write(Tag { item: 1, tag: "red".into() })?;
    /// Tag::write(Tag { item: 1, tag: "big".into() })?;
    /// assert!(Tag::delete_object(&Tag { item: 1, tag: "red".into() })?);
    /// assert_eq!(Tag::read_all(&1)?.len(), 1);
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn delete_object(record: &Self) -> Result<bool> {
        ops::delete_object(record)
    }

    /// Writes a record and tells whether it was inserted or replaced another.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// assert!(User::upsert(User { id: 1, age: 1 })?.inserted());
    /// assert!(!User::upsert(User { id: 1, age: 2 })?.inserted());
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn upsert(record: Self) -> Result<Upserted<Self>> {
        ops::upsert(record)
    }

    /// The first record (in key order) whose field equals `value`; uses the field's index
    /// when there is one.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, #[index(unique)] email: String }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::write(User { id: 1, email: "a@x.io".into() })?;
    /// assert_eq!(User::get_by(User::EMAIL, "a@x.io")?.map(|u| u.id), Some(1));
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn get_by<V: FieldValue>(field: Field<Self, V>, value: impl Compare<V>) -> Result<Option<Self>> {
        ops::get_by(field, value)
    }

    /// Every record passing `filter`: a condition, conditions combined with `&`, `|`, `!`,
    /// or a `Vec` or array of conditions that must all hold.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::batch_write((1..=10).map(|id| User { id, age: id as u32 * 10 }))?;
    /// assert_eq!(User::select([User::AGE.gt(20), User::AGE.lt(60)])?.len(), 3);
    /// assert_eq!(User::select(User::AGE.le(20) | User::AGE.ge(90))?.len(), 4);
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn select(filter: impl Into<Filter<Self>>) -> Result<Vec<Self>> {
        ops::select(&filter.into())
    }

    /// A query builder on the table.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// let q = User::query().filter(User::AGE.gt(1)).order_by(User::AGE.asc()).limit(5);
    /// # let _ = q;
    /// ```
    fn query() -> Query<Self> {
        Query::new()
    }

    /// Every key (on an `ordered_set`, in order).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # #[table(type = "ordered_set")]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::batch_write([User { id: 3 }, User { id: 1 }])?;
    /// assert_eq!(User::all_keys()?, vec![1, 3]);
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn all_keys() -> Result<Vec<Self::Key>> {
        ops::all_keys::<Self>()
    }

    /// Every record (on an `ordered_set`, in key order).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::write(User { id: 1 })?;
    /// assert_eq!(User::list()?.len(), 1);
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn list() -> Result<Vec<Self>> {
        ops::select(&Filter::all())
    }

    /// Number of records.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// assert_eq!(User::count()?, 0);
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn count() -> Result<usize> {
        ops::count::<Self>()
    }

    /// Writes every record in one transaction: all or none. `#[auto_increment]` keys left
    /// at 0 get the next ids, in order.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// assert_eq!(User::batch_write((1..=3).map(|id| User { id }))?.len(), 3);
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn batch_write(records: impl IntoIterator<Item = Self>) -> Result<Vec<Self>> {
        ops::batch_write(records)
    }

    /// Deletes every key in one transaction; returns the removed records.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::batch_write((1..=3).map(|id| User { id }))?;
    /// assert_eq!(User::batch_delete([1, 2, 7])?.len(), 2);
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn batch_delete(keys: impl IntoIterator<Item = Self::Key>) -> Result<Vec<Self>> {
        ops::batch_delete::<Self>(keys)
    }

    /// Writes without a transaction: the fastest path. Indexes stay consistent and unique
    /// indexes are enforced; nothing else is checked, and a surrounding transaction is
    /// ignored (the write is applied at once, even if that transaction aborts).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::dirty_write(User { id: 1 })?;
    /// assert!(User::dirty_read(&1)?.is_some());
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn dirty_write(record: Self) -> Result<Self> {
        ops::dirty_write(record)
    }

    /// Reads the committed record without a transaction.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// assert!(User::dirty_read(&1)?.is_none());
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn dirty_read(key: &Self::Key) -> Result<Option<Self>> {
        ops::dirty_read(key)
    }

    /// Reads, changes and writes a record without a transaction (not atomic: a concurrent
    /// write in between is lost).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, n: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::dirty_write(User { id: 1, n: 0 })?;
    /// assert_eq!(User::dirty_update(&1, |u| u.n += 1)?.n, 1);
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn dirty_update(key: &Self::Key, f: impl FnOnce(&mut Self)) -> Result<Self> {
        ops::dirty_update(key, f)
    }

    /// Deletes without a transaction; returns the removed record.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// assert!(User::dirty_delete(&1)?.is_none());
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn dirty_delete(key: &Self::Key) -> Result<Option<Self>> {
        ops::dirty_delete(key)
    }

    /// `select` without a transaction: each shard is read consistently, the whole is not a
    /// snapshot.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// assert!(User::dirty_select(User::AGE.gt(1))?.is_empty());
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn dirty_select(filter: impl Into<Filter<Self>>) -> Result<Vec<Self>> {
        ops::dirty_select(&filter.into())
    }

    /// `get_by` without a transaction.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, #[index] name: String }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// assert!(User::dirty_get_by(User::NAME, "x")?.is_none());
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn dirty_get_by<V: FieldValue>(field: Field<Self, V>, value: impl Compare<V>) -> Result<Option<Self>> {
        ops::dirty_get_by(field, value)
    }

    /// Writes every record to a file, in the format its extension names (`.json`, `.jsonl`,
    /// `.csv`: see [`crate::Format`]); returns how many. Records are serialized a chunk at a
    /// time, so the table is never copied whole. The file is written under a temporary name
    /// and renamed when complete: a failed export leaves an earlier file of that name as it
    /// was. The export is not one snapshot: a commit running meanwhile may show in some
    /// chunks and not others (a backup is consistent).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, name: String }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::write(User { id: 1, name: "Ann, \"the first\"".into() })?;
    /// let file = std::env::temp_dir().join(format!("users-{}.csv", std::process::id()));
    /// assert_eq!(User::export(&file)?, 1);
    /// User::clear()?;
    /// assert_eq!(User::import(&file)?, 1);
    /// assert_eq!(User::read(&1)?.map(|u| u.name), Some("Ann, \"the first\"".into()));
    /// # std::fs::remove_file(&file).ok();
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn export(path: impl AsRef<std::path::Path>) -> Result<usize> {
        crate::features::transfer::export_file::<Self>(path.as_ref(), &crate::ExportOptions::new())
    }

    /// [`Table::export`] with options: a format whatever the extension, a progress
    /// callback.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, name: String }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::write(User { id: 1, name: "Ann".into() })?;
    /// let file = std::env::temp_dir().join(format!("users-{}.txt", std::process::id()));
    /// let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    /// let told = std::sync::Arc::clone(&seen);
    /// let opts = mnesia::ExportOptions::new()
    ///     .format(mnesia::Format::JsonLines)
    ///     .progress(move |n| told.store(n, std::sync::atomic::Ordering::Relaxed));
    /// assert_eq!(User::export_with(&file, &opts)?, 1);
    /// assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 1);
    /// # std::fs::remove_file(&file).ok();
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn export_with(path: impl AsRef<std::path::Path>, options: &crate::ExportOptions) -> Result<usize> {
        crate::features::transfer::export_file::<Self>(path.as_ref(), options)
    }

    /// Writes every record to `out` in `format`; returns how many.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, name: String }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::write(User { id: 1, name: "Ann".into() })?;
    /// let mut out = Vec::new();
    /// User::export_to(&mut out, mnesia::Format::JsonLines)?;
    /// assert_eq!(String::from_utf8(out).unwrap(), "{\"id\":1,\"name\":\"Ann\"}\n");
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn export_to(out: impl std::io::Write, format: crate::Format) -> Result<usize> {
        crate::features::transfer::export_to::<Self>(out, format, None)
    }

    /// Reads records from a file, in the format its extension names, and writes them in one
    /// transaction: all or nothing (inside a transaction of the caller, it joins that one). A malformed record gives [`Error::Import`] with its line
    /// (and column or field); a key that exists, or a unique value taken, fails the import
    /// too. Returns how many records were imported (read from the file: a `bag` keeps
    /// identical records once). See [`Table::import_with`] for options.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, name: String }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// let file = std::env::temp_dir().join(format!("bad-{}.jsonl", std::process::id()));
    /// std::fs::write(&file, "{\"id\":1,\"name\":\"Ann\"}\n{\"id\":\"two\",\"name\":\"Bob\"}\n").unwrap();
    /// match User::import(&file) {
    ///     Err(mnesia::Error::Import { line: 2, column: Some(c), .. }) => assert_eq!(c, "id"),
    ///     other => panic!("{other:?}"),
    /// }
    /// assert_eq!(User::count()?, 0); // nothing imported
    /// # std::fs::remove_file(&file).ok();
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn import(path: impl AsRef<std::path::Path>) -> Result<usize> {
        Self::import_with(path, &crate::ImportOptions::new())
    }

    /// [`Table::import`] with options: replace existing keys, write in batches, a progress
    /// callback.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, name: String }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// User::write(User { id: 1, name: "old".into() })?;
    /// let file = std::env::temp_dir().join(format!("new-{}.json", std::process::id()));
    /// std::fs::write(&file, r#"[{"id": 1, "name": "new"}]"#).unwrap();
    /// User::import_with(&file, &mnesia::ImportOptions::new().replace_existing(true))?;
    /// assert_eq!(User::read(&1)?.map(|u| u.name), Some("new".into()));
    /// # std::fs::remove_file(&file).ok();
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn import_with(path: impl AsRef<std::path::Path>, options: &crate::ImportOptions) -> Result<usize> {
        let path = path.as_ref();
        let format = crate::Format::from_path(path)?;
        let len = std::fs::metadata(path).ok().map(|m| m.len());
        let file = crate::disk::files::DiscFile::open(path)?;
        crate::features::transfer::import_from::<Self>(file, len, format, options)
    }

    /// Reads records from `input` in `format` and writes them (see [`Table::import_with`]).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, name: String }
    /// # let db = Database::in_memory()?;
    /// # db.scope(|| -> mnesia::Result<()> {
    /// User::create_table(TableOptions::new())?;
    /// let csv = "id,name\n1,Ann\n2,\"Bob, Jr.\"\n";
    /// User::import_from(csv.as_bytes(), mnesia::Format::Csv, &mnesia::ImportOptions::new())?;
    /// assert_eq!(User::read(&2)?.map(|u| u.name), Some("Bob, Jr.".into()));
    /// # Ok(()) })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn import_from(
        input: impl std::io::Read,
        format: crate::Format,
        options: &crate::ImportOptions,
    ) -> Result<usize> {
        crate::features::transfer::import_from::<Self>(input, None, format, options)
    }

    /// Converts every record of the table from its old record type `Old` (same table name)
    /// into this one: see [`crate::Database::transform`].
    ///
    /// ```
    /// use mnesia::prelude::*;
    ///
    /// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// #[table(name = "items")]
    /// struct ItemV1 { #[key] id: u32, price: u32 }
    ///
    /// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// #[table(name = "items")]
    /// struct Item { #[key] id: u32, cents: u64 }
    ///
    /// let db = Database::in_memory()?;
    /// db.scope(|| -> mnesia::Result<()> {
    ///     ItemV1::create_table(TableOptions::new())?;
    ///     ItemV1::write(ItemV1 { id: 1, price: 3 })?;
    ///     assert_eq!(Item::transform(|old: ItemV1| Ok(Item { id: old.id, cents: u64::from(old.price) * 100 }))?, 1);
    ///     assert_eq!(Item::read(&1)?.map(|i| i.cents), Some(300));
    ///     Ok(())
    /// })?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    fn transform<Old: Table>(f: impl FnMut(Old) -> Result<Self>) -> Result<usize> {
        crate::tx::context::current_db()?.transform::<Old, Self>(f)
    }
}

/// Every record type has the table API: the derive implements [`Record`], and the
/// functions above come with it (they cannot be replaced by hand).
impl<T: Record> Table for T {}
