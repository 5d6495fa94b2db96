use mnesia::prelude::*;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
struct User {
    #[key]
    id: u64,
    #[table(name = "users")]
    name: String,
}

fn main() {}
