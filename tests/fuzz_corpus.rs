//! Every committed fuzz input — the corpora (`fuzz/corpus/TARGET/`) and the
//! inputs that once crashed (`fuzz/regressions/TARGET/`, kept apart so a
//! corpus minimization cannot drop them) — replayed on stable through the
//! same functions the fuzz targets run.

#[path = "../fuzz/cases.rs"]
mod cases;

fn replay(target: &str, case: fn(&[u8])) {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = fuzz.join("corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&corpus).unwrap_or_else(|e| panic!("{}: {e}", corpus.display())) {
        case(&std::fs::read(entry.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n > 0, "{} holds no inputs", corpus.display());
    for entry in std::fs::read_dir(fuzz.join("regressions").join(target)).into_iter().flatten() {
        let path = entry.unwrap().path();
        let input = std::fs::read(&path).unwrap();
        assert!(
            std::panic::catch_unwind(|| case(&input)).is_ok(),
            "the regression input {} fails again",
            path.display()
        );
    }
}

#[test]
fn heartbeat_corpus() {
    replay("heartbeat", cases::heartbeat);
}

#[test]
fn peer_frame_corpus() {
    replay("peer_frame", cases::peer_frame);
}

#[test]
fn api_request_corpus() {
    replay("api_request", cases::api_request);
}

#[test]
fn config_corpus() {
    replay("config", cases::config);
}

#[test]
fn ocf_metadata_corpus() {
    replay("ocf_metadata", cases::ocf_metadata);
}
