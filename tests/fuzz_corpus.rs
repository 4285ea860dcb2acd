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

macro_rules! targets {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target), cases::$target);
            }
        )*
    };
}

targets!(heartbeat, peer_frame, api_request, config, ocf_metadata);
