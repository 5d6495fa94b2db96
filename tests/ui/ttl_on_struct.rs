use mnesia::prelude::*;
use std::time::SystemTime;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
#[ttl]
struct Session {
    #[key]
    token: String,
    expires_at: Option<SystemTime>,
}

fn main() {}
