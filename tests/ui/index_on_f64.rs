use mnesia::prelude::*;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
struct Reading {
    #[key]
    id: u64,
    #[index]
    value: f64,
}

fn main() {}
