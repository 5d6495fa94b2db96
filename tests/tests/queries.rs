//! Typed conditions, the planner, and the query builder.

use mnesia::prelude::*;

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Person {
    #[key]
    id: u32,
    name: String,
    #[index]
    city: String,
    #[index(unique)]
    email: String,
    age: u32,
    nick: Option<String>,
}

#[derive(Table, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[table(type = "ordered_set")]
struct Sorted {
    #[key]
    id: i64,
    score: f64,
}

fn person(id: u32) -> Person {
    Person {
        id,
        name: format!("{}{id}", if id.is_multiple_of(2) { "Ann" } else { "Bob" }),
        city: ["Oslo", "Rome", "Lima"][id as usize % 3].into(),
        email: format!("p{id}@x.io"),
        age: id * 3 % 90,
        nick: id.is_multiple_of(4).then(|| format!("n{id}")),
    }
}

fn ids(v: Vec<Person>) -> Vec<u32> {
    let mut ids: Vec<u32> = v.into_iter().map(|p| p.id).collect();
    ids.sort();
    ids
}

fn model(pred: impl Fn(&Person) -> bool) -> Vec<u32> {
    (0..200).map(person).filter(|p| pred(p)).map(|p| p.id).collect()
}

fn with_people(f: impl FnOnce() -> mnesia::Result<()>) {
    let db = Database::in_memory().expect("db");
    db.scope(|| {
        Person::create_table(TableOptions::new()).expect("table");
        Person::batch_write((0..200).map(person)).expect("load");
        f().expect("body");
    });
}

#[test]
fn every_operator_matches_the_model() {
    with_people(|| {
        assert_eq!(ids(Person::select(Person::AGE.eq(30))?), model(|p| p.age == 30));
        assert_eq!(ids(Person::select(Person::AGE.ne(30))?), model(|p| p.age != 30));
        assert_eq!(ids(Person::select(Person::AGE.gt(80))?), model(|p| p.age > 80));
        assert_eq!(ids(Person::select(Person::AGE.ge(80))?), model(|p| p.age >= 80));
        assert_eq!(ids(Person::select(Person::AGE.lt(5))?), model(|p| p.age < 5));
        assert_eq!(ids(Person::select(Person::AGE.le(5))?), model(|p| p.age <= 5));
        assert_eq!(ids(Person::select(Person::AGE.between(10, 20))?), model(|p| (10..=20).contains(&p.age)));
        assert_eq!(ids(Person::select(Person::AGE.is_in([1, 2, 3]))?), model(|p| [1, 2, 3].contains(&p.age)));
        assert_eq!(
            ids(Person::select(Person::NAME.starts_with("Ann1"))?),
            model(|p| p.name.starts_with("Ann1"))
        );
        assert_eq!(ids(Person::select(Person::NAME.contains("9"))?), model(|p| p.name.contains('9')));
        assert_eq!(ids(Person::select(Person::NICK.is_some())?), model(|p| p.nick.is_some()));
        assert_eq!(ids(Person::select(Person::NICK.is_none())?), model(|p| p.nick.is_none()));
        assert_eq!(ids(Person::select(Person::NICK.eq(Some("n8".to_string())))?), vec![8]);
        let combined = (Person::CITY.eq("Oslo") & Person::AGE.lt(30)) | !Person::NAME.starts_with("A");
        assert_eq!(
            ids(Person::select(combined)?),
            model(|p| (p.city == "Oslo" && p.age < 30) || !p.name.starts_with('A'))
        );
        assert_eq!(
            ids(Person::select(vec![Person::CITY.eq("Rome"), Person::AGE.gt(50)])?),
            model(|p| p.city == "Rome" && p.age > 50)
        );
        assert_eq!(ids(Person::select(Filter::all())?), model(|_| true));
        Ok(())
    });
}

#[test]
fn the_planner_uses_keys_and_indexes() {
    with_people(|| {
        let explain = |f: Filter<Person>| Person::query().filter(f).explain();
        assert_eq!(explain(Person::ID.eq(3))?, Plan::KeyLookup { keys: 1 });
        assert_eq!(explain(Person::ID.is_in([3, 4, 3]))?, Plan::KeyLookup { keys: 2 });
        assert_eq!(explain(Person::ID.eq(3) & Person::CITY.eq("Oslo"))?, Plan::KeyLookup { keys: 1 });
        assert_eq!(explain(Person::CITY.eq("Oslo"))?, Plan::IndexLookup { field: "city", values: 1 });
        assert_eq!(
            explain(Person::CITY.is_in(["Oslo", "Lima"]))?,
            Plan::IndexLookup { field: "city", values: 2 }
        );
        assert_eq!(
            explain(Person::CITY.eq("Oslo") & Person::EMAIL.eq("p3@x.io"))?,
            Plan::IndexLookup { field: "email", values: 1 },
            "a unique index is preferred"
        );
        assert_eq!(explain(Person::CITY.eq("Oslo") | Person::AGE.eq(3))?, Plan::FullScan);
        assert_eq!(explain(Person::ID.gt(3))?, Plan::FullScan, "no key ranges on a set");
        assert_eq!(explain(Person::AGE.gt(3))?, Plan::FullScan);
        // The plan is an access path only: results still pass the whole filter.
        assert_eq!(ids(Person::select(Person::ID.eq(4) & Person::CITY.eq("Oslo"))?), Vec::<u32>::new());
        assert_eq!(ids(Person::select(Person::ID.eq(3) & Person::CITY.eq("Oslo"))?), vec![3]);
        assert_eq!(ids(Person::select(Person::ID.is_in([0, 3, 300]))?), vec![0, 3]);
        assert_eq!(
            ids(Person::select(Person::CITY.eq("Oslo") & Person::AGE.lt(20))?),
            model(|p| p.city == "Oslo" && p.age < 20)
        );
        Ok(())
    });
}

