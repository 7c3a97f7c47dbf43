//! Extracts the ```` ```rust ```` blocks of README.md into `$OUT_DIR/readme_examples.rs`, each
//! in its own module, for `tests/readme_examples.rs` to include.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // Read when the script runs, not baked in when it is compiled: a build script compiled
    // for one checkout is reused by another that shares the target directory.
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let readme = Path::new(&manifest_dir).join("../README.md");
    println!("cargo:rerun-if-changed={}", readme.display());
    let text = std::fs::read_to_string(&readme).expect("README.md is readable");
    let mut out = String::new();
    let mut block: Option<String> = None;
    let mut count = 0;
    for line in text.lines() {
        match block.as_mut() {
            None if line.trim_end() == "```rust" => block = Some(String::new()),
            None => {}
            Some(code) if line.trim_end() == "```" => {
                let _ = writeln!(out, "mod readme_example_{count} {{\n{code}}}\n");
                count += 1;
                block = None;
            }
            Some(code) => {
                code.push_str(line);
                code.push('\n');
            }
        }
    }
    assert!(block.is_none(), "README.md ends inside a ```rust block");
    assert!(count > 0, "README.md has no ```rust block");
    let _ = writeln!(
        out,
        "/// How many blocks were extracted.\npub const README_EXAMPLES: usize = {count};"
    );
    let target = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("readme_examples.rs");
    std::fs::write(target, out).expect("write the extracted examples");
}
