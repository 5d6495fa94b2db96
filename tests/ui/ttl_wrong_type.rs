use mnesia::prelude::*;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
struct Session {
    #[key]
    token: String,
    #[ttl]
    expires_at: u64,
}

fn main() {}
