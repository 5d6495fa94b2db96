//! The observer over HTTP: every endpoint's JSON, paging and filters, the token rule, the
//! live event tail, and refusals. A small HTTP/1.1 client over `TcpStream` (127.0.0.1 only,
//! every read bounded by a timeout).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mnesia::prelude::*;
use serde_json::Value;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "ordered_set")]
struct User {
    #[key]
    id: u32,
    #[index]
    name: String,
    age: u32,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Ticket {
    #[key]
    #[auto_increment]
    id: u64,
    #[index(unique)]
    code: String,
    #[ttl]
    expires: Option<std::time::SystemTime>,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "bag")]
struct Tag {
    #[key]
    item: u32,
    label: String,
}

const TIMEOUT: Duration = Duration::from_secs(20);

/// A response: status, headers (lower-cased names), body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    s
}

fn request(addr: SocketAddr, method: &str, path: &str, extra: &[(&str, &str)]) -> Reply {
    let mut s = connect(addr);
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8(raw).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_owned() };
    Reply { status, headers, body }
}

/// Sends `text` as it is; the whole answer.
fn raw(addr: SocketAddr, text: &str) -> String {
    let mut s = connect(addr);
    s.write_all(text.as_bytes()).expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, &[])
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

fn database() -> Database {
    let db = Database::in_memory().expect("db");
    db.scope(|| -> mnesia::Result<()> {
        User::create_table(TableOptions::new())?;
        Ticket::create_table(TableOptions::new())?;
        User::batch_write((0..25).map(|id| User { id, name: format!("user {id}"), age: 20 + id % 7 }))?;
        Ticket::insert(Ticket { id: 0, code: "A-1".into(), expires: None })?;
        Tag::create_table(TableOptions::new())?;
        Tag::batch_write(
            (0..5).flat_map(|item| (0..3).map(move |l| Tag { item, label: format!("{item}-{l}") })),
        )?;
        Ok(())
    })
    .expect("tables");
    db
}

