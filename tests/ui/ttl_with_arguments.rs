use mnesia::prelude::*;
use std::time::SystemTime;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
struct Session {
    #[key]
    token: String,
    #[ttl = "30m"]
    expires_at: Option<SystemTime>,
}

fn main() {}
