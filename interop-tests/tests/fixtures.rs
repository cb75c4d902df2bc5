//! Runs the interop fixtures as a test, reading the same folder as
//! `cargo xtask interop`. Missing fixtures fail the test: they are never
//! skipped silently.

#[test]
fn interop_fixtures_all_pass() {
    let root = match interop_tests::locate(None) {
        Ok(root) => root,
        Err(e) => panic!("{e:#}"),
    };
    let report = interop_tests::run(&root).unwrap();
    assert!(!report.has_failures(), "{}", report.to_table());
}
