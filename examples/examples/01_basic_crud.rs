use mnesia::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(name = "users")]
struct User {
    #[key]
    #[auto_increment]
    id: u64,
    name: String,
    #[index(unique)]
    email: String,
    age: u32,
}

fn main() -> mnesia::Result<()> {
    let db = mnesia::start(Config::default())?;
    User::create_table(TableOptions::new().ram_copies([db.node()]))?;
    let a = User::insert(User {
        id: 0,
        name: "Alice".into(),
        email: "a@x.io".into(),
        age: 30,
    })?;
    println!("{a:?}");
    println!("{:?}", User::get_by(User::EMAIL, "a@x.io")?);
    println!(
        "{:?}",
        User::select(User::AGE.ge(18) & User::NAME.starts_with("A"))?
    );
    Ok(())
}
