//! The file store's behaviour through its public API: round trips, atomic applies,
//! compaction, reopening, the directory lock and async commits.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::store::StoreError;
use crate::store::record::MAX_VALUE_DEPTH;

#[test]
fn values_keys_and_collections_round_trip_across_a_reopen() {
    let dir = temp_dir();
    let ops = [
        Op::put(
            "devices",
            "d1",
            json!({"status": "enabled", "keys": ["a", "b"], "nested": {"x": [1, {"y": null}]}}),
        ),
        Op::put("devices", "", json!("empty key")),
        Op::put(
            "devices",
            "ünï/cödé \"quoted\"\n",
            json!("tab\there, nul\u{0}"),
        ),
        Op::put(
            "numbers",
            "floats",
            json!([0.1, 1e-300, -2.5e300, 3.0, -0.0]),
        ),
        Op::put("numbers", "ints", json!([i64::MIN, u64::MAX, 0])),
        Op::put("numbers", "null", Value::Null),
        Op::put("numbers", "bool", json!(false)),
        Op::put("", "empty collection name", json!({})),
    ];
    let mut model = Model::new();
    apply_to_model(&mut model, &ops);
    {
        let store = open(dir.path());
        store.apply(&ops).expect("apply");
        assert_eq!(contents(&store), model);
    }
    let store = open(dir.path());
    assert_eq!(contents(&store), model);
    let floats = &store.load().expect("load").take("numbers")["floats"];
    // Bit-identical, not just approximately equal.
    let bits: Vec<u64> = floats
        .as_array()
        .expect("array")
        .iter()
        .map(|f| f.as_f64().expect("f64").to_bits())
        .collect();
    let expected: Vec<u64> = [0.1f64, 1e-300, -2.5e300, 3.0, -0.0]
        .iter()
        .map(|f| f.to_bits())
        .collect();
    assert_eq!(bits, expected);
}

#[test]
fn the_ops_of_one_apply_take_effect_in_order() {
    let dir = temp_dir();
    let store = open(dir.path());
    store
        .apply(&[
            Op::put("c", "a", json!(1)),
            Op::delete("c", "a"),
            Op::put("c", "b", json!(1)),
            Op::put("c", "b", json!(2)),
            Op::delete("c", "never-there"),
            Op::delete("other", "never-there"),
        ])
        .expect("apply");
    let expected: Model = [("c".into(), [("b".into(), json!(2))].into())].into();
    assert_eq!(contents(&store), expected);
    drop(store);
    assert_eq!(contents(&open(dir.path())), expected);
}

#[test]
fn snapshots_list_only_collections_with_keys() {
    let dir = temp_dir();
    let store = open(dir.path());
    store.apply(&[Op::put("a", "1", json!(1))]).expect("apply");
    store.apply(&[Op::put("b", "1", json!(1))]).expect("apply");
    store.apply(&[Op::delete("a", "1")]).expect("apply");
    let mut snapshot = store.load().expect("load");
    assert_eq!(snapshot.collection_names().collect::<Vec<_>>(), ["b"]);
    assert_eq!(snapshot.collection("a"), None);
    assert!(snapshot.take("a").is_empty());
    assert_eq!(snapshot.take("b").len(), 1);
    assert!(snapshot.is_empty());
}

#[test]
fn reopening_continues_the_same_log() {
    let dir = temp_dir();
    for round in 0..3 {
        let store = open(dir.path());
        assert_eq!(store.load().expect("load").take("rounds").len(), round);
        store
            .apply(&[Op::put("rounds", round.to_string(), json!(round))])
            .expect("apply");
        assert_eq!(store.stats().generation, 0, "no compaction was due");
    }
    assert_eq!(open(dir.path()).stats().entries, 3);
}

#[test]
fn compacting_writes_a_snapshot_and_starts_an_empty_log() {
    let dir = temp_dir();
    let mut model = Model::new();
    {
        let store = open(dir.path());
        for n in 0..20 {
            let ops = [Op::put("c", (n % 5).to_string(), json!(n))];
            store.apply(&ops).expect("apply");
            apply_to_model(&mut model, &ops);
        }
        store.compact().expect("compact");
        let stats = store.stats();
        assert_eq!(stats.generation, 1);
        assert_eq!(stats.compactions, 1);
        assert_eq!(stats.log_bytes, 28, "only the header is left");
        assert!(stats.snapshot_bytes > 0);
        assert_eq!(
            std::fs::metadata(dir.path().join("wal"))
                .expect("wal")
                .len(),
            28
        );
        let ops = [Op::delete("c", "0"), Op::put("d", "x", json!("after"))];
        store.apply(&ops).expect("apply");
        apply_to_model(&mut model, &ops);
    }
    let store = open(dir.path());
    assert_eq!(contents(&store), model);
    assert_eq!(store.stats().generation, 1);
}

