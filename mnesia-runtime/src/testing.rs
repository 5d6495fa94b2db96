//! A record type with a hand-written `Record` impl, for the unit tests of this crate (the
//! derive emits `::mnesia` paths, which this crate cannot name).

use serde::{Deserialize, Serialize};

use crate::schema::field::Field;
use crate::schema::index_spec::IndexSpec;
use crate::schema::record::{FieldInfo, Record, TableType};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Rec {
    pub(crate) id: u32,
    pub(crate) tag: String,
    pub(crate) n: i64,
}

impl Rec {
    pub(crate) const ID: Field<Rec, u32> = Field::new("id", 0, |r: &Rec| &r.id);
    pub(crate) const TAG: Field<Rec, String> = Field::new("tag", 1, |r: &Rec| &r.tag);
    pub(crate) const N: Field<Rec, i64> = Field::new("n", 2, |r: &Rec| &r.n);
}

// Registered as the derive registers its types (for tables created through the order).
inventory::submit! { crate::features::kinds::TableKind::of::<Rec>() }

pub(crate) fn rec(id: u32, tag: &str, n: i64) -> Rec {
    Rec { id, tag: tag.into(), n }
}

impl Record for Rec {
    type Key = u32;
    const NAME: &'static str = "rec";
    const TYPE: TableType = TableType::Set;
    const FIELDS: &'static [FieldInfo] = &[
        FieldInfo { name: "id", ty: "u32" },
        FieldInfo { name: "tag", ty: "String" },
        FieldInfo { name: "n", ty: "i64" },
    ];
    const KEY_POSITION: usize = 0;
    const AUTO_INCREMENT: bool = false;

    fn key(&self) -> &u32 {
        &self.id
    }

    fn indexes() -> Vec<IndexSpec<Self>> {
        vec![Rec::TAG.index_spec(false)]
    }

    fn index_spec_for(field: &str, unique: bool) -> Option<IndexSpec<Self>> {
        match field {
            "tag" => Some(Rec::TAG.index_spec(unique)),
            "n" => Some(Rec::N.index_spec(unique)),
            _ => None,
        }
    }
}

/// A second record type with `Rec`'s key type: rows of either type are one Rust type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Other {
    pub(crate) id: u32,
    pub(crate) n: i64,
}

impl Record for Other {
    type Key = u32;
    const NAME: &'static str = "other";
    const TYPE: TableType = TableType::Set;
    const FIELDS: &'static [FieldInfo] =
        &[FieldInfo { name: "id", ty: "u32" }, FieldInfo { name: "n", ty: "i64" }];
    const KEY_POSITION: usize = 0;
    const AUTO_INCREMENT: bool = false;

    fn key(&self) -> &u32 {
        &self.id
    }

    fn indexes() -> Vec<IndexSpec<Self>> {
        Vec::new()
    }
}
