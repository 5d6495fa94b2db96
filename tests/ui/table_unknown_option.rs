use mnesia::prelude::*;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
#[table(nam = "x")]
struct User {
    #[key]
    id: u64,
    name: String,
}

fn main() {}
