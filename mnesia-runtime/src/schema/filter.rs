//! Conditions on records: built from typed fields, combined with `&`, `|` and `!`.

use std::any::Any;
use std::cmp::Ordering;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{BitAnd, BitOr, Not};
use std::sync::Arc;

use crate::schema::field_test::{FieldCmp, FieldTest};
use crate::schema::record::Record;
use crate::schema::row::Row;
use crate::schema::stored::StoredRecord;

/// The comparison a condition makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Between,
    In,
    StartsWith,
    Contains,
    IsSome,
    IsNone,
}

/// A test of the whole value a filter is matched on (a row, for the engine's filters),
/// given as `&dyn Any`: the test downcasts it to the type it was made for, and a value of
/// another type passes nothing.
pub(crate) type RecordTest = Arc<dyn Fn(&dyn Any) -> bool + Send + Sync>;

/// What a condition tests.
#[derive(Clone)]
pub(crate) enum Test {
    /// One field, made from a typed field (see `field_test.rs`).
    Field(FieldTest),
    /// The whole value: the engine's own conditions on rows (a key bound, browse's text
    /// search).
    Record(RecordTest),
}

/// One comparison of one field.
#[derive(Clone)]
pub(crate) struct Cond {
    pub(crate) field: &'static str,
    pub(crate) position: usize,
    pub(crate) op: Op,
    /// The compared values, typed as the field's type, for the planner (key and index use).
    pub(crate) values: Vec<Arc<dyn Any + Send + Sync>>,
    pub(crate) test: Test,
}

impl Cond {
    fn passes<R: StoredRecord>(&self, rec: &R) -> bool {
        match &self.test {
            Test::Field(t) => t.passes(rec),
            Test::Record(t) => t(rec),
        }
    }
}

/// Conditions combined, whatever the record type they test: a record of another type
/// passes no field's test.
#[derive(Clone)]
pub(crate) enum Node {
    All,
    Cond(Cond),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

impl Node {
    fn matches<R: StoredRecord>(&self, rec: &R) -> bool {
        match self {
            Node::All => true,
            Node::Cond(c) => c.passes(rec),
            Node::And(v) => v.iter().all(|n| n.matches(rec)),
            Node::Or(v) => v.iter().any(|n| n.matches(rec)),
            Node::Not(n) => !n.matches(rec),
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, v: &[Node], sep: &str| -> fmt::Result {
            f.write_str("(")?;
            for (i, n) in v.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                n.describe(f)?;
            }
            f.write_str(")")
        };
        match self {
            Node::All => f.write_str("true"),
            Node::Cond(c) => write!(f, "{} {:?}", c.field, c.op),
            Node::And(v) => join(f, v, " & "),
            Node::Or(v) => join(f, v, " | "),
            Node::Not(n) => {
                f.write_str("!")?;
                n.describe(f)
            }
        }
    }
}

/// A condition on records of `T`: a field comparison, or several combined with `&` (and),
/// `|` (or) and `!` (not). A `Vec` or array of filters means all of them.
///
/// ```
/// use mnesia::prelude::*;
///
/// #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// struct User { #[key] id: u64, name: String, age: u32 }
///
/// let adult_a = User::AGE.ge(18) & User::NAME.starts_with("A");
/// let teen_or_senior = User::AGE.between(13, 19) | User::AGE.ge(65);
/// let ann = User { id: 1, name: "Ann".into(), age: 30 };
/// assert!(adult_a.matches(&ann));
/// assert!(!teen_or_senior.matches(&ann));
/// assert!((!teen_or_senior).matches(&ann));
/// ```
pub struct Filter<T> {
    pub(crate) node: Node,
    _t: PhantomData<fn(&T)>,
}

impl<T> Clone for Filter<T> {
    fn clone(&self) -> Self {
        Filter::of(self.node.clone())
    }
}

impl<T> fmt::Debug for Filter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Filter ")?;
        self.node.describe(f)
    }
}

impl<T> Filter<T> {
    /// A filter that every record passes.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64 }
    /// assert!(Filter::<User>::all().matches(&User { id: 1 }));
    /// ```
    pub fn all() -> Self {
        Filter::of(Node::All)
    }

