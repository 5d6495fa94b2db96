//! Projections: `query().select((User::NAME, User::AGE))` returns the values of some fields
//! rather than whole records (MnesiaEx's `select` with `return_fields`).

use crate::schema::field::Field;

/// Fields of `T` whose values a query returns in place of whole records: one field, or a
/// tuple of up to six projections (tuples nest).
///
/// ```
/// use mnesia::prelude::*;
/// use mnesia::Projection;
///
/// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// struct User { #[key] id: u64, name: String, age: u32 }
///
/// let ann = User { id: 1, name: "Ann".into(), age: 30 };
/// assert_eq!((User::NAME, User::AGE).project(&ann), ("Ann".to_string(), 30));
/// assert_eq!(User::ID.project(&ann), 1);
/// ```
pub trait Projection<T>: Copy {
    /// The values, as a tuple (or one value, for a single field).
    type Output;

    /// The values `record` holds.
    fn project(&self, record: &T) -> Self::Output;
}

impl<T, V: Clone> Projection<T> for Field<T, V> {
    type Output = V;

    fn project(&self, record: &T) -> V {
        self.get(record).clone()
    }
}

macro_rules! tuple_projection {
    ($($p:ident . $i:tt),+) => {
        impl<T, $($p: Projection<T>),+> Projection<T> for ($($p,)+) {
            type Output = ($($p::Output,)+);

            fn project(&self, record: &T) -> Self::Output {
                ($(self.$i.project(record),)+)
            }
        }
    };
}

tuple_projection!(A.0);
tuple_projection!(A.0, B.1);
tuple_projection!(A.0, B.1, C.2);
tuple_projection!(A.0, B.1, C.2, D.3);
tuple_projection!(A.0, B.1, C.2, D.3, E.4);
tuple_projection!(A.0, B.1, C.2, D.3, E.4, F.5);
