use mnesia::prelude::*;
use std::time::SystemTime;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
#[table(ttl = "30m")]
struct Lease {
    #[key]
    id: u64,
    #[ttl]
    until: SystemTime,
}

fn main() {}
