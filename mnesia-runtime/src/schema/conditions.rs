//! Conditions and sort orders built from a field: `User::AGE.gt(30)`, `User::NAME.asc()`.

use std::any::Any;
use std::cmp::Ordering;
use std::sync::Arc;

use crate::schema::field::{Compare, Field, FieldAt, FieldValue};
use crate::schema::field_test::{FieldCmp, FieldTest};
use crate::schema::filter::{By, Cond, Filter, Op, Order, Test};
use crate::schema::record::Record;

impl<T: Record, V: FieldValue> Field<T, V> {
    /// The condition `op` of this field, testing its value with `test` (made by one of the
    /// functions below, of the field's type only: see `field_test.rs`).
    fn cond(
        self,
        op: Op,
        values: Vec<Arc<dyn Any + Send + Sync>>,
        test: impl Fn(&V) -> bool + Send + Sync + 'static,
    ) -> Filter<T> {
        Filter::from_cond(Cond {
            field: self.name,
            position: self.position,
            op,
            values,
            test: Test::Field(FieldTest::new(FieldAt::of(self), test)),
        })
    }

    /// The field equals `value`. Uses the key or an index when there is one.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, name: String, age: u32 }
    /// let f = User::NAME.eq("Ann");
    /// assert!(f.matches(&User { id: 1, name: "Ann".into(), age: 3 }));
    /// ```
    #[allow(clippy::should_implement_trait)]
    pub fn eq(self, value: impl Compare<V>) -> Filter<T> {
        let v = value.into_field_value();
        let shared = Arc::new(v.clone());
        self.cond(Op::Eq, vec![shared], equal_to(v))
    }

    /// The field differs from `value`.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// assert!(User::AGE.ne(3).matches(&User { id: 1, age: 4 }));
    /// ```
    #[allow(clippy::should_implement_trait)]
    pub fn ne(self, value: impl Compare<V>) -> Filter<T> {
        let v = value.into_field_value();
        self.cond(Op::Ne, Vec::new(), not_equal_to(v))
    }

    /// The field equals one of `values`. Uses the key or an index when there is one.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// assert!(User::AGE.is_in([3, 4]).matches(&User { id: 1, age: 4 }));
    /// ```
    pub fn is_in<X: Compare<V>>(self, values: impl IntoIterator<Item = X>) -> Filter<T> {
        let mut vs: Vec<V> = Vec::new();
        let mut shared: Vec<Arc<dyn Any + Send + Sync>> = Vec::new();
        for v in values {
            let v = v.into_field_value();
            shared.push(Arc::new(v.clone()));
            vs.push(v);
        }
        self.cond(Op::In, shared, one_of(vs))
    }

    /// Sorts ascending by this field (for `query().order_by(..)`).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// let _by_age = User::AGE.asc();
    /// ```
    pub fn asc(self) -> Order<T>
    where
        V: PartialOrd,
    {
        Order::new(
            self.name,
            self.position,
            true,
            By::Field(FieldCmp::new(FieldAt::of(self), cmp_partial::<V>)),
        )
    }

    /// Sorts descending by this field (for `query().order_by(..)`).
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// let _oldest_first = User::AGE.desc();
    /// ```
    pub fn desc(self) -> Order<T>
    where
        V: PartialOrd,
    {
        Order::new(
            self.name,
            self.position,
            false,
            By::Field(FieldCmp::new(FieldAt::of(self), cmp_partial::<V>)),
        )
    }
}

/// A total order over a partial one: values that do not compare with themselves (a float's
/// NaN) sort after all others, so sorting never sees an inconsistent comparison.
fn cmp_partial<V: PartialOrd>(a: &V, b: &V) -> Ordering {
    a.partial_cmp(b).unwrap_or_else(|| {
        let odd = |v: &V| v.partial_cmp(v).is_none();
        odd(a).cmp(&odd(b))
    })
}

impl<T: Record, V: FieldValue + PartialOrd> Field<T, V> {
    fn range(self, op: Op, bounds: Vec<V>, test: impl Fn(&V) -> bool + Send + Sync + 'static) -> Filter<T> {
        // (A plain loop: no iterator adapters per record type and condition.)
        let mut shared: Vec<Arc<dyn Any + Send + Sync>> = Vec::with_capacity(bounds.len());
        for v in bounds {
            shared.push(Arc::new(v));
        }
        self.cond(op, shared, test)
    }

    /// The field is greater than `value`.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// assert!(User::AGE.gt(3).matches(&User { id: 1, age: 4 }));
    /// ```
    pub fn gt(self, value: impl Compare<V>) -> Filter<T> {
        let v = value.into_field_value();
        self.range(Op::Gt, vec![v.clone()], above(v))
    }

