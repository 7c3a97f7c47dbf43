//! Property tests: random applies, reopens and compactions against a `BTreeMap` model, and
//! cuts of the log at random offsets, which must recover exactly the applies before the cut.

use std::fs;

use proptest::prelude::*;
use serde_json::Value;

use super::*;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-zü\"\\\\\n ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn op() -> impl Strategy<Value = Op> {
    // Few collections and keys, so puts overwrite and deletes hit.
    let collection = prop::sample::select(vec!["devices", "twins", "enrollments"]);
    let key = (0..6u8).prop_map(|k| format!("key-{k}"));
    prop_oneof![
        3 => (collection.clone(), key.clone(), json_value())
            .prop_map(|(c, k, v)| Op::put(c, k, v)),
        1 => (collection, key).prop_map(|(c, k)| Op::delete(c, k)),
    ]
}

#[derive(Debug, Clone)]
enum Step {
    Apply(Vec<Op>),
    Reopen,
    Compact,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => prop::collection::vec(op(), 1..5).prop_map(Step::Apply),
        1 => Just(Step::Reopen),
        1 => Just(Step::Compact),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_applies_match_a_model_across_reopens_and_compactions(
        steps in prop::collection::vec(step(), 1..30),
        // 0 compacts after every apply; 1 MiB never does on its own.
        compact_after in prop::sample::select(vec![0u64, 600, 1 << 20]),
    ) {
        let dir = temp_dir();
        let mut store = Some(open_compacting_after(dir.path(), compact_after));
        let mut model = Model::new();
        for step in steps {
            match step {
                Step::Apply(ops) => {
                    let live = store.as_ref().expect("open");
                    live.apply(&ops).expect("apply");
                    apply_to_model(&mut model, &ops);
                    prop_assert_eq!(contents(live), model.clone());
                }
                Step::Reopen => {
                    drop(store.take());
                    let reopened = open_compacting_after(dir.path(), compact_after);
                    prop_assert_eq!(contents(&reopened), model.clone());
                    store = Some(reopened);
                }
                Step::Compact => store.as_ref().expect("open").compact().expect("compact"),
            }
        }
        drop(store);
        prop_assert_eq!(contents(&open(dir.path())), model);
    }

    #[test]
    fn any_cut_of_the_log_recovers_exactly_the_applies_before_it(
        applies in prop::collection::vec(prop::collection::vec(op(), 1..4), 1..8),
        cut_fraction in 0.0f64..=1.0,
    ) {
        let dir = temp_dir();
        let mut ends = Vec::new();
        let mut models = vec![Model::new()];
        {
            let store = open(dir.path());
            let mut model = Model::new();
            for ops in &applies {
                store.apply(ops).expect("apply");
                apply_to_model(&mut model, ops);
                ends.push(store.stats().log_bytes);
                models.push(model.clone());
            }
        }
        let log = fs::read(dir.path().join("wal")).expect("wal");
        let cut = 28 + ((log.len() - 28) as f64 * cut_fraction) as usize;
        fs::write(dir.path().join("wal"), &log[..cut]).expect("cut");
        let whole = ends.iter().filter(|&&end| end <= cut as u64).count();
        prop_assert_eq!(contents(&open(dir.path())), models[whole].clone());
    }
}
