//! Every committed fuzz corpus input (`fuzz/corpus/TARGET/`), replayed on
//! stable through the same functions the fuzz targets run: an input that
//! once crashed (e.g. `heartbeat/regression-seq-zero`) stays a test.

#[path = "../fuzz/cases.rs"]
mod cases;

fn replay(target: &str, case: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        case(&std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n > 0, "{} holds no inputs", dir.display());
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
