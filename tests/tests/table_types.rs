//! The whole table-scoped API on each table type, with the semantics that differ between
//! `set`, `ordered_set` and `bag` checked side by side.

use mnesia::Error;
use mnesia::prelude::*;

macro_rules! table_type_suite {
    ($module:ident, $kind:literal) => {
        mod $module {
            use super::*;

            #[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
            #[table(type = $kind)]
            struct Item {
                #[key]
                id: u32,
                #[index]
                color: String,
                size: u32,
            }

            fn item(id: u32, color: &str, size: u32) -> Item {
                Item { id, color: color.into(), size }
            }

            fn sorted(mut v: Vec<Item>) -> Vec<(u32, String, u32)> {
                v.sort_by(|a, b| (a.id, &a.color, a.size).cmp(&(b.id, &b.color, b.size)));
                v.into_iter().map(|i| (i.id, i.color, i.size)).collect()
            }

            #[test]
            fn whole_api() {
                let bag = Item::TYPE == TableType::Bag;
                let db = Database::in_memory().expect("db");
                db.scope(|| -> mnesia::Result<()> {
                    Item::create_table(TableOptions::new())?;
                    assert_eq!(Item::table_info()?.table_type.to_string(), $kind);

                    // write / read / read_all
                    Item::write(item(2, "red", 1))?;
                    Item::write(item(1, "blue", 2))?;
                    Item::write(item(2, "green", 3))?;
                    let two = Item::read_all(&2)?;
                    if bag {
                        assert_eq!(two.len(), 2, "a bag keeps both records of key 2");
                    } else {
                        assert_eq!(two, vec![item(2, "green", 3)], "the second write replaced the first");
                    }
                    assert_eq!(Item::count()?, if bag { 3 } else { 2 });
                    assert_eq!(Item::all_keys()?.len(), 2);

                    // insert: refused on an existing key, except on a bag
                    let again = Item::insert(item(1, "pink", 9));
                    if bag {
                        assert!(again.is_ok());
                        Item::delete_object(&item(1, "pink", 9))?;
                    } else {
                        assert!(matches!(again, Err(Error::AlreadyExists { .. })));
                    }

                    // update: defined on set and ordered_set
                    let updated = Item::update(&1, |i| i.size = 20);
                    if bag {
                        assert!(matches!(updated, Err(Error::Invalid(_))));
                    } else {
                        assert_eq!(updated?.size, 20);
                    }

                    // upsert
                    let up = Item::upsert(item(3, "red", 5))?;
                    assert!(up.inserted());

                    // get_by through the index, select, query
                    assert_eq!(
                        Item::get_by(Item::COLOR, "red")?.map(|i| i.id),
                        Some(if bag { 2 } else { 3 })
                    );
                    assert_eq!(
                        Item::query().filter(Item::COLOR.eq("red")).explain()?,
                        Plan::IndexLookup { field: "color", values: 1 }
                    );
                    let reds = sorted(Item::select(Item::COLOR.eq("red"))?);
                    let expected_reds: Vec<(u32, String, u32)> = if bag {
                        vec![(2, "red".into(), 1), (3, "red".into(), 5)]
                    } else {
                        vec![(3, "red".into(), 5)]
                    };
                    assert_eq!(reds, expected_reds);
                    assert_eq!(Item::query().filter(Item::SIZE.ge(3)).count()?, if bag { 2 } else { 3 });
                    let keys = Item::all_keys()?;
                    if Item::TYPE == TableType::OrderedSet {
                        assert_eq!(keys, vec![1, 2, 3], "an ordered_set lists its keys in order");
                        let list: Vec<u32> = Item::list()?.iter().map(|i| i.id).collect();
                        assert_eq!(list, vec![1, 2, 3]);
                    }

                    // batch_write / batch_delete
                    Item::batch_write((10..20).map(|id| item(id, "batch", id)))?;
                    assert_eq!(Item::select(Item::COLOR.eq("batch"))?.len(), 10);
                    let removed = Item::batch_delete(10..15)?;
                    assert_eq!(removed.len(), 5);
                    assert_eq!(Item::select(Item::COLOR.eq("batch"))?.len(), 5);

                    // delete returns the removed record and clears the index entries
                    assert!(Item::delete(&3)?.is_some());
                    assert!(Item::delete(&3)?.is_none());
                    assert!(Item::select(Item::SIZE.eq(5))?.is_empty());

                    // dirty operations
                    Item::dirty_write(item(30, "dirty", 1))?;
                    assert_eq!(Item::dirty_read(&30)?.map(|i| i.size), Some(1));
                    assert_eq!(Item::dirty_get_by(Item::COLOR, "dirty")?.map(|i| i.id), Some(30));
                    assert_eq!(Item::dirty_select(Item::COLOR.eq("dirty"))?.len(), 1);
                    if !bag {
                        assert_eq!(Item::dirty_update(&30, |i| i.size = 2)?.size, 2);
                    }
                    assert!(Item::dirty_delete(&30)?.is_some());
                    assert!(Item::dirty_get_by(Item::COLOR, "dirty")?.is_none());

                    // a rolled-back transaction leaves no trace in data or indexes
                    let r: mnesia::Result<()> = mnesia::transaction(|| {
                        Item::write(item(40, "ghost", 1))?;
                        Item::delete(&1)?;
                        assert_eq!(Item::select(Item::COLOR.eq("ghost"))?.len(), 1);
                        Err(Error::abort("no"))
                    });
                    assert!(r.is_err());
                    assert!(Item::select(Item::COLOR.eq("ghost"))?.is_empty());
                    assert!(Item::read(&1)?.is_some());

                    // clear and drop
                    Item::clear()?;
                    assert_eq!(Item::count()?, 0);
                    assert!(Item::get_by(Item::COLOR, "batch")?.is_none());
                    Item::drop_table()?;
                    assert!(!Item::exists()?);
                    Ok(())
                })
                .expect("suite");
            }
        }
    };
}

table_type_suite!(set, "set");
table_type_suite!(ordered_set, "ordered_set");
table_type_suite!(bag, "bag");
