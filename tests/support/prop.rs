//! Proptest settings shared by every property test.

use proptest::test_runner::{Config, FileFailurePersistence};

/// `config` with failing cases saved beside the test's source file, as
/// `<file stem>.proptest-regressions` (e.g. `tests/local/model.proptest-regressions`), and
/// replayed from there before any new case.
///
/// Proptest's default (`SourceParallel`) would look for a `main.rs` above the source file and,
/// finding the area's `tests/<area>/main.rs`, use `tests/proptest-regressions/<file stem>.txt`
/// instead: one directory for every area, where `local/model.rs` and `inbound/model.rs` would
/// share a file.
pub fn saved_beside_source(config: Config) -> Config {
    Config {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..config
    }
}
