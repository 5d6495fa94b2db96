use mnesia::prelude::*;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
struct User {
    #[key]
    id: u64,
    name: String,
    age: u32,
}

fn main() {
    let _ = User::AGEE.eq(3);
}
