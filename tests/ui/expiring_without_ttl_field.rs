use mnesia::prelude::*;
use std::time::Duration;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
struct User {
    #[key]
    id: u64,
}

fn main() {
    let _ = User::write_with_ttl(User { id: 1 }, Duration::from_secs(1));
}
