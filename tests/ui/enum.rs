use mnesia::prelude::*;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
enum User {
    Guest,
    Member { id: u64 },
}

fn main() {}
