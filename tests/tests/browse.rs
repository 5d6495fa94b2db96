//! `Database::browse` pages through any table by name: a claimed table through its type, a
//! disc table no type has claimed yet through its stored record format — the same pages
//! either way (for number and string keys), with every record once.

use mnesia::prelude::*;
use mnesia::{Browse, Page};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Person {
    #[key]
    name: String,
    #[index(unique)]
    email: String,
    age: u32,
    nick: Option<String>,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "bag")]
struct Label {
    #[key]
    item: u64,
    text: String,
}

/// Every page of `table` with `limit` records (and `contains`, if given), in order.
fn pages(db: &Database, table: &str, limit: usize, contains: Option<(&str, &str)>) -> Vec<Page> {
    let mut out = Vec::new();
    let mut after = None;
    for _ in 0..1000 {
        let mut b = Browse::new().limit(limit);
        if let Some((field, text)) = contains {
            b = b.field(field).contains(text);
        }
        if let Some(a) = after.take() {
            b = b.after(a);
        }
        let page = db.browse(table, &b).expect("page");
        after = page.next.clone();
        out.push(page);
        if after.is_none() {
            return out;
        }
    }
    panic!("paging did not end");
}

fn all(pages: &[Page]) -> Vec<serde_json::Value> {
    pages.iter().flat_map(|p| p.records.clone()).collect()
}

#[test]
fn an_unclaimed_disc_table_browses_as_its_claimed_self_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    mnesia::Schema::create(dir.path()).expect("schema");
    let db = Database::open(Config::default().dir(dir.path())).expect("open");
    db.scope(|| -> mnesia::Result<()> {
        Person::create_table(TableOptions::new().disc_copies([db.node()]))?;
        Label::create_table(TableOptions::new().disc_copies([db.node()]))?;
        Person::batch_write((0..40u32).map(|i| Person {
            name: format!("p{i:02}"),
            email: format!("{i}@x"),
            age: i % 9,
            nick: (i % 3 == 0).then(|| format!("n{i}")),
        }))?;
        Label::batch_write(
            (0..12u64).flat_map(|item| (0..3).map(move |k| Label { item, text: format!("{item}.{k}") })),
        )?;
        Person::delete(&"p07".to_string())?;
        Ok(())
    })
    .expect("fill");
    db.close().expect("close");
    drop(db);

    // Opened again, nothing claimed: read through the stored formats.
    let db = Database::open(Config::default().dir(dir.path())).expect("reopen");
    let unclaimed = [
        pages(&db, "person", 7, None),
        pages(&db, "person", 5, Some(("age", "3"))),
        pages(&db, "label", 4, None),
        pages(&db, "label", 2, Some(("text", ".1"))),
    ];
    assert_eq!(all(&unclaimed[0]).len(), 39);
    assert_eq!(all(&unclaimed[2]).len(), 36, "every record of the bag once");
    assert!(
        matches!(db.subscribe_json("person"), Err(mnesia::Error::Unclaimed { .. })),
        "no events before a claim"
    );
    // Claimed: the same pages through the types.
    db.scope(|| -> mnesia::Result<()> {
        Person::count()?;
        Label::count()?;
        Ok(())
    })
    .expect("claim");
    let claimed = [
        pages(&db, "person", 7, None),
        pages(&db, "person", 5, Some(("age", "3"))),
        pages(&db, "label", 4, None),
        pages(&db, "label", 2, Some(("text", ".1"))),
    ];
    for (u, c) in unclaimed.iter().zip(&claimed) {
        assert_eq!(all(u), all(c));
        let keys = |ps: &[Page]| ps.iter().map(|p| p.next.clone()).collect::<Vec<_>>();
        assert_eq!(keys(u), keys(c), "pages end at the same keys");
    }
    let last = all(&claimed[0]);
    assert_eq!(last[0]["name"], "p00");
    assert_eq!(last[38]["name"], "p39");
}
