//! Which public types cross threads, checked at compile time.

use mnesia::prelude::*;
use mnesia::{Error, IndexSpec};

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
struct User {
    #[key]
    id: u64,
    #[index]
    age: u32,
}

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}

#[test]
fn shareable_types() {
    send_sync::<Database>();
    send_sync::<Config>();
    send_sync::<Error>();
    send_sync::<Filter<User>>();
    send_sync::<Order<User>>();
    send_sync::<Field<User, u32>>();
    send_sync::<Query<User>>();
    send_sync::<TableOptions<User>>();
    send_sync::<IndexSpec<User>>();
    send_sync::<TableInfo>();
    send_sync::<Plan>();
    send::<QueryIter<User>>();
    // `Transaction` is deliberately neither: a transaction belongs to its thread.
}

#[test]
fn a_database_is_shared_by_handle() {
    let db = Database::in_memory().expect("db");
    db.create_table::<User>(TableOptions::new()).expect("table");
    let filter = User::AGE.ge(18);
    std::thread::scope(|s| {
        s.spawn(|| db.scope(|| User::write(User { id: 1, age: 30 }))).join().expect("join").expect("write");
        let found =
            s.spawn(|| db.scope(|| User::select(filter.clone()))).join().expect("join").expect("select");
        assert_eq!(found.len(), 1);
    });
}
