use mnesia::prelude::*;

#[derive(Table, Clone, Debug, Serialize, Deserialize)]
#[table(ttl = "30m")]
struct Session {
    #[key]
    token: String,
}

fn main() {}
