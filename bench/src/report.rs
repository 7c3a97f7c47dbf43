//! The result of one measured run: printed as one JSON line on stdout (the runner appends it to
//! a results file for `iotemu-loadgen summary`) and as a readable line on stderr.

use std::time::Duration;

use crate::proc_stats;

/// Which run this is: the case name, the server under test and the repeat number.
#[derive(Clone, Debug)]
pub struct Labels {
    pub case: String,
    pub server: String,
    pub rep: u32,
}

/// Figures of one run; `None` where a figure does not apply or could not be measured.
#[derive(Debug, Default)]
pub struct Figures {
    pub ops: u64,
    pub errors: u64,
    pub secs: f64,
    /// Server CPU time over the measured window.
    pub server_cpu_us: Option<u64>,
    /// Server RSS growth over the measured window.
    pub server_rss_delta_kib: Option<i64>,
    /// The generator's own CPU time over the measured window: near one core means the
    /// generator, not the server, may be the limit.
    pub loadgen_cpu_us: Option<u64>,
    /// Per-operation latencies (registrations, start-up), when the mode has them.
    pub latencies: Vec<Duration>,
}

/// The `q` quantile (0.0–1.0) of `sorted`, by nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(rank.min(sorted.len() - 1)).copied()
}

/// Prints the run and returns whether it had no errors and at least one operation.
pub fn emit(mode: &str, labels: &Labels, figures: &Figures) -> bool {
    let ops = figures.ops as f64;
    let per_op = |total: Option<f64>| total.filter(|_| ops > 0.0).map(|t| t / ops);
    let mut millis: Vec<f64> = figures
        .latencies
        .iter()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    millis.sort_by(f64::total_cmp);
    let record = serde_json::json!({
        "case": labels.case,
        "mode": mode,
        "server": labels.server,
        "rep": labels.rep,
        "ops": figures.ops,
        "errors": figures.errors,
        "secs": figures.secs,
        "rate": if figures.secs > 0.0 { ops / figures.secs } else { 0.0 },
        "cpu_us_per_op": per_op(figures.server_cpu_us.map(|us| us as f64)),
        "kib_per_op": per_op(figures.server_rss_delta_kib.map(|kib| kib as f64)),
        "loadgen_busy": figures
            .loadgen_cpu_us
            .filter(|_| figures.secs > 0.0)
            .map(|us| us as f64 / 1e6 / figures.secs),
        "p50_ms": quantile(&millis, 0.5),
        "p99_ms": quantile(&millis, 0.99),
        "load": proc_stats::load_average(),
    });
    eprintln!(
        "{} {} rep {}: {} ops, {} errors in {:.2} s = {:.0}/s; server CPU µs/op {}; server KiB/op {}; p50 {} ms; load {}",
        labels.case,
        labels.server,
        labels.rep,
        figures.ops,
        figures.errors,
        figures.secs,
        record["rate"].as_f64().unwrap_or_default(),
        record["cpu_us_per_op"],
        record["kib_per_op"],
        record["p50_ms"],
        record["load"],
    );
    println!("{record}");
    figures.errors == 0 && figures.ops > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&v, 0.5), Some(3.0));
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&v, 1.0), Some(5.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