    fn of(node: Node) -> Self {
        Filter { node, _t: PhantomData }
    }

    pub(crate) fn from_cond(c: Cond) -> Self {
        Filter::of(Node::Cond(c))
    }

    /// Whether `record` passes this filter.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// assert!(User::AGE.lt(10).matches(&User { id: 1, age: 9 }));
    /// ```
    pub fn matches(&self, record: &T) -> bool
    where
        T: StoredRecord,
    {
        self.node.matches(record)
    }

    /// The top-level conjuncts: the conditions every match must pass.
    pub(crate) fn conjuncts(&self) -> Vec<&Cond> {
        fn walk<'a>(n: &'a Node, out: &mut Vec<&'a Cond>) {
            match n {
                Node::Cond(c) => out.push(c),
                Node::And(v) => v.iter().for_each(|n| walk(n, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.node, &mut out);
        out
    }
}

impl<T: Record> Filter<T> {
    /// The same filter, on the rows of `T`'s table.
    pub(crate) fn for_rows(&self) -> Filter<Row<T::Key>> {
        Filter::of(self.node.clone())
    }
}

impl<T: Record> Order<T> {
    /// The same order, on the rows of `T`'s table.
    pub(crate) fn for_rows(&self) -> Order<Row<T::Key>> {
        Order::new(self.field, self.position, self.ascending, self.by.clone())
    }
}

fn and(a: Node, b: Node) -> Node {
    match (a, b) {
        (Node::All, x) | (x, Node::All) => x,
        (Node::And(mut v), Node::And(w)) => {
            v.extend(w);
            Node::And(v)
        }
        (Node::And(mut v), x) => {
            v.push(x);
            Node::And(v)
        }
        (x, Node::And(mut v)) => {
            v.insert(0, x);
            Node::And(v)
        }
        (x, y) => Node::And(vec![x, y]),
    }
}

impl<T> BitAnd for Filter<T> {
    type Output = Filter<T>;
    fn bitand(self, rhs: Filter<T>) -> Filter<T> {
        Filter::of(and(self.node, rhs.node))
    }
}

impl<T> BitOr for Filter<T> {
    type Output = Filter<T>;
    fn bitor(self, rhs: Filter<T>) -> Filter<T> {
        let node = match (self.node, rhs.node) {
            (Node::All, _) | (_, Node::All) => Node::All,
            (Node::Or(mut v), Node::Or(w)) => {
                v.extend(w);
                Node::Or(v)
            }
            (Node::Or(mut v), x) => {
                v.push(x);
                Node::Or(v)
            }
            (x, y) => Node::Or(vec![x, y]),
        };
        Filter::of(node)
    }
}

impl<T> Not for Filter<T> {
    type Output = Filter<T>;
    fn not(self) -> Filter<T> {
        let node = match self.node {
            Node::Not(inner) => *inner,
            n => Node::Not(Box::new(n)),
        };
        Filter::of(node)
    }
}

impl<T> From<Vec<Filter<T>>> for Filter<T> {
    fn from(v: Vec<Filter<T>>) -> Self {
        v.into_iter().fold(Filter::all(), |acc, f| acc & f)
    }
}

impl<T, const N: usize> From<[Filter<T>; N]> for Filter<T> {
    fn from(v: [Filter<T>; N]) -> Self {
        v.into_iter().fold(Filter::all(), |acc, f| acc & f)
    }
}

/// What an order compares records by.
#[derive(Clone)]
pub(crate) enum By {
    /// One field, made from a typed field (see `field_test.rs`).
    Field(FieldCmp),
    /// The key (the engine's own orders on rows).
    Key,
}

/// A sort order on one field, made by `Field::asc()` or `Field::desc()`.
///
/// ```
/// # use mnesia::prelude::*;
/// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
/// # struct User { #[key] id: u64, age: u32 }
/// let order: Order<User> = User::AGE.desc();
/// assert_eq!(order.field(), "age");
/// ```
pub struct Order<T> {
    field: &'static str,
    position: usize,
    ascending: bool,
    by: By,
    _t: PhantomData<fn(&T)>,
}

impl<T> Clone for Order<T> {
    fn clone(&self) -> Self {
        Order::new(self.field, self.position, self.ascending, self.by.clone())
    }
}

impl<T> fmt::Debug for Order<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Order").field("field", &self.field).finish()
    }
}

