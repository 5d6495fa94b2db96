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
use crate::schema::row::StoredType;
use crate::schema::stored::StoredRecord;

/// A test of one field (see the module's documentation).
#[derive(Clone)]
pub(crate) struct FieldTest {
    kind: StoredType,
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
    kind: StoredType,
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

    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    struct Wide {
        id: u32,
        pad: [u64; 10],
    }

    impl Wide {
        const ID: crate::schema::field::Field<Wide, u32> =
            crate::schema::field::Field::new("id", 0, |w: &Wide| &w.id);
    }

    impl crate::schema::record::Record for Wide {
        type Key = u32;
        const NAME: &'static str = "wide";
        const TYPE: crate::schema::record::TableType = crate::schema::record::TableType::Set;
        const FIELDS: &'static [crate::schema::record::FieldInfo] = &[];
        const KEY_POSITION: usize = 0;
        const AUTO_INCREMENT: bool = false;

        fn key(&self) -> &u32 {
            &self.id
        }

        fn indexes() -> Vec<crate::schema::index_spec::IndexSpec<Self>> {
            Vec::new()
        }
    }

    #[test]
    fn rows_in_a_slot_and_boxed_rows_are_read_at_their_record() {
        use crate::schema::row::MAX_VERSION;
        use crate::schema::stored::Versioned;
        let n_above_2 = FieldTest::new(FieldAt::of(Rec::N), |n: &i64| *n > 2);
        let in_slot = Row::with_version(MAX_VERSION, Row::new(rec(1, "a", 3)));
        assert!(n_above_2.passes(&in_slot), "the version is not part of the tag");
        let id_is_7 = FieldTest::new(FieldAt::of(Wide::ID), |id: &u32| *id == 7);
        let wide = |id| Row::new(Wide { id, pad: [id.into(); 10] });
        assert!(id_is_7.passes(&wide(7)) && !id_is_7.passes(&wide(8)));
        assert!(id_is_7.passes(&Row::with_version(5, wide(7))));
        assert!(!n_above_2.passes(&wide(7)), "a boxed row of another type");
        let by_id = FieldCmp::new(FieldAt::of(Wide::ID), |a: &u32, b: &u32| a.cmp(b));
        assert_eq!(by_id.compare(&wide(9), &wide(3)), Ordering::Greater);
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
