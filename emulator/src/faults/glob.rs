//! Id patterns for fault targets: `*` matches any run of characters (including none), every
//! other character matches itself, ASCII case ignored — registration and device ids are
//! case-insensitive in Azure, so a rule for `Dev-*` must hit `dev-1` as the service would.

/// Whether `id` matches `pattern`. Greedy with one backtrack point (the last `*`), so the
/// work is bounded by `pattern.len() * id.len()` (both ≤ 128 bytes after validation).
pub(super) fn matches(pattern: &str, id: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), id.as_bytes());
    let (mut pi, mut si) = (0usize, 0usize);
    // Where the last `*` was in the pattern, and where in the id it started matching.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(c) if c.eq_ignore_ascii_case(&s[si]) => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character and retry after it.
                Some((star_p, star_s)) => {
                    pi = star_p + 1;
                    si = star_s + 1;
                    star = Some((star_p, star_s + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn star_matches_any_run_and_case_is_ignored() {
        assert!(matches("*", ""));
        assert!(matches("*", "dev-1"));
        assert!(matches("dev-*", "DEV-42"));
        assert!(matches("*-1", "dev-1"));
        assert!(matches("d*v*1", "dxxvyy1"));
        assert!(matches("dev-1", "dev-1"));
        assert!(!matches("dev-1", "dev-10"));
        assert!(!matches("dev-*", "device"));
        assert!(!matches("a*b", "acbc"));
        assert!(matches("a*b*", "acbc"));
        assert!(!matches("", "x"));
    }
}
