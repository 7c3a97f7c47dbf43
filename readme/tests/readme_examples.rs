//! Every ```` ```rust ```` block of README.md, compiled and run as printed (they are
//! `#[tokio::test]` functions), plus a check that the README's dev-dependency list is exactly
//! what this crate builds them with.

include!(concat!(env!("OUT_DIR"), "/readme_examples.rs"));

/// Dependency names under `[dev-dependencies]` in a TOML text (`name = …` or `name.workspace`).
fn dev_dependencies(toml: &str) -> Vec<String> {
    let mut names: Vec<String> = toml
        .lines()
        .skip_while(|line| line.trim() != "[dev-dependencies]")
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let name = line.split(['=', '.']).next()?.trim();
            Some(name.to_owned())
        })
        .collect();
    names.sort();
    names
}

#[test]
fn the_readme_lists_exactly_the_dev_dependencies_its_examples_build_with() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Use it in `cargo test`")
        .nth(1)
        .expect("the README's cargo test section");
    let toml = section
        .split("```toml")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ```toml block in that section");
    assert_eq!(
        dev_dependencies(toml),
        dev_dependencies(include_str!("../Cargo.toml"))
    );
    // Both examples: a block whose fence lost its `rust` tag would silently go untested.
    const { assert!(README_EXAMPLES >= 2) };
}