#[test]
fn overview_tables_and_metrics_tell_what_the_database_holds_and_does() {
    let db = database();
    let observer = mnesia_observer::Options::new()
        .sample_every(Duration::from_millis(20))
        .serve(&db, "127.0.0.1:0")
        .expect("serve");
    let addr = observer.local_addr();

    let ov = get(addr, "/api/overview");
    assert_eq!(ov.status, 200);
    assert_eq!(ov.header("content-type"), Some("application/json"));
    let ov = ov.json();
    assert_eq!(ov["nodes"][0]["name"], db.node());
    assert_eq!(ov["nodes"][0]["role"], "standalone");
    assert_eq!(ov["system"]["node"], db.node());
    // On a cluster node (what the cluster reports): each member, its role, the leader, and
    // how far behind each is where the report knows it.
    db.report_cluster_with(|| {
        Some(mnesia::ClusterInfo::new(
            1,
            Some(2),
            4,
            17,
            vec![
                mnesia::ClusterMember::new(1, "127.0.0.1:4370", true).with_behind(2),
                mnesia::ClusterMember::new(2, "127.0.0.1:4371", true).with_behind(0),
                mnesia::ClusterMember::new(3, "127.0.0.1:4372", false),
            ],
        ))
    });
    let clustered = get(addr, "/api/overview").json();
    let roles: Vec<(&str, bool)> = clustered["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| (n["role"].as_str().expect("role"), n["running"].as_bool().expect("running")))
        .collect();
    assert_eq!(roles, [("follower", true), ("leader", true), ("follower", false)]);
    let lags: Vec<&serde_json::Value> =
        clustered["nodes"].as_array().expect("nodes").iter().map(|n| &n["lag"]).collect();
    assert_eq!(lags, [&serde_json::json!(2), &serde_json::json!(0), &serde_json::Value::Null]);
    assert_eq!(clustered["nodes"][2]["name"], "3@127.0.0.1:4372");
    assert_eq!(clustered["system"]["cluster"]["term"], 4);
    db.stop_reporting_cluster();
    assert_eq!(ov["tables"], 3);
    assert!(ov["system"]["commits"].as_u64().expect("commits") >= 1);
    assert!(ov["system"].get("tables").is_none(), "the tables have an endpoint of their own");

    let tables = get(addr, "/api/tables").json();
    let names: Vec<&str> =
        tables.as_array().expect("list").iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["tag", "ticket", "user"]);
    let user = &tables[2];
    assert_eq!((user["size"].as_u64(), user["table_type"].as_str()), (Some(25), Some("ordered_set")));
    assert_eq!(user["indexes"][0]["field"], "name");
    let ticket = &tables[1];
    assert_eq!((ticket["auto_increment"].as_bool(), ticket["counter"].as_u64()), (Some(true), Some(1)));
    assert_eq!(ticket["ttl_field"], "expires");
    assert_eq!(ticket["indexes"][0]["unique"], true);

    // Commits while the sampler runs show up as a rate and latency percentiles.
    let deadline = Instant::now() + TIMEOUT;
    let mut i = 100;
    let busy = loop {
        db.scope(|| User::write(User { id: i, name: "busy".into(), age: 1 })).expect("write");
        i += 1;
        let samples = get(addr, "/api/metrics").json()["samples"].as_array().cloned().unwrap_or_default();
        if let Some(s) = samples.iter().find(|s| s["commits"].as_f64().unwrap_or(0.0) > 0.0) {
            break s.clone();
        }
        assert!(Instant::now() < deadline, "no sample counted the commits");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(busy["at_ms"].as_u64().expect("time") > 0);
    let p50 = busy["p50_us"].as_f64().expect("a median latency");
    let p99 = busy["p99_us"].as_f64().expect("a 99th percentile");
    assert!(p50 > 0.0 && p99 >= p50, "{busy}");
    observer.stop();
}

#[test]
fn records_come_in_pages_by_key_and_filter_by_field() {
    let db = database();
    let observer = mnesia_observer::serve(&db, "127.0.0.1:0").expect("serve");
    let addr = observer.local_addr();

    let mut ids = Vec::new();
    let mut after: Option<Value> = None;
    for _ in 0..10 {
        let path = match &after {
            Some(k) => format!("/api/tables/user/records?limit=10&after={k}"),
            None => "/api/tables/user/records?limit=10".to_owned(),
        };
        let page = get(addr, &path);
        assert_eq!(page.status, 200, "{}", page.body);
        let page = page.json();
        ids.extend(
            page["records"].as_array().expect("records").iter().map(|r| r["id"].as_u64().expect("id")),
        );
        after = Some(page["next"].clone()).filter(|n| !n.is_null());
        if after.is_none() {
            break;
        }
    }
    assert_eq!(ids, (0..25).collect::<Vec<u64>>(), "every record once, in key order");

    let page = get(addr, "/api/tables/user/records?field=name&contains=user%202").json();
    let found: Vec<u64> =
        page["records"].as_array().expect("records").iter().map(|r| r["id"].as_u64().expect("id")).collect();
    assert_eq!(found, [2, 20, 21, 22, 23, 24]);
    let page = get(addr, "/api/tables/user/records?field=age&contains=26").json();
    assert_eq!(page["records"].as_array().map(Vec::len), Some(3), "ages 26: ids 6, 13, 20");

    let missing = get(addr, "/api/tables/nothing/records");
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].as_str().expect("error").contains("nothing"));
    assert_eq!(get(addr, "/api/tables/user/records?after=%7Bnot%20json").status, 400);
    assert_eq!(get(addr, "/api/tables/user/records?after=%22a%20string%22").status, 400, "not a key of user");
    assert_eq!(get(addr, "/api/tables/user/records?field=shoe&contains=x").status, 400);
    for bad in ["limit=-1", "limit=0", "limit=many"] {
        let refused = get(addr, &format!("/api/tables/user/records?{bad}"));
        assert_eq!(refused.status, 400, "{bad}");
        assert!(
            refused.json()["error"].as_str().is_some_and(|e| e.contains("limit")),
            "{bad}: {}",
            refused.body
        );
    }
    assert_eq!(get(addr, "/api/nothing").status, 404);
    assert_eq!(request(addr, "POST", "/api/tables", &[("Content-Length", "0")]).status, 405, "read-only");
}

