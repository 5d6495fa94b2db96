//! A condition's test and a sort order's comparison of one field, over the address of a
//! record ([`StoredRecord::base`]) rather than a typed reference: made from a typed field
//! with a function of the field's value, they are compiled once per field type and
//! comparison, whatever the record type (issue 16), and apply alike to a record and to a
//! row holding one.
//!
//! Each keeps the record type it reads; a record of another type never reaches the field's
//! accessor (it fails the test, or compares equal).

use std::cmp::Ordering;
use std::sync::Arc;

use crate::schema::field::FieldAt;
use crate::schema::stored::{RecordKind, StoredRecord};

/// A test of one field (see the module's documentation).
#[derive(Clone)]
pub(crate) struct FieldTest {
    kind: RecordKind,
    /// Called only on the address of a record of `kind` (see `passes`).
    test: Arc<dyn Fn(*const u8) -> bool + Send + Sync>,
}

impl FieldTest {
    /// `test` of the field `at` reads.
    pub(crate) fn new<V: 'static>(
        at: FieldAt<V>,
        test: impl Fn(&V) -> bool + Send + Sync + 'static,
    ) -> FieldTest {
        FieldTest {
            kind: at.kind(),
            test: Arc::new(move |base| {
                // SAFETY: `passes` calls this only on the address of a record of the type
                // the accessor was made for (`kind`), which it borrows meanwhile.
                #[allow(unsafe_code)]
                let value = unsafe { at.get(base) };
                test(value)
            }),
        }
    }

    /// Whether `record` passes: it is of the test's record type and its field does.
    #[inline]
    pub(crate) fn passes<R: StoredRecord>(&self, record: &R) -> bool {
        record.is_of(&self.kind) && (self.test)(record.base())
    }
}

/// A comparison of one field (see the module's documentation).
#[derive(Clone)]
pub(crate) struct FieldCmp {
    kind: RecordKind,
    /// Called only on the addresses of two records of `kind` (see `compare`).
    cmp: Arc<dyn Fn(*const u8, *const u8) -> Ordering + Send + Sync>,
}

impl FieldCmp {
    /// `cmp` of the field `at` reads.
    pub(crate) fn new<V: 'static>(
        at: FieldAt<V>,
        cmp: impl Fn(&V, &V) -> Ordering + Send + Sync + 'static,
    ) -> FieldCmp {
        FieldCmp {
            kind: at.kind(),
            cmp: Arc::new(move |a, b| {
                // SAFETY: `compare` calls this only on the addresses of two records of the
                // type the accessor was made for (`kind`), which it borrows meanwhile.
                #[allow(unsafe_code)]
                let (a, b) = unsafe { (at.get(a), at.get(b)) };
                cmp(a, b)
            }),
        }
    }

    /// How `a` and `b` compare by the field; equal when either is of another type.
    #[inline]
    pub(crate) fn compare<R: StoredRecord>(&self, a: &R, b: &R) -> Ordering {
        if !a.is_of(&self.kind) || !b.is_of(&self.kind) {
            return Ordering::Equal;
        }
        (self.cmp)(a.base(), b.base())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::row::Row;
    use crate::testing::{Other, Rec, rec};

    #[test]
    fn tests_and_compares_records_and_rows_of_its_type() {
        let n_above_2 = FieldTest::new(FieldAt::of(Rec::N), |n: &i64| *n > 2);
        assert!(n_above_2.passes(&rec(1, "a", 3)));
        assert!(!n_above_2.passes(&rec(1, "a", 2)));
        assert!(n_above_2.passes(&Row::new(rec(1, "a", 3))));
        let by_tag = FieldCmp::new(FieldAt::of(Rec::TAG), |a: &String, b: &String| a.cmp(b));
        let (x, y) = (rec(1, "x", 0), rec(2, "y", 0));
        assert_eq!(by_tag.compare(&x, &y), Ordering::Less);
        assert_eq!(by_tag.compare(&Row::new(y), &Row::new(x)), Ordering::Greater);
    }

    #[test]
    fn a_row_of_another_type_fails_and_compares_equal() {
        let n_above_2 = FieldTest::new(FieldAt::of(Rec::N), |n: &i64| *n > 2);
        let other: Row<u32> = Row::new(Other { id: 1, n: 9 });
        assert!(!n_above_2.passes(&other));
        let by_n = FieldCmp::new(FieldAt::of(Rec::N), |a: &i64, b: &i64| a.cmp(b));
        assert_eq!(by_n.compare(&other, &Row::new(rec(1, "a", 3))), Ordering::Equal);
    }
}
