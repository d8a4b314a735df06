//! Replays everything the fuzzers kept (their corpora, starting seeds and any crash found and fixed, under
//! `fuzz/`) through the same entry points as the `cargo fuzz` targets, so a regression fails CI on stable.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for kind in ["seeds", "corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(kind).join(target)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&bytes));
            assert!(outcome.is_ok(), "{target}: {} panics", path.display());
            count += 1;
        }
    }
    count
}

#[test]
fn idx_inputs_never_panic() {
    assert!(replay("idx", elbo::fuzzing::idx) >= 3);
}

#[test]
fn checkpoint_inputs_never_panic() {
    assert!(replay("checkpoint", elbo::fuzzing::checkpoint) >= 2);
}

#[test]
fn config_inputs_never_panic() {
    assert!(replay("config", elbo::fuzzing::config) >= 2);
}
