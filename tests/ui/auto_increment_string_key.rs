use mnesia::prelude::*;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
struct User {
    #[key]
    #[auto_increment]
    id: String,
    name: String,
}

fn main() {}
