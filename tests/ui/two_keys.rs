use mnesia::prelude::*;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
struct User {
    #[key]
    id: u64,
    #[key]
    email: String,
}

fn main() {}
