//! `#[table(crate = "..")]`: a struct declared in a crate that reaches mnesia through another
//! path (a facade re-exporting it) gets a `Record` impl that uses that path.

use std::time::{Duration, SystemTime};

mod facade {
    pub use mnesia as db;
}

use facade::db::{Database, Expiring, Record as _, Table as _, TableOptions};

#[derive(facade::db::Table, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[table(crate = "crate::facade::db", name = "items")]
struct Item {
    #[key]
    #[auto_increment]
    id: u64,
    #[index]
    color: String,
    #[ttl]
    until: Option<SystemTime>,
}

#[test]
fn a_table_declared_through_a_facade_works_as_any_other() {
    let db = Database::in_memory().expect("db");
    db.scope(|| -> facade::db::Result<()> {
        Item::create_table(TableOptions::new())?;
        let a = Item::insert(Item { id: 0, color: "red".into(), until: None })?;
        Item::write_with_ttl(Item { id: 0, color: "blue".into(), until: None }, Duration::from_secs(60))?;
        assert_eq!(a.id, 1);
        assert_eq!(Item::select(Item::COLOR.eq("red".to_owned()))?, vec![a]);
        assert_eq!(Item::NAME, "items");
        assert_eq!(Item::table_info()?.indexes.len(), 1);
        assert!(Item::ttl(&2)?.is_some());
        Ok(())
    })
    .expect("body");
}
