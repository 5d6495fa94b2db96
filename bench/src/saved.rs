//! `--save`: the run's figures, with the date, the machine and the commit, written to
//! `bench/results/DATE.json`, where the README's performance table takes them from.

use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// Today's date (UTC) as `YYYY-MM-DD`.
fn today() -> String {
    let days = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Days since 1970-01-01 to a civil date (the proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The first line a command prints, if it runs.
fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    String::from_utf8(out.stdout).ok()?.lines().next().map(str::to_owned)
}

/// What the figures were measured on.
fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']));
    let memory_kb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<u64>().ok())
    });
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map_or(1, usize::from),
        "memory_gib": memory_kb.map(|k| k / (1 << 20)),
        "os": std::env::consts::OS,
        "rustc": first_line("rustc", &["--version"]),
        "commit": first_line("git", &["rev-parse", "--short", "HEAD"]),
    })
}

/// Adds the date and the machine to `out` and writes it to `bench/results/DATE.json`.
pub fn save(out: &mut Value) -> std::io::Result<PathBuf> {
    let date = today();
    if let Some(o) = out.as_object_mut() {
        o.insert("date".into(), json!(date));
        o.insert("machine".into(), machine());
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{date}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(out).unwrap_or_default() + "\n")?;
    Ok(path)
}

/// The repository's README.
pub fn readme() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md")
}

/// `path` as the README names it: from the repository's root.
pub fn relative(path: &std::path::Path) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let (root, full) =
        (root.canonicalize().unwrap_or(root), path.canonicalize().unwrap_or(path.to_path_buf()));
    full.strip_prefix(&root).unwrap_or(&full).display().to_string()
}
