use mnesia::prelude::*;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
#[key]
struct User {
    id: u64,
    name: String,
}

fn main() {}