#[test]
fn the_log_is_compacted_once_it_outgrows_the_threshold() {
    let dir = temp_dir();
    let mut model = Model::new();
    {
        let store = open_compacting_after(dir.path(), 2048);
        for n in 0..300 {
            let ops = [Op::put("c", (n % 10).to_string(), json!({"n": n}))];
            store.apply(&ops).expect("apply");
            apply_to_model(&mut model, &ops);
        }
        let stats = store.stats();
        assert!(stats.compactions >= 3, "{stats:?}");
        assert!(stats.log_bytes < 4096, "{stats:?}");
        assert_eq!(stats.generation, stats.compactions);
    }
    assert_eq!(contents(&open(dir.path())), model);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused_until_the_first_closes() {
    let dir = temp_dir();
    let first = open(dir.path());
    let error = FileStore::open(dir.path()).expect_err("locked");
    match &error {
        StoreError::Locked {
            dir: locked,
            holder,
        } => {
            assert_eq!(locked, dir.path());
            assert_eq!(holder, &format!("pid {}", std::process::id()));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains("in use by another iotemu"), "{message}");
    assert!(message.contains("--data-dir"), "{message}");
    drop(first);
    open(dir.path());
}

#[test]
fn refused_writes_change_nothing_and_later_writes_still_work() {
    let dir = temp_dir();
    let store = open(dir.path());
    let too_deep = (0..=MAX_VALUE_DEPTH).fold(json!(0), |inner, _| json!({ "a": inner }));
    let error = store
        .apply(&[
            Op::put("c", "fine", json!(1)),
            Op::put("c", "deep", too_deep),
        ])
        .expect_err("too deep");
    assert!(matches!(error, StoreError::Rejected(_)), "{error:?}");
    assert!(contents(&store).is_empty(), "nothing of the apply was kept");
    store
        .apply(&[Op::put("c", "later", json!(2))])
        .expect("apply");
    drop(store);
    assert_eq!(
        contents(&open(dir.path())),
        [("c".into(), [("later".into(), json!(2))].into())].into()
    );
}

#[test]
fn an_empty_apply_writes_nothing() {
    let dir = temp_dir();
    let store = open(dir.path());
    store.apply(&[]).expect("apply");
    assert_eq!(store.stats().log_syncs, 0);
    assert_eq!(store.stats().log_bytes, 28);
}

#[test]
fn applies_from_many_threads_all_land() {
    let dir = temp_dir();
    let store = Arc::new(open(dir.path()));
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let store = store.clone();
            std::thread::spawn(move || {
                for n in 0..40 {
                    store
                        .apply(&[Op::put("c", format!("{thread}-{n}"), json!(n))])
                        .expect("apply");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("writer thread");
    }
    let stats = store.stats();
    assert_eq!(stats.applies, 320);
    assert!(stats.log_syncs <= 320);
    drop(store);
    assert_eq!(open(dir.path()).stats().entries, 320);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_commits_resolve_once_durable() {
    let dir = temp_dir();
    let store: Arc<dyn Store> = Arc::new(open(dir.path()));
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let commit = store.submit(&[Op::put("c", format!("k{n}"), json!(n))])?;
                commit.durable().await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("durable");
    }
    drop(store);
    let reopened = open(dir.path());
    assert_eq!(reopened.load().expect("load").take("c").len(), 50);
}

#[test]
fn submit_orders_applies_before_they_are_durable() {
    let dir = temp_dir();
    let store = open(dir.path());
    // Submitted back to back and waited for afterwards: the log keeps submission order.
    let first = store
        .submit(&[Op::put("c", "k", json!("first"))])
        .expect("submit");
    let second = store
        .submit(&[Op::put("c", "k", json!("second"))])
        .expect("submit");
    assert_eq!(contents(&store)["c"]["k"], json!("second"));
    second.wait().expect("durable");
    first.wait().expect("durable");
    drop(store);
    assert_eq!(contents(&open(dir.path()))["c"]["k"], json!("second"));
}

#[test]
fn close_makes_writes_durable_releases_the_lock_and_refuses_later_writes() {
    let dir = temp_dir();
    let store = open(dir.path());
    let pending = store
        .submit(&[Op::put("devices", "d1", json!(1))])
        .expect("submit");
    store.close().expect("close");
    pending.wait().expect("queued before close: durable");
    // The lock is released while `store` still exists.
    let reopened = open(dir.path());
    assert_eq!(
        reopened.load().unwrap().collection("devices").unwrap()["d1"],
        json!(1)
    );
    // A write after close fails instead of waiting for a writer that is gone.
    let late = store.submit(&[Op::put("devices", "d2", json!(2))]);
    assert!(matches!(late, Err(StoreError::Failed(_))), "{late:?}");
    store.close().expect("closing twice is fine");
}
