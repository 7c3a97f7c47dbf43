//! The module graph of the crate stays acyclic (issue #13): a top-level module of
//! `emulator/src` (`auth`, `hub`, `dps`, …) that imports another through a `crate::` or
//! `super::` path depends on it, and no two modules may reach each other through such
//! imports. The credentials layer (`auth`) is a leaf: it imports nothing but the time
//! formatting helpers.
//!
//! The source is read as text (comments and literals blanked out), the way
//! `tools/arch-report` measures it, so the test needs no compiler internals.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Edges that still close a cycle while issue #13's helpers remove them. Each entry names the
/// import, who removes it and how; once that work is merged, delete the entry (the test fails
/// on an entry whose edge is gone, so the list cannot go stale).
const ALLOWED_CYCLE_EDGES: &[(&str, &str, &str)] = &[];

/// Modules the credentials leaf may still use: formatting helpers that import nothing.
const AUTH_MAY_USE: &[&str] = &["timefmt"];

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = module_graph(&src_dir());
    let mut edges: BTreeSet<(String, String)> = graph.keys().cloned().collect();
    let mut stale = Vec::new();
    for (from, to, why) in ALLOWED_CYCLE_EDGES {
        if !edges.remove(&(from.to_string(), to.to_string())) {
            stale.push(format!("{from} -> {to} ({why})"));
        }
    }
    assert!(
        stale.is_empty(),
        "these allow-listed imports are gone: delete them from ALLOWED_CYCLE_EDGES:\n{}",
        stale.join("\n")
    );
    let cycles = cycles(&edges);
    let mut described = Vec::new();
    for component in &cycles {
        described.push(format!("{}:", component.join(", ")));
        for ((from, to), sites) in &graph {
            if component.contains(from) && component.contains(to) {
                described.push(format!("  {from} -> {to} at {}", sites.join(", ")));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "modules that import each other (directly or through others):\n{}",
        described.join("\n")
    );
}

#[test]
fn auth_is_a_leaf() {
    let graph = module_graph(&src_dir());
    let allowed: BTreeSet<(&str, &str)> = ALLOWED_CYCLE_EDGES
        .iter()
        .map(|(from, to, _)| (*from, *to))
        .collect();
    let imports: Vec<String> = graph
        .iter()
        .filter(|((from, to), _)| {
            from == "auth"
                && !AUTH_MAY_USE.contains(&to.as_str())
                && !allowed.contains(&(from.as_str(), to.as_str()))
        })
        .map(|((_, to), sites)| format!("auth -> {to} at {}", sites.join(", ")))
        .collect();
    assert!(
        imports.is_empty(),
        "the credentials layer imports other modules:\n{}",
        imports.join("\n")
    );
}

/// The reader itself: the paths it must see, and the ones it must not.
#[test]
fn reads_imports_as_the_compiler_resolves_them() {
    let code = strip(
        r#"
        //! [`crate::doc`] is a comment
        use crate::{alpha::A, beta::{B, C}};
        use super::gamma;
        fn f() { let s = "crate::string"; crate::delta::call(); }
        mod tests { use super::*; use super::super::epsilon::E; }
        "#,
    );
    let found: BTreeSet<String> = imports(&code, &["hub".into(), "inner".into()])
        .into_iter()
        .map(|(module, _)| module)
        .collect();
    let expected: BTreeSet<String> = ["alpha", "beta", "delta", "hub"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(found, expected);
}

/// The cycle finder reports a loop through several modules, and nothing for a chain.
#[test]
fn finds_a_cycle_through_three_modules() {
    let edge = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    let chain: BTreeSet<_> = [edge("a", "b"), edge("b", "c")].into();
    assert!(cycles(&chain).is_empty());
    let mut looped = chain.clone();
    looped.insert(edge("c", "a"));
    looped.insert(edge("c", "d"));
    assert_eq!(cycles(&looped), vec![vec!["a", "b", "c"]]);
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `(from, to)` → the `file:line`s where a top-level module imports another.
fn module_graph(src: &Path) -> BTreeMap<(String, String), Vec<String>> {
    let files = rust_files(src);
    let top: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_path(src, f).first().cloned())
        .collect();
    let mut graph: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for file in &files {
        let base = module_path(src, file);
        let Some(from) = base.first() else { continue };
        let text = std::fs::read_to_string(file).expect("source file readable");
        let code = strip(&text);
        for (to, offset) in imports(&code, &base) {
            if top.contains(&to) && &to != from {
                let line = code[..offset].matches('\n').count() + 1;
                let site = format!("{}:{line}", file.strip_prefix(src).unwrap().display());
                graph.entry((from.clone(), to)).or_default().push(site);
            }
        }
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("source directory readable")
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// `auth/keys.rs` → `[auth, keys]`; `hub/mod.rs` → `[hub]`; `lib.rs` → `[]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// Blanks comments, string literals and char literals, keeping line breaks, so that braces
/// and paths inside them are not read as code.
fn strip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let at = |i: usize, s: &str| {
        s.chars()
            .enumerate()
            .all(|(k, c)| chars.get(i + k) == Some(&c))
    };
    let newlines = |from: usize, to: usize| {
        "\n".repeat(chars[from..to].iter().filter(|c| **c == '\n').count())
    };
    while i < chars.len() {
        let c = chars[i];
        let prev_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if at(i, "//") {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if at(i, "/*") {
            let (start, mut depth) = (i, 0);
            while i < chars.len() {
                if at(i, "/*") {
                    depth += 1;
                    i += 2;
                } else if at(i, "*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push_str(&newlines(start, i.min(chars.len())));
        } else if c == 'r' && !prev_ident && matches!(chars.get(i + 1), Some('#') | Some('"')) {
            let mut hashes = 0;
            while chars.get(i + 1 + hashes) == Some(&'#') {
                hashes += 1;
            }
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let start = i;
            let close: String = std::iter::once('"')
                .chain("#".repeat(hashes).chars())
                .collect();
            i += 2 + hashes;
            while i < chars.len() && !at(i, &close) {
                i += 1;
            }
            i = (i + close.len()).min(chars.len());
            out.push_str("\"\"");
            out.push_str(&newlines(start, i));
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i = (i + 1).min(chars.len());
            out.push_str("\"\"");
            out.push_str(&newlines(start, i.min(chars.len())));
        } else if c == '\'' {
            // A char literal ('a', '\n', '\u{1F600}'); otherwise a lifetime or a label.
            let end = if chars.get(i + 1) == Some(&'\\') {
                (i + 3..chars.len().min(i + 12)).find(|&k| chars[k] == '\'')
            } else {
                (chars.get(i + 2) == Some(&'\'')).then_some(i + 2)
            };
            match end {
                Some(end) => {
                    out.push_str("' '");
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The top-level modules `code` (of the module at `base`) names through `crate::` and
/// `super::` paths, with the byte offset of each use.
fn imports(code: &str, base: &[String]) -> Vec<(String, usize)> {
    let inline = inline_modules(code);
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let boundary = i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != b'$';
        let head = if !boundary {
            None
        } else if rest.starts_with("crate::") {
            Some((Vec::new(), "crate::".len()))
        } else if rest.starts_with("super::") {
            let mut ups = 0;
            let mut len = 0;
            while code[i + len..].starts_with("super::") {
                ups += 1;
                len += "super::".len();
            }
            let depth = inline.iter().filter(|(a, b)| *a <= i && i < *b).count();
            let here = base.len() + depth;
            if ups > here {
                i += len;
                continue;
            }
            // Only the part of the path outside any inline module matters.
            let kept = base.len().min(here - ups);
            Some((base[..kept].to_vec(), len))
        } else {
            None
        };
        let Some((target, len)) = head else {
            i += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let after = &code[i + len..];
        let names = match target.first() {
            Some(first) => vec![first.clone()],
            None if after.starts_with('{') => top_level_names(brace_group(after)),
            None => vec![after.chars().take_while(|c| is_ident(*c as u8)).collect()],
        };
        found.extend(names.into_iter().map(|n| (n, i)));
        i += len;
    }
    found
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Byte ranges of inline `mod name { … }` bodies: each deepens `super::` by one.
fn inline_modules(code: &str) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut search = 0;
    while let Some(at) = code[search..].find("mod ") {
        let start = search + at;
        search = start + 4;
        if start > 0 && is_ident(code.as_bytes()[start - 1]) {
            continue;
        }
        let rest = code[search..].trim_start();
        let name_len = rest.bytes().take_while(|b| is_ident(*b)).count();
        if name_len == 0 || !rest[name_len..].trim_start().starts_with('{') {
            continue;
        }
        let open = search + (code[search..].len() - rest.len()) + name_len;
        let open = open + code[open..].find('{').unwrap_or(0);
        let body = brace_group(&code[open..]);
        ranges.push((open, open + body.len() + 2));
    }
    ranges
}

/// The text inside the `{` that starts `code`, up to its matching `}`.
fn brace_group(code: &str) -> &str {
    let mut depth = 0;
    for (k, c) in code.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &code[1..k];
                }
            }
            _ => {}
        }
    }
    code.get(1..).unwrap_or("")
}

/// First segments of a use group: `a::b, c, d::{e, f}` → `a, c, d`.
fn top_level_names(group: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0;
    let mut at_start = true;
    let mut current = String::new();
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                at_start = true;
                current.clear();
                continue;
            }
            _ => {}
        }
        if depth == 0 && at_start {
            if is_ident(c as u8) && c.is_ascii() {
                current.push(c);
            } else if !current.is_empty() {
                names.push(std::mem::take(&mut current));
                at_start = false;
            }
        }
    }
    if at_start && !current.is_empty() {
        names.push(current);
    }
    names
}

/// Groups of modules that reach each other (strongly connected components of more than one
/// module), by Tarjan's algorithm.
fn cycles(edges: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    struct State<'a> {
        next: BTreeMap<&'a str, Vec<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(v: &'a str, s: &mut State<'a>) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        for w in s.next.get(v).cloned().unwrap_or_default() {
            if !s.index.contains_key(w) {
                visit(w, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.stack.contains(&w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        next: BTreeMap::new(),
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    let mut nodes = BTreeSet::new();
    for (from, to) in edges {
        state.next.entry(from).or_default().push(to);
        nodes.insert(from.as_str());
        nodes.insert(to.as_str());
    }
    for v in nodes {
        if !state.index.contains_key(v) {
            visit(v, &mut state);
        }
    }
    state.found
}
