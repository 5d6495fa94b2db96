use mnesia::prelude::*;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
#[table(type = "hash")]
struct User {
    #[key]
    id: u64,
    name: String,
}

fn main() {}
