use mnesia::prelude::*;
use std::time::SystemTime;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
struct Lease {
    #[key]
    #[ttl]
    until: SystemTime,
}

fn main() {}
