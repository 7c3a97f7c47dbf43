//! Turns the JSON lines of a whole run (one per case, server and repeat) into the Markdown
//! table of docs/benchmarks.md: min / median / max per server, and the ratio iotemu ÷ mosquitto
//! paired by repeat (the two servers ran back to back, so a repeat's pair saw the same load).

use std::collections::BTreeMap;

use serde_json::Value;

/// The figures a record may carry and how the table names them.
const FIGURES: [(&str, &str); 6] = [
    ("rate", "ops/s"),
    ("cpu_us_per_op", "server CPU µs/op"),
    ("kib_per_op", "server RSS KiB/op"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("loadgen_busy", "generator CPU (1 = a whole core)"),
];

/// The figures worth a row for each mode (the others are noise or meaningless there: a
/// start-up has no rate, telemetry no latency).
fn shown(mode: &str, figure: &str) -> bool {
    match mode {
        "telemetry" => matches!(figure, "rate" | "cpu_us_per_op" | "loadgen_busy"),
        "connect" => matches!(figure, "rate" | "cpu_us_per_op" | "kib_per_op"),
        "startup" => figure == "p50_ms",
        _ => true,
    }
}

/// Min, median and max of `values` (which it sorts), `—` when there are none.
fn spread(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    match (values.first(), values.get(values.len() / 2), values.last()) {
        (Some(min), Some(median), Some(max)) => {
            format!("{} / **{}** / {}", round(*min), round(*median), round(*max))
        }
        _ => "—".into(),
    }
}

/// Three significant digits: the runs are not more precise than that.
fn round(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The Markdown table for the records in `jsonl` (lines that are not JSON objects are skipped).
pub fn table(jsonl: &str) -> String {
    // case → server → rep → record, in the order cases first appeared.
    let mut order: Vec<String> = Vec::new();
    let mut runs: BTreeMap<String, BTreeMap<String, BTreeMap<u64, Value>>> = BTreeMap::new();
    for line in jsonl.lines() {
        let Ok(record) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let (Some(case), Some(server)) = (record["case"].as_str(), record["server"].as_str())
        else {
            continue;
        };
        if !order.iter().any(|c| c == case) {
            order.push(case.to_owned());
        }
        let rep = record["rep"].as_u64().unwrap_or_default();
        runs.entry(case.to_owned())
            .or_default()
            .entry(server.to_owned())
            .or_default()
            .insert(rep, record);
    }
    let mut out = String::from(
        "| Case | Figure | iotemu min / **median** / max | mosquitto min / **median** / max | iotemu ÷ mosquitto, paired by repeat | load (1 min) |\n|---|---|---|---|---|---|\n",
    );
    for case in &order {
        let Some(servers) = runs.get(case) else {
            continue;
        };
        let empty = BTreeMap::new();
        let iotemu = servers.get("iotemu").unwrap_or(&empty);
        let mosquitto = servers.get("mosquitto").unwrap_or(&empty);
        let loads: Vec<&str> = servers
            .values()
            .flat_map(|reps| reps.values())
            .filter_map(|r| r["load"].as_str())
            .collect();
        let mode = servers
            .values()
            .flat_map(|reps| reps.values())
            .find_map(|r| r["mode"].as_str())
            .unwrap_or_default();
        for (key, name) in FIGURES {
            if !shown(mode, key) {
                continue;
            }
            let values = |reps: &BTreeMap<u64, Value>| -> Vec<f64> {
                reps.values().filter_map(|r| r[key].as_f64()).collect()
            };
            let (mut ours, mut theirs) = (values(iotemu), values(mosquitto));
            if ours.is_empty() && theirs.is_empty() {
                continue;
            }
            let mut ratios: Vec<f64> = iotemu
                .iter()
                .filter_map(|(rep, r)| {
                    let a = r[key].as_f64()?;
                    let b = mosquitto.get(rep)?[key].as_f64()?;
                    (b != 0.0).then(|| a / b)
                })
                .collect();
            out.push_str(&format!(
                "| {case} | {name} | {} | {} | {} | {} |\n",
                spread(&mut ours),
                spread(&mut theirs),
                spread(&mut ratios),
                loads.join(" ")
            ));
        }
        let errors: u64 = servers
            .values()
            .flat_map(|reps| reps.values())
            .filter_map(|r| r["errors"].as_u64())
            .sum();
        if errors > 0 {
            out.push_str(&format!("| {case} | errors | {errors} | | | |\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_ratios_use_the_same_repeat() {
        let lines = [
            r#"{"case":"t","server":"iotemu","rep":1,"rate":300.0,"p50_ms":null,"load":"1.0","errors":0}"#,
            r#"{"case":"t","server":"mosquitto","rep":1,"rate":100.0,"load":"1.1","errors":0}"#,
            r#"{"case":"t","server":"iotemu","rep":2,"rate":200.0,"load":"1.2","errors":0}"#,
            r#"{"case":"t","server":"mosquitto","rep":2,"rate":200.0,"load":"1.3","errors":0}"#,
            r#"{"case":"t","server":"iotemu","rep":3,"rate":400.0,"load":"1.4","errors":0}"#,
            r#"{"case":"t","server":"mosquitto","rep":3,"rate":100.0,"load":"1.5","errors":0}"#,
            "not json",
        ]
        .join("\n");
        let table = table(&lines);
        let row = table.lines().find(|l| l.contains("ops/s")).unwrap();
        assert!(row.contains("200 / **300** / 400"), "{row}");
        assert!(row.contains("100 / **100** / 200"), "{row}");
        // Ratios 3, 1, 4: the median is 3, not the ratio of medians (1.5).
        assert!(row.contains("1.00 / **3.00** / 4.00"), "{row}");
        assert!(!table.contains("p50 ms"));
    }

    #[test]
    fn a_case_with_one_server_has_no_ratio_and_errors_are_shown() {
        let table =
            table(r#"{"case":"r","server":"iotemu","rep":1,"rate":50.0,"p50_ms":2.5,"errors":3}"#);
        assert!(table.contains("| r | p50 ms | 2.50 / **2.50** / 2.50 | — | — |"));
        assert!(table.contains("| r | errors | 3 |"));
    }

    #[test]
    fn a_start_up_shows_only_its_time() {
        let table = table(
            r#"{"case":"s","mode":"startup","server":"iotemu","rep":1,"rate":300.0,"p50_ms":3.0,"p99_ms":4.0,"errors":0}"#,
        );
        assert!(table.contains("| s | p50 ms | 3.00 / **3.00** / 3.00 |"));
        assert!(!table.contains("ops/s") && !table.contains("p99"));
    }
}
