use mnesia::prelude::*;
use std::time::SystemTime;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
#[table(ttl = "30 minutes")]
struct Session {
    #[key]
    token: String,
    #[ttl]
    expires_at: Option<SystemTime>,
}

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
#[table(ttl = "0s")]
struct Token {
    #[key]
    id: u64,
    #[ttl]
    expires_at: Option<SystemTime>,
}

fn main() {}
