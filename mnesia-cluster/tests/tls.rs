//! Nodes whose connections are TLS (feature `tls`): three nodes with certificates of one CA
//! form a cluster and commit; a node whose certificate comes from another CA or names
//! another cluster, and a node without TLS, are refused; plain bytes on a TLS port are
//! refused and the node goes on.

#![cfg(feature = "tls")]

use std::io::Write;
use std::time::{Duration, Instant};

use mnesia::prelude::*;
use mnesia_cluster::{Node, Options, Tls};

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Item {
    #[key]
    id: u32,
    n: i64,
}

const COOKIE: &str = "tls test cookie";

/// A CA: its certificate and key.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca { cert, key }
    }

    /// A node's TLS settings: a certificate naming `mnesia`, signed by this CA.
    fn node(&self) -> Tls {
        self.node_named("mnesia")
    }

    /// A node's TLS settings: a certificate naming `name`, signed by this CA.
    fn node_named(&self, name: &str) -> Tls {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("node certificate");
        let ca = self.cert.pem();
        Tls::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes(), ca.as_bytes()).expect("tls")
    }
}

fn options(id: u64) -> Options {
    Options::new(id, COOKIE)
        .timings(Duration::from_millis(50), (Duration::from_millis(200), Duration::from_millis(400)))
        .write_timeout(Duration::from_secs(3))
}

fn database() -> Database {
    let db = Database::in_memory().expect("db");
    db.scope(|| Item::create_table(TableOptions::new())).expect("table");
    db
}

fn items(db: &Database) -> Vec<Item> {
    let mut all = db.scope(Item::list).expect("list");
    all.sort_by_key(|i| i.id);
    all
}

#[test]
fn nodes_with_certificates_of_one_ca_commit_and_others_are_refused() {
    let ca = Ca::new();
    let dbs: Vec<Database> = (0..3).map(|_| database()).collect();
    let nodes: Vec<Node> = dbs
        .iter()
        .zip(1..)
        .map(|(db, id)| Node::start(db, options(id).tls(ca.node())).expect("node"))
        .collect();
    nodes[0].initialize(nodes.iter().zip(1..).map(|(n, id)| (id, n.local_addr()))).expect("initialize");
    for n in &nodes {
        n.wait_for_leader(Duration::from_secs(10)).expect("a leader");
    }
    for (i, db) in dbs.iter().enumerate() {
        db.scope(|| Item::write(Item { id: i as u32, n: 1 })).expect("write");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while dbs.iter().any(|db| items(db).len() < 3) {
        assert!(Instant::now() < deadline, "the copies did not converge");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(items(&dbs[1]), items(&dbs[0]));
    assert_eq!(items(&dbs[2]), items(&dbs[0]));

    // Plain bytes on a TLS port: that connection ends, the node goes on.
    let mut plain = std::net::TcpStream::connect(nodes[0].local_addr()).expect("connect");
    let _ = plain.write_all(b"\x00\x00\x00\x10hello, not TLS at all");
    drop(plain);

    // A certificate of another CA, and no TLS at all: neither can join.
    let seed = nodes[1].local_addr();
    // The joiner refuses the seed's certificate: at once, saying so (not NoMajority once
    // the time is up).
    let stranger = Node::start(&database(), options(7).tls(Ca::new().node())).expect("node");
    let joined = stranger.join(seed, Duration::from_secs(30));
    assert!(matches!(&joined, Err(mnesia::Error::Invalid(why)) if why.contains("TLS")), "{joined:?}");
    let plain = Node::start(&database(), options(8)).expect("node");
    assert!(matches!(plain.join(seed, Duration::from_millis(800)), Err(mnesia::Error::NoMajority { .. })));
    // A certificate of the right CA that names something else: refused as the node starts
    // (the others would refuse each of its connections, and it would learn nothing).
    let misnamed = Node::start(&database(), options(6).tls(ca.node_named("not-the-cluster"))).err();
    assert!(
        matches!(&misnamed, Some(mnesia::Error::Invalid(why)) if why.contains("does not name the cluster")),
        "{misnamed:?}"
    );
    assert_eq!(nodes[0].status().members, [1, 2, 3].into());

    // The cluster goes on.
    dbs[2].scope(|| Item::write(Item { id: 9, n: 2 })).expect("write after the refusals");
}