    /// The field is greater than or equal to `value`.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// assert!(User::AGE.ge(4).matches(&User { id: 1, age: 4 }));
    /// ```
    pub fn ge(self, value: impl Compare<V>) -> Filter<T> {
        let v = value.into_field_value();
        self.range(Op::Ge, vec![v.clone()], at_least(v))
    }

    /// The field is less than `value`.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// assert!(User::AGE.lt(5).matches(&User { id: 1, age: 4 }));
    /// ```
    pub fn lt(self, value: impl Compare<V>) -> Filter<T> {
        let v = value.into_field_value();
        self.range(Op::Lt, vec![v.clone()], below(v))
    }

    /// The field is less than or equal to `value`.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// assert!(User::AGE.le(4).matches(&User { id: 1, age: 4 }));
    /// ```
    pub fn le(self, value: impl Compare<V>) -> Filter<T> {
        let v = value.into_field_value();
        self.range(Op::Le, vec![v.clone()], at_most(v))
    }

    /// The field lies between `low` and `high`, both included.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, age: u32 }
    /// assert!(User::AGE.between(20, 40).matches(&User { id: 1, age: 40 }));
    /// ```
    pub fn between(self, low: impl Compare<V>, high: impl Compare<V>) -> Filter<T> {
        let (lo, hi) = (low.into_field_value(), high.into_field_value());
        self.range(Op::Between, vec![lo.clone(), hi.clone()], within(lo, hi))
    }
}

impl<T: Record> Field<T, String> {
    /// The string field starts with `prefix`.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, name: String }
    /// assert!(User::NAME.starts_with("An").matches(&User { id: 1, name: "Ann".into() }));
    /// ```
    pub fn starts_with(self, prefix: impl Into<String>) -> Filter<T> {
        let p = prefix.into();
        self.cond(Op::StartsWith, Vec::new(), starting_with(p))
    }

    /// The string field contains `needle`.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, name: String }
    /// assert!(User::NAME.contains("nn").matches(&User { id: 1, name: "Ann".into() }));
    /// ```
    pub fn contains(self, needle: impl Into<String>) -> Filter<T> {
        let n = needle.into();
        self.cond(Op::Contains, Vec::new(), containing(n))
    }
}

impl<T: Record, X: FieldValue> Field<T, Option<X>> {
    /// The optional field holds a value.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, nick: Option<String> }
    /// assert!(User::NICK.is_some().matches(&User { id: 1, nick: Some("a".into()) }));
    /// ```
    pub fn is_some(self) -> Filter<T> {
        self.cond(Op::IsSome, Vec::new(), Option::<X>::is_some)
    }

    /// The optional field is empty.
    ///
    /// ```
    /// # use mnesia::prelude::*;
    /// # #[derive(Table, Clone, Debug, Serialize, Deserialize)]
    /// # struct User { #[key] id: u64, nick: Option<String> }
    /// assert!(User::NICK.is_none().matches(&User { id: 1, nick: None }));
    /// ```
    pub fn is_none(self) -> Filter<T> {
        self.cond(Op::IsNone, Vec::new(), Option::<X>::is_none)
    }
}

// The tests of the conditions above, each made in a function of the field's type only: a
// closure made in a method of `Field<T, V>` would be one type per record type, and with it
// its `Arc`, its test and their debug information (issue 16).

fn equal_to<V: FieldValue>(v: V) -> impl Fn(&V) -> bool + Send + Sync + 'static {
    move |x| *x == v
}

fn not_equal_to<V: FieldValue>(v: V) -> impl Fn(&V) -> bool + Send + Sync + 'static {
    move |x| *x != v
}

fn one_of<V: FieldValue>(vs: Vec<V>) -> impl Fn(&V) -> bool + Send + Sync + 'static {
    move |x| vs.contains(x)
}

fn above<V: FieldValue + PartialOrd>(v: V) -> impl Fn(&V) -> bool + Send + Sync + 'static {
    move |x| *x > v
}

fn at_least<V: FieldValue + PartialOrd>(v: V) -> impl Fn(&V) -> bool + Send + Sync + 'static {
    move |x| *x >= v
}

fn below<V: FieldValue + PartialOrd>(v: V) -> impl Fn(&V) -> bool + Send + Sync + 'static {
    move |x| *x < v
}

fn at_most<V: FieldValue + PartialOrd>(v: V) -> impl Fn(&V) -> bool + Send + Sync + 'static {
    move |x| *x <= v
}

fn within<V: FieldValue + PartialOrd>(lo: V, hi: V) -> impl Fn(&V) -> bool + Send + Sync + 'static {
    move |x| *x >= lo && *x <= hi
}

fn starting_with(prefix: String) -> impl Fn(&String) -> bool + Send + Sync + 'static {
    move |x| x.starts_with(prefix.as_str())
}

fn containing(needle: String) -> impl Fn(&String) -> bool + Send + Sync + 'static {
    move |x| x.contains(needle.as_str())
}
