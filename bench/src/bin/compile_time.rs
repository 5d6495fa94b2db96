//! What a table type costs to build: generates a crate declaring N tables (an
//! auto-increment key, a unique index, an index, a plain field) whose `main` creates each
//! table and runs `insert`, `read`, `select`, an ordered `query()` with a limit and an
//! `update` inside a transaction on it; builds it from clean (debug, `CARGO_INCREMENTAL=0`,
//! what a first build, CI and a release build pay; its dependencies already built) for N =
//! 1, 10 and 30, and reports seconds and debug-binary bytes per table type (the slope
//! between 10 and 30 tables), and the release build of 30 tables.
//!
//! The floor, measured in the same run: the same structs with serde's derive only, each
//! written and read back as JSON by `main`.
//!
//! Run: `cargo run --release -p bench --bin compile_time` (about 10 minutes on 2 cores;
//! `--debug-only`: no release build; `--quick`: 1 and 10 tables, no release build). Prints
//! one JSON object; the crates are built under `target/compile-bench/`. Nothing else
//! should build meanwhile: the figures are wall-clock times.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{Map, Value, json};

/// One table type of the mnesia crate.
fn mnesia_table(i: usize) -> String {
    format!(
        r#"
#[derive(Table, Clone, Debug, Serialize, Deserialize)]
struct Table{i} {{
    #[key]
    #[auto_increment]
    id: u64,
    #[index(unique)]
    email: String,
    #[index]
    age: u32,
    name: String,
}}

fn use_table{i}() -> mnesia::Result<()> {{
    Table{i}::create_table(TableOptions::new())?;
    let r = Table{i}::insert(Table{i} {{ id: 0, email: "a{i}@example.com".into(), age: 30, name: "n".into() }})?;
    assert!(Table{i}::read(&r.id)?.is_some());
    assert_eq!(Table{i}::select(Table{i}::AGE.gt(20))?.len(), 1);
    assert_eq!(Table{i}::query().order_by(Table{i}::AGE.asc()).limit(5).all()?.len(), 1);
    mnesia::transaction(|| Table{i}::update(&r.id, |u| u.age += 1).map(drop))?;
    Ok(())
}}
"#
    )
}

