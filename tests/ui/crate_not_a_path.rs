use mnesia::prelude::*;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
#[table(crate = "not a path!")]
struct User {
    #[key]
    id: u64,
}

fn main() {}