#[test]
fn with_a_token_every_request_must_carry_it() {
    let db = database();
    let observer =
        mnesia_observer::Options::new().token("s3cret t").serve(&db, "127.0.0.1:0").expect("serve");
    let addr = observer.local_addr();
    for path in [
        "/",
        "/api/overview",
        "/api/tables",
        "/api/metrics",
        "/api/tables/user/records",
        "/api/tables/user/events",
    ] {
        let refused = get(addr, path);
        assert_eq!(refused.status, 401, "{path}");
        assert!(refused.json()["error"].as_str().expect("error").contains("token"));
        assert_eq!(get(addr, &format!("{path}?token=s3cret")).status, 401, "{path} with another token");
    }
    assert_eq!(get(addr, "/api/tables?token=s3cret+t").status, 200);
    assert_eq!(get(addr, "/api/tables?token=s3cret%20t").status, 200);
    assert_eq!(request(addr, "GET", "/api/tables", &[("Authorization", "Bearer s3cret t")]).status, 200);
    assert_eq!(request(addr, "GET", "/api/tables", &[("Authorization", "Bearer s3cret")]).status, 401);
    assert_eq!(request(addr, "GET", "/api/tables", &[("Authorization", "bearer s3cret t")]).status, 200);
    let page = get(addr, "/?token=s3cret%20t");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<svg id=\"rates\""));
    assert!(page.header("content-security-policy").is_some_and(|p| p.contains("default-src 'none'")));

    // Only loopback goes without a token, and only for requests naming a loopback host (a
    // page whose name was rebound to 127.0.0.1 sends its own).
    let open = mnesia_observer::serve(&db, "127.0.0.1:0").expect("serve");
    let rebound =
        raw(open.local_addr(), "GET /api/tables HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n");
    assert!(rebound.starts_with("HTTP/1.1 401") && rebound.contains("loopback name"), "{rebound}");
    let local =
        raw(open.local_addr(), "GET /api/tables HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(local.starts_with("HTTP/1.1 200"), "{local}");
    let refused = mnesia_observer::serve(&db, "0.0.0.0:0");
    assert!(matches!(refused, Err(mnesia::Error::Invalid(ref m)) if m.contains("token")), "{refused:?}");
}

#[test]
fn the_event_tail_streams_a_tables_changes_as_they_commit() {
    let db = database();
    let observer = mnesia_observer::serve(&db, "127.0.0.1:0").expect("serve");
    let addr = observer.local_addr();
    let mut s = connect(addr);
    s.write_all(format!("GET /api/tables/user/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .expect("send");
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    // The head: the subscription exists once it is sent.
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).expect("head") > 0, "closed early");
        if line.starts_with("HTTP/1.1") {
            assert!(line.contains("200"), "{line}");
        }
        if line.to_ascii_lowercase().starts_with("content-type") {
            assert!(line.contains("text/event-stream"), "{line}");
        }
        if line == "\r\n" {
            break;
        }
    }
    db.scope(|| -> mnesia::Result<()> {
        User::write(User { id: 500, name: "new".into(), age: 3 })?;
        User::delete(&500)?;
        User::clear()?;
        Ok(())
    })
    .expect("changes");
    let mut events = Vec::new();
    while events.len() < 3 {
        line.clear();
        assert!(reader.read_line(&mut line).expect("an event within the timeout") > 0, "closed early");
        if let Some(data) = line.trim_end().split_once("data:").map(|(_, d)| d.trim()) {
            events.push(serde_json::from_str::<Value>(data).expect("JSON event"));
        }
    }
    assert_eq!(events[0]["event"], "write");
    assert_eq!(events[0]["record"], serde_json::json!({ "id": 500, "name": "new", "age": 3 }));
    assert_eq!((events[1]["event"].as_str(), events[1]["key"].as_u64()), (Some("delete"), Some(500)));
    assert_eq!(events[1]["cause"], "explicit");
    assert_eq!(events[2]["event"], "cleared");

    assert_eq!(get(addr, "/api/tables/nothing/events").status, 404);
    // Stopping does not wait for the stream still open.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        observer.stop();
        let _ = done_tx.send(());
    });
    done_rx.recv_timeout(TIMEOUT).expect("the observer stops with a stream open");
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(), "stopped serving");
    // The stream was closed: reading ends.
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    drop(reader);
}