/// The same struct with serde's derive only (the floor).
fn serde_table(i: usize) -> String {
    format!(
        r#"
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Table{i} {{
    id: u64,
    email: String,
    age: u32,
    name: String,
}}

fn use_table{i}() -> serde_json::Result<()> {{
    let json = serde_json::to_string(&Table{i} {{ id: 1, email: "a{i}@example.com".into(), age: 30, name: "n".into() }})?;
    let back: Table{i} = serde_json::from_str(&json)?;
    assert_eq!(back.age, 30);
    Ok(())
}}
"#
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Mnesia,
    Serde,
}

fn main_rs(kind: Kind, tables: usize) -> String {
    let mut s = String::new();
    match kind {
        Kind::Mnesia => {
            s.push_str("use mnesia::prelude::*;\n");
            for i in 0..tables {
                s.push_str(&mnesia_table(i));
            }
            s.push_str("\nfn main() -> mnesia::Result<()> {\n    let db = Database::in_memory()?;\n    db.scope(|| -> mnesia::Result<()> {\n");
            for i in 0..tables {
                s.push_str(&format!("        use_table{i}()?;\n"));
            }
            s.push_str("        Ok(())\n    })\n}\n");
        }
        Kind::Serde => {
            s.push_str("use serde::{Deserialize, Serialize};\n");
            for i in 0..tables {
                s.push_str(&serde_table(i));
            }
            s.push_str("\nfn main() -> serde_json::Result<()> {\n");
            for i in 0..tables {
                s.push_str(&format!("    use_table{i}()?;\n"));
            }
            s.push_str("    Ok(())\n}\n");
        }
    }
    s
}

struct Probe {
    dir: PathBuf,
    target: PathBuf,
}

impl Probe {
    fn new(repo: &Path) -> std::io::Result<Probe> {
        let root = repo.join("target/compile-bench");
        let dir = root.join("probe");
        std::fs::create_dir_all(dir.join("src"))?;
        let manifest = format!(
            "[package]\nname = \"probe\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
             [dependencies]\nmnesia = {{ path = {:?} }}\nserde = {{ version = \"1\", features = [\"derive\"] }}\n\
             serde_json = \"1\"\n\n[workspace]\n",
            repo.join("mnesia")
        );
        std::fs::write(dir.join("Cargo.toml"), manifest)?;
        // The workspace's lock file: the same dependency versions, nothing to resolve.
        std::fs::copy(repo.join("Cargo.lock"), dir.join("Cargo.lock"))?;
        Ok(Probe { dir, target: root.join("target") })
    }

    fn cargo(&self, args: &[&str]) -> Command {
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.args(args)
            .current_dir(&self.dir)
            .env("CARGO_TARGET_DIR", &self.target)
            .env("CARGO_INCREMENTAL", "0");
        c
    }

    /// Builds the crate for `kind` with `tables` tables from clean (its dependencies
    /// already built); returns the seconds it took and the binary's bytes.
    fn build(&self, kind: Kind, tables: usize, release: bool) -> Result<(f64, u64), String> {
        std::fs::write(self.dir.join("src/main.rs"), main_rs(kind, tables)).map_err(|e| e.to_string())?;
        let profile: &[&str] = if release { &["--release"] } else { &[] };
        let clean = self.cargo(&[&["clean", "-p", "probe", "-q"], profile].concat()).status();
        if !clean.map(|s| s.success()).unwrap_or(false) {
            return Err("cargo clean failed".into());
        }
        let t = Instant::now();
        let out = self.cargo(&[&["build", "-q"], profile].concat()).output().map_err(|e| e.to_string())?;
        let secs = t.elapsed().as_secs_f64();
        if !out.status.success() {
            return Err(format!(
                "the {tables}-table crate does not build:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let bin = self.target.join(if release { "release" } else { "debug" }).join("probe");
        let bytes = std::fs::metadata(&bin).map_err(|e| format!("{}: {e}", bin.display()))?.len();
        // It runs, too: the generated code is not only compiled.
        let ran = Command::new(&bin).status().map_err(|e| e.to_string())?;
        if !ran.success() {
            return Err(format!("the {tables}-table program failed"));
        }
        Ok((secs, bytes))
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn main() -> Result<(), String> {
    let quick = std::env::args().any(|a| a == "--quick");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let repo = repo.canonicalize().map_err(|e| e.to_string())?;
    let probe = Probe::new(&repo).map_err(|e| e.to_string())?;
    let (low, high) = if quick { (1, 10) } else { (10, 30) };
    let sizes: &[usize] = if quick { &[1, 10] } else { &[1, 10, 30] };
    eprintln!("building the dependencies once");
    probe.build(Kind::Mnesia, 1, false)?;
    let mut figures = Map::new();
    let mut slopes = Map::new();
    for (kind, name) in [(Kind::Serde, "serde"), (Kind::Mnesia, "mnesia")] {
        let mut runs = Vec::new();
        for &n in sizes {
            let (secs, bytes) = probe.build(kind, n, false)?;
            eprintln!("{name:<7} {n:>3} tables: {secs:>7.2} s  {bytes:>11} bytes");
            runs.push(json!({ "tables": n, "seconds": round(secs), "bytes": bytes }));
        }
        let at = |n: usize| {
            runs.iter()
                .find(|r| r["tables"] == n)
                .map(|r| (r["seconds"].as_f64().unwrap_or(0.0), r["bytes"].as_f64().unwrap_or(0.0)))
                .unwrap_or((0.0, 0.0))
        };
        let ((s0, b0), (s1, b1)) = (at(low), at(high));
        let per = (high - low) as f64;
        slopes.insert(name.into(), json!({ "seconds_per_table": round((s1 - s0) / per), "bytes_per_table": ((b1 - b0) / per).round(), "builds": runs }));
    }
    let per = |k: &str, f: &str| slopes[k][f].as_f64().unwrap_or(0.0);
    for (figure, field) in [
        ("compile_debug_s_per_table", "seconds_per_table"),
        ("debug_binary_bytes_per_table", "bytes_per_table"),
    ] {
        let (ours, floor) = (per("mnesia", field), per("serde", field));
        figures.insert(
            figure.into(),
            json!({ "value": ours, "floor": floor, "ratio": round(ours / floor.max(1e-9)) }),
        );
    }
    if !quick && !std::env::args().any(|a| a == "--debug-only") {
        eprintln!("building the dependencies once (release)");
        probe.build(Kind::Mnesia, 1, true)?;
        let (secs, bytes) = probe.build(Kind::Mnesia, 30, true)?;
        let (floor, _) = probe.build(Kind::Serde, 30, true)?;
        eprintln!("release  30 tables: {secs:.2} s ({bytes} bytes); serde's {floor:.2} s");
        figures.insert(
            "compile_release_30_tables_s".into(),
            json!({ "value": round(secs), "floor": round(floor), "ratio": round(secs / floor.max(1e-9)), "bytes": bytes }),
        );
    }
    let report: Value =
        json!({ "figures": figures, "slopes": Value::Object(slopes), "between": [low, high] });
    println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    Ok(())
}
