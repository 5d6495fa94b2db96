use mnesia::prelude::*;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
struct User<T> {
    #[key]
    id: u64,
    data: T,
}

fn main() {}