impl<T: crate::schema::record::Record, V: crate::schema::field::FieldValue + PartialOrd>
    From<crate::schema::field::Field<T, V>> for Order<T>
{
    /// A field alone sorts ascending: `order_by(User::AGE)` is `order_by(User::AGE.asc())`.
    fn from(field: crate::schema::field::Field<T, V>) -> Self {
        field.asc()
    }
}

impl<T> Order<T> {
    pub(crate) fn new(field: &'static str, position: usize, ascending: bool, by: By) -> Self {
        Order { field, position, ascending, by, _t: PhantomData }
    }

    /// Whether this order is the key's, ascending: an `ordered_set`'s own order.
    pub(crate) fn is_key_ascending(&self, key_position: usize) -> bool {
        self.ascending && self.position == key_position
    }

    /// Whether this order is the key's, descending.
    pub(crate) fn is_key_descending(&self, key_position: usize) -> bool {
        !self.ascending && self.position == key_position
    }

    /// The field this order sorts by.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// assert_eq!(User::AGE.asc().field(), "age");
    /// ```
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Compares two records in this order.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # use std::cmp::Ordering;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// let (a, b) = (User { id: 1, age: 1 }, User { id: 2, age: 2 });
    /// assert_eq!(User::AGE.desc().compare(&a, &b), Ordering::Greater);
    /// ```
    pub fn compare(&self, a: &T, b: &T) -> Ordering
    where
        T: StoredRecord,
    {
        let ascending = match &self.by {
            By::Field(cmp) => cmp.compare(a, b),
            By::Key => a.key().cmp(b.key()),
        };
        if self.ascending { ascending } else { ascending.reverse() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Rec, rec};

    #[test]
    fn combinators_follow_boolean_logic() {
        let a = rec(1, "x", 5);
        assert!((Rec::TAG.eq("x") & Rec::N.gt(4)).matches(&a));
        assert!(!(Rec::TAG.eq("x") & Rec::N.gt(5)).matches(&a));
        assert!((Rec::TAG.eq("y") | Rec::N.le(5)).matches(&a));
        assert!(!(!Rec::TAG.eq("x")).matches(&a));
        assert!((!!Rec::TAG.eq("x")).matches(&a));
        assert!(Filter::from(vec![Rec::N.ge(5), Rec::N.le(5)]).matches(&a));
        assert!(!Filter::from([Rec::N.ge(5), Rec::N.lt(5)]).matches(&a));
        assert!(Filter::from(Vec::<Filter<Rec>>::new()).matches(&a), "no condition: everything passes");
        assert!((Filter::all() | Rec::N.eq(0)).matches(&a));
    }

    #[test]
    fn conjuncts_are_the_top_level_and() {
        let f = Rec::TAG.eq("x") & (Rec::N.gt(1) & Rec::ID.eq(2));
        let names: Vec<&str> = f.conjuncts().iter().map(|c| c.field).collect();
        assert_eq!(names, ["tag", "n", "id"]);
        assert!((Rec::TAG.eq("x") | Rec::N.gt(1)).conjuncts().is_empty());
        assert_eq!(format!("{:?}", Rec::TAG.eq("x") & !Rec::N.gt(1)), "Filter (tag Eq & !n Gt)");
    }

    #[test]
    fn orders_compare_by_field() {
        let (a, b) = (rec(1, "b", 1), rec(2, "a", 2));
        assert_eq!(Rec::TAG.asc().compare(&a, &b), Ordering::Greater);
        assert_eq!(Rec::TAG.desc().compare(&a, &b), Ordering::Less);
        assert_eq!(Rec::N.asc().compare(&a, &a), Ordering::Equal);
    }
}