#[test]
fn order_limit_offset_first_count_keys() {
    with_people(|| {
        let q = Person::query()
            .filter(Person::CITY.eq("Rome"))
            .order_by(Person::AGE.desc())
            .order_by(Person::NAME.asc());
        let all = q.all()?;
        let mut expected: Vec<Person> = (0..200).map(person).filter(|p| p.city == "Rome").collect();
        expected.sort_by(|a, b| b.age.cmp(&a.age).then(a.name.cmp(&b.name)).then(a.id.cmp(&b.id)));
        assert_eq!(all, expected);
        assert_eq!(q.clone().offset(5).limit(3).all()?, expected[5..8].to_vec());
        assert_eq!(q.first()?, expected.first().cloned());
        assert_eq!(q.count()?, expected.len());
        assert_eq!(q.clone().offset(60).count()?, expected.len().saturating_sub(60));
        assert_eq!(q.keys()?, expected.iter().map(|p| p.id).collect::<Vec<_>>());
        assert_eq!(Person::query().filter(Person::AGE.gt(1000)).first()?, None);
        Ok(())
    });
}

#[test]
fn chunked_iteration_visits_everything_once() {
    with_people(|| {
        for chunk in [1, 7, 64, 1000] {
            let got: Vec<Person> = Person::query()
                .filter(Person::AGE.ge(40))
                .chunk_size(chunk)
                .iter()
                .collect::<mnesia::Result<_>>()?;
            assert_eq!(ids(got), model(|p| p.age >= 40), "chunk {chunk}");
        }
        let limited = Person::query().offset(10).limit(15).iter().count();
        assert_eq!(limited, 15);
        let sorted: Vec<u32> = Person::query()
            .order_by(Person::AGE.asc())
            .limit(5)
            .iter()
            .map(|p| p.map(|p| p.age))
            .collect::<mnesia::Result<_>>()?;
        let mut ages: Vec<u32> = (0..200).map(|i| person(i).age).collect();
        ages.sort();
        assert_eq!(sorted, ages[..5].to_vec());
        Ok(())
    });
}

#[test]
fn ordered_set_ranges_and_chunks_in_key_order() {
    let db = Database::in_memory().expect("db");
    db.scope(|| -> mnesia::Result<()> {
        Sorted::create_table(TableOptions::new())?;
        Sorted::batch_write((-50..50).map(|id| Sorted { id, score: id as f64 / 2.0 }))?;
        let keys: Vec<i64> =
            Sorted::query().chunk_size(9).iter().map(|r| r.map(|s| s.id)).collect::<mnesia::Result<_>>()?;
        assert_eq!(keys, (-50..50).collect::<Vec<_>>());
        let range: Vec<i64> =
            Sorted::select(Sorted::ID.ge(-3) & Sorted::ID.lt(4))?.into_iter().map(|s| s.id).collect();
        assert_eq!(range, (-3..4).collect::<Vec<_>>());
        assert_eq!(Sorted::query().filter(Sorted::ID.between(5, 1)).count()?, 0, "an empty range");
        assert_eq!(Sorted::query().filter(Sorted::ID.gt(5) & Sorted::ID.lt(5)).count()?, 0);
        let top = Sorted::query().order_by(Sorted::SCORE.desc()).limit(2).keys()?;
        assert_eq!(top, vec![49, 48]);
        // Chunks inside a transaction see its own writes, in key order.
        let seen: Vec<i64> = mnesia::transaction(|| {
            Sorted::write(Sorted { id: 100, score: 0.0 })?;
            Sorted::write(Sorted { id: -100, score: 0.0 })?;
            Sorted::delete(&0)?;
            Sorted::query()
                .filter(Sorted::ID.le(-49) | Sorted::ID.ge(49) | Sorted::ID.between(-1, 1))
                .chunk_size(2)
                .iter()
                .map(|r| r.map(|s| s.id))
                .collect()
        })?;
        assert_eq!(seen, vec![-100, -50, -49, -1, 1, 49, 100]);
        Ok(())
    })
    .expect("body");
}
