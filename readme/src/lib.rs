//! Nothing to use: this crate exists for its test, `tests/readme_examples.rs`, which compiles
//! and runs every ```` ```rust ```` block of the repository's README.md (extracted by
//! `build.rs`) against only the dev-dependencies the README tells users to add, so that the
//! examples cannot drift from the API or from the dependency list.
