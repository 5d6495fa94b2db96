//! Conditions on records: built from typed fields, combined with `&`, `|` and `!`.

use std::any::Any;
use std::cmp::Ordering;
use std::fmt;
use std::ops::{BitAnd, BitOr, Not};
use std::sync::Arc;

use crate::schema::record::Record;
use crate::schema::row::Row;

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

/// One comparison of one field.
pub(crate) struct Cond<T> {
    pub(crate) field: &'static str,
    pub(crate) position: usize,
    pub(crate) op: Op,
    /// The compared values, typed as the field's type, for the planner (key and index use).
    pub(crate) values: Vec<Arc<dyn Any + Send + Sync>>,
    pub(crate) test: Arc<dyn Fn(&T) -> bool + Send + Sync>,
}

impl<T> Clone for Cond<T> {
    fn clone(&self) -> Self {
        Cond {
            field: self.field,
            position: self.position,
            op: self.op,
            values: self.values.clone(),
            test: Arc::clone(&self.test),
        }
    }
}

pub(crate) enum Node<T> {
    All,
    Cond(Cond<T>),
    And(Vec<Node<T>>),
    Or(Vec<Node<T>>),
    Not(Box<Node<T>>),
}

impl<T> Clone for Node<T> {
    fn clone(&self) -> Self {
        match self {
            Node::All => Node::All,
            Node::Cond(c) => Node::Cond(c.clone()),
            Node::And(v) => Node::And(v.clone()),
            Node::Or(v) => Node::Or(v.clone()),
            Node::Not(n) => Node::Not(n.clone()),
        }
    }
}

impl<T> Node<T> {
    fn matches(&self, rec: &T) -> bool {
        match self {
            Node::All => true,
            Node::Cond(c) => (c.test)(rec),
            Node::And(v) => v.iter().all(|n| n.matches(rec)),
            Node::Or(v) => v.iter().any(|n| n.matches(rec)),
            Node::Not(n) => !n.matches(rec),
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, v: &[Node<T>], sep: &str| -> fmt::Result {
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
    pub(crate) node: Node<T>,
}

impl<T> Clone for Filter<T> {
    fn clone(&self) -> Self {
        Filter { node: self.node.clone() }
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
        Filter { node: Node::All }
    }

    pub(crate) fn from_cond(c: Cond<T>) -> Self {
        Filter { node: Node::Cond(c) }
    }

    /// Whether `record` passes this filter.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// assert!(User::AGE.lt(10).matches(&User { id: 1, age: 9 }));
    /// ```
    pub fn matches(&self, record: &T) -> bool {
        self.node.matches(record)
    }

    /// The top-level conjuncts: the conditions every match must pass.
    pub(crate) fn conjuncts(&self) -> Vec<&Cond<T>> {
        fn walk<'a, T>(n: &'a Node<T>, out: &mut Vec<&'a Cond<T>>) {
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

impl<T: Record> Node<T> {
    /// The same condition on rows holding `T`s.
    fn for_rows(&self) -> Node<Row<T::Key>> {
        match self {
            Node::All => Node::All,
            Node::Cond(c) => {
                let test = Arc::clone(&c.test);
                Node::Cond(Cond {
                    field: c.field,
                    position: c.position,
                    op: c.op,
                    values: c.values.clone(),
                    test: Arc::new(move |r: &Row<T::Key>| r.typed::<T>().is_some_and(|x| test(x))),
                })
            }
            Node::And(v) => Node::And(Node::all_for_rows(v)),
            Node::Or(v) => Node::Or(Node::all_for_rows(v)),
            Node::Not(n) => Node::Not(Box::new(n.for_rows())),
        }
    }

    /// [`Node::for_rows`] of each node (a plain loop: no iterator adapters per record type).
    fn all_for_rows(nodes: &[Node<T>]) -> Vec<Node<Row<T::Key>>> {
        let mut out = Vec::with_capacity(nodes.len());
        for n in nodes {
            out.push(n.for_rows());
        }
        out
    }
}

impl<T: Record> Filter<T> {
    /// The same filter, on the rows of `T`'s table.
    pub(crate) fn for_rows(&self) -> Filter<Row<T::Key>> {
        Filter { node: self.node.for_rows() }
    }
}

impl<T: Record> Order<T> {
    /// The same order, on the rows of `T`'s table.
    pub(crate) fn for_rows(&self) -> Order<Row<T::Key>> {
        let cmp = Arc::clone(&self.cmp);
        Order {
            field: self.field,
            position: self.position,
            ascending: self.ascending,
            cmp: Arc::new(move |a: &Row<T::Key>, b: &Row<T::Key>| match (a.typed::<T>(), b.typed::<T>()) {
                (Some(a), Some(b)) => cmp(a, b),
                _ => Ordering::Equal,
            }),
        }
    }
}

fn and<T>(a: Node<T>, b: Node<T>) -> Node<T> {
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
        Filter { node: and(self.node, rhs.node) }
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
        Filter { node }
    }
}

impl<T> Not for Filter<T> {
    type Output = Filter<T>;
    fn not(self) -> Filter<T> {
        let node = match self.node {
            Node::Not(inner) => *inner,
            n => Node::Not(Box::new(n)),
        };
        Filter { node }
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

/// Compares two records by one field.
pub(crate) type Comparator<T> = Arc<dyn Fn(&T, &T) -> Ordering + Send + Sync>;

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
    cmp: Comparator<T>,
}

impl<T> Clone for Order<T> {
    fn clone(&self) -> Self {
        Order {
            field: self.field,
            position: self.position,
            ascending: self.ascending,
            cmp: Arc::clone(&self.cmp),
        }
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
    pub(crate) fn new(field: &'static str, position: usize, ascending: bool, cmp: Comparator<T>) -> Self {
        Order { field, position, ascending, cmp }
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
    pub fn compare(&self, a: &T, b: &T) -> Ordering {
        (self.cmp)(a, b)
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
