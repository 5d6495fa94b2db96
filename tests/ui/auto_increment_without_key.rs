use mnesia::prelude::*;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
struct User {
    #[key]
    id: u64,
    #[auto_increment]
    seq: u64,
}

fn main() {}
