use mnesia::prelude::*;
use std::time::SystemTime;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
struct Session {
    #[key]
    token: String,
    #[ttl]
    idle_until: Option<SystemTime>,
    #[ttl]
    absolute_until: Option<SystemTime>,
}

fn main() {}
