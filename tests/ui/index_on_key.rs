use mnesia::prelude::*;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
struct User {
    #[key]
    #[index]
    id: u64,
    name: String,
}

fn main() {}
