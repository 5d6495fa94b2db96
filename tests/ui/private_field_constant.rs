mod private {
    use mnesia::prelude::*;

    #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    pub struct Login {
        #[key]
        pub name: String,
        password_hash: String,
    }
}

fn main() {
    // A private field's constant is private too: no reading the field from outside.
    let _ = private::Login::PASSWORD_HASH;
    let _ = private::Login::NAME;
}
