//! What the generator reads about the server process from /proc: CPU time spent (utime +
//! stime of `/proc/PID/stat`, in clock ticks) and resident memory (`VmRSS` of
//! `/proc/PID/status`). Both servers are measured the same way, from outside.

/// Clock ticks per second of `/proc/PID/stat` (USER_HZ; 100 on every Linux the suite targets).
const TICKS_PER_SEC: u64 = 100;

/// utime + stime from the text of `/proc/PID/stat`. The command name (field 2) may hold spaces
/// and parentheses, so the fields are counted after its last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = after_name.split_whitespace();
    // After the name: state is field 3; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` in KiB from the text of `/proc/PID/status`.
pub fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time of process `pid` in microseconds, or `None` without a pid or when it is gone.
pub fn cpu_micros(pid: Option<u32>) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    Some(parse_cpu_ticks(&stat)? * (1_000_000 / TICKS_PER_SEC))
}

/// Resident memory of process `pid` in KiB.
pub fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    parse_rss_kib(&status)
}

/// The 1-minute load average, recorded with every figure (the machine may be shared).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_counted_after_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 123 45 0 0 20 0 9 0";
        assert_eq!(parse_cpu_ticks(stat), Some(168));
        assert_eq!(parse_cpu_ticks("4242 (cut) S 1 2"), None);
    }

    #[test]
    fn rss_is_read_from_its_line() {
        let status = "Name:\tiotemu\nVmPeak:\t  9000 kB\nVmRSS:\t   10496 kB\nThreads:\t3\n";
        assert_eq!(parse_rss_kib(status), Some(10_496));
        assert_eq!(parse_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_can_be_measured() {
        let me = Some(std::process::id());
        assert!(rss_kib(me).is_some_and(|kib| kib > 0));
        assert!(cpu_micros(me).is_some());
        assert_eq!(cpu_micros(None), None);
    }
}
