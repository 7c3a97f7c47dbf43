//! Fixture generator for the cost-growth table: the base fixture's DPS instance and hubs with
//! `enrollments` extra individual symmetric-key enrollments `bench-ind-{k}` and `groups`
//! symmetric-key enrollment groups `bench-group-{g}` (replacing the base's groups), every key
//! derived from [`BENCH_MASTER_KEY`] and the id so the register mode can compute it.

use serde_json::{Value, json};

use crate::device::BENCH_MASTER_KEY;
use crate::sas::derive_device_key;

/// The id of the group the register mode's `--bench-group last` devices use: the last one, so
/// a lookup that walks the groups in order pays for all of them.
pub fn last_group(groups: usize) -> String {
    format!("bench-group-{}", groups.saturating_sub(1))
}

fn symmetric_key(id: &str) -> Value {
    json!({
        "type": "symmetricKey",
        "symmetricKey": {
            "primaryKey": derive_device_key(BENCH_MASTER_KEY, id),
            "secondaryKey": derive_device_key(BENCH_MASTER_KEY, &format!("{id}/secondary")),
        }
    })
}

/// `base` with the generated enrollments and groups.
pub fn generate(mut base: Value, enrollments: usize, groups: usize) -> Result<Value, String> {
    let object = base
        .as_object_mut()
        .ok_or("the base fixture is not a JSON object")?;
    let mut individual = object
        .get("enrollments")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    individual.extend((0..enrollments).map(|k| {
        let id = format!("bench-ind-{k}");
        json!({ "registrationId": id, "attestation": symmetric_key(&id) })
    }));
    let group_list: Vec<Value> = (0..groups)
        .map(|g| {
            let id = format!("bench-group-{g}");
            json!({ "enrollmentGroupId": id, "attestation": symmetric_key(&id) })
        })
        .collect();
    object.insert("enrollments".into(), Value::Array(individual));
    object.insert("enrollmentGroups".into(), Value::Array(group_list));
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_fixture_keeps_the_instance_and_adds_derived_keys() {
        let base = json!({ "dps": { "idScope": "0ne1" }, "enrollments": [ { "registrationId": "q" } ],
                           "enrollmentGroups": [ { "enrollmentGroupId": "old" } ] });
        let fixture = generate(base, 3, 2).unwrap();
        assert_eq!(fixture["dps"]["idScope"], "0ne1");
        assert_eq!(fixture["enrollments"].as_array().unwrap().len(), 4);
        assert_eq!(fixture["enrollments"][3]["registrationId"], "bench-ind-2");
        let groups = fixture["enrollmentGroups"].as_array().unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[1]["enrollmentGroupId"], last_group(2));
        assert_eq!(
            groups[1]["attestation"]["symmetricKey"]["primaryKey"],
            derive_device_key(BENCH_MASTER_KEY, "bench-group-1")
        );
        assert!(generate(json!([1]), 1, 1).is_err());
    }
}
