//! Backup and export, mirroring MnesiaEx's `examples/05_backup_export.exs`: take a backup
//! and export a table to JSON and CSV, clear everything, then restore the backup and import
//! the exports back, and compare; then back up and restore a larger table on its own,
//! with progress reports.
//!
//! Run: `cargo run -p examples --example 05_backup_export`

use mnesia::prelude::*;
use mnesia::{BackupOptions, Format, ImportOptions, RestoreOptions};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "products")]
struct Product {
    #[key]
    #[auto_increment]
    id: u64,
    #[index(unique)]
    sku: String,
    name: String,
    price_cents: u64,
    tags: Vec<String>,
    discontinued: Option<String>,
}

/// A larger table, backed up on its own.
#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "readings")]
struct Reading {
    #[key]
    id: u64,
    sensor: String,
    value: f64,
}

fn product(sku: &str, name: &str, price_cents: u64, tags: &[&str]) -> Product {
    Product {
        id: 0,
        sku: sku.into(),
        name: name.into(),
        price_cents,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        discontinued: None,
    }
}

fn sorted(mut v: Vec<Product>) -> Vec<Product> {
    v.sort_by_key(|p| p.id);
    v
}

fn main() -> mnesia::Result<()> {
    let dir = std::env::temp_dir().join(format!("mnesia-example-05-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| mnesia::Error::Invalid(e.to_string()))?;
    let db = mnesia::start(Config::default())?;
    Product::create_table(TableOptions::new())?;
    Product::insert(product("A-1", "Pen, blue", 150, &["office"]))?;
    Product::insert(product("A-2", "Notebook \"A5\"", 420, &["office", "paper"]))?;
    let mut old = product("B-7", "Fax paper", 990, &[]);
    old.discontinued = Some("2019".into());
    Product::insert(old)?;
    let original = sorted(Product::list()?);
    println!("{} products", original.len());

    let backup = dir.join("all.bak");
    let info = db.backup(&backup)?;
    println!("backup of {:?}: {} records at commit {}", info.tables, info.records, info.last_commit);
    assert_eq!(info.records, 3);
    let json = dir.join("products.json");
    let csv = dir.join("products.csv");
    let (to_json, to_csv) = (Product::export(&json)?, Product::export(&csv)?);
    println!("exported {to_json} to {}", json.display());
    println!("exported {to_csv} to {}", csv.display());
    assert_eq!((to_json, to_csv), (3, 3));
    let text = std::fs::read_to_string(&csv).map_err(|e| mnesia::Error::Invalid(e.to_string()))?;
    println!("the CSV file:\n{text}");

    Product::clear()?;
    println!("cleared: {} products", Product::count()?);
    assert_eq!(Product::count()?, 0);
    db.restore(&backup, &RestoreOptions::new())?;
    println!("restored from the backup: same as before? {}", sorted(Product::list()?) == original);
    assert_eq!(sorted(Product::list()?), original);

    Product::clear()?;
    Product::import(&json)?;
    println!("imported the JSON: same as before? {}", sorted(Product::list()?) == original);
    assert_eq!(sorted(Product::list()?), original);
    Product::clear()?;
    Product::import_from(text.as_bytes(), Format::Csv, &ImportOptions::new())?;
    println!("imported the CSV: same as before? {}", sorted(Product::list()?) == original);
    assert_eq!(sorted(Product::list()?), original);

    // A broken import changes nothing, and says where.
    let broken = text.replacen("150", "one fifty", 1);
    match Product::import_from(broken.as_bytes(), Format::Csv, &ImportOptions::new().replace_existing(true)) {
        Err(e) => {
            println!("a broken CSV: {e}");
            // The line of A-1's row, whichever it is; the column is named.
            assert!(
                matches!(&e, mnesia::Error::Import { column: Some(c), .. } if c == "price_cents"),
                "{e:?}"
            );
        }
        Ok(n) => panic!("unexpected: imported {n}"),
    }
    assert_eq!(sorted(Product::list()?), original, "the broken import changed nothing");
    let next = Product::insert(product("C-1", "Stapler", 800, &[]))?.id;
    println!("next id after the imports: {next}");
    let highest = original.iter().map(|p| p.id).max().unwrap_or(0);
    assert!(next > highest, "the counter moved past the imported ids");

    // A larger table, backed up alone and restored, with progress along the way.
    Reading::create_table(TableOptions::new())?;
    Reading::batch_write((0..50_000).map(|id| Reading {
        id,
        sensor: format!("s{}", id % 40),
        value: id as f64 / 10.0,
    }))?;
    let readings = dir.join("readings.bak");
    let opts = BackupOptions::new().tables(["readings"]).progress(|n| println!("  backed up {n} readings"));
    let info = db.backup_with(&readings, &opts)?;
    println!("backup of {:?}: {} records", info.tables, info.records);
    assert_eq!((info.tables.as_slice(), info.records), (&["readings".to_owned()][..], 50_000));
    Reading::clear()?;
    let restored =
        db.restore(&readings, &RestoreOptions::new().progress(|n| println!("  restored {n} readings")))?;
    println!("restored {restored} readings; products untouched: {}", Product::count()? == original.len() + 1);
    assert_eq!((restored, Reading::count()?), (50_000, 50_000));
    assert_eq!(Product::count()?, original.len() + 1);

    let _ = std::fs::remove_dir_all(&dir);
    drop(db);
    mnesia::stop()
}

/// `cargo test` runs the example: its assertions are the README's promises.
#[test]
fn the_example_holds() {
    main().expect("example");
}
