//! The agent's and the guard's log: `tracing` events on stderr, one line
//! each with its level (and its time, unless journald stamps the lines
//! itself), filtered by `--log-level` or `RUST_LOG` (e.g. `debug`, or
//! `info,openraft=debug`). openraft's own events come through at `warn`
//! unless asked for, each line of its code at most once every ten seconds
//! ([`Repeats`]): it logs four lines for every Raft call a lost packet
//! failed, 3.3 MB in ten minutes on a leader at lease 100 ms and 5 % loss.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::subscriber::Interest;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// baton's events from `info`, everyone else's (openraft, netlink) from `warn`.
pub const DEFAULT: &str = "warn,baton=info,baton_agent=info,baton_resources=info";

/// Installs the logger; `level` (from `--log-level`) wins over `RUST_LOG`.
pub fn init(level: Option<&str>) -> Result<(), String> {
    let spec = level.map(str::to_string).or_else(|| std::env::var("RUST_LOG").ok()).unwrap_or_else(|| DEFAULT.into());
    let filter = targets(&spec)?;
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).with_ansi(false);
    let base = tracing_subscriber::registry().with(filter);
    // Under systemd, journald stamps every line, and takes each line's
    // priority from a `<N>` prefix (sd-daemon(3)): `journalctl -p warning`.
    let installed = if std::env::var_os("JOURNAL_STREAM").is_some() {
        let format = tracing_subscriber::fmt::format().without_time().with_target(false).with_ansi(false);
        base.with(layer.event_format(Priority(format)).with_filter(Repeats::default())).try_init()
    } else {
        base.with(layer.with_filter(Repeats::default())).try_init()
    };
    installed.map_err(|e| format!("starting the log: {e}"))
}

/// How long the same openraft warning or error stays quiet after it was
/// logged.
const REPEAT: Duration = Duration::from_secs(10);

/// Lets each of openraft's warning and error lines (one place in its code)
/// through at most once per [`REPEAT`]; every other event passes. A peer
/// that stops answering still shows within seconds, and baton's own events
/// (links, peers heard and lost) say what happens meanwhile.
#[derive(Default)]
struct Repeats {
    logged: Mutex<HashMap<Identifier, Instant>>,
}

impl Repeats {
    fn limited(meta: &Metadata<'_>) -> bool {
        meta.is_event() && meta.target().starts_with("openraft") && *meta.level() <= Level::WARN
    }

    /// Whether an event from `callsite` at `now` is logged (and if so, when
    /// it was is remembered).
    fn admit(&self, callsite: Identifier, now: Instant) -> bool {
        let mut logged = self.logged.lock().expect("not poisoned");
        if logged.get(&callsite).is_some_and(|&t| now.duration_since(t) < REPEAT) {
            return false;
        }
        logged.insert(callsite, now);
        true
    }
}

impl<S> Filter<S> for Repeats {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        !Repeats::limited(meta) || self.admit(meta.callsite(), Instant::now())
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        // Asked event by event where the answer changes with time.
        if Repeats::limited(meta) {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }
}

/// Each line prefixed with its syslog priority, for journald.
struct Priority<F>(F);

/// The syslog priority of a level: err, warning, info, debug.
fn priority(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        _ => 7,
    }
}

impl<S, N, F> FormatEvent<S, N> for Priority<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// A filter from a level (`debug`) or per-target levels (`info,openraft=debug`);
/// a bare level applies to baton's crates and keeps the others at `warn`
/// (or quieter, with `error`).
fn targets(spec: &str) -> Result<Targets, String> {
    let bad = |e: &dyn std::fmt::Display| format!("log level {spec:?}: {e} (e.g. \"debug\", \"info,openraft=debug\")");
    if !spec.contains(['=', ',']) {
        let level: tracing::Level = spec.parse().map_err(|e| bad(&e))?;
        let others = std::cmp::min(level, tracing::Level::WARN);
        let s = format!("{others},baton={level},baton_agent={level},baton_resources={level}");
        return s.parse().map_err(|e| bad(&e));
    }
    spec.parse().map_err(|e| bad(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled(t: &Targets, target: &str, level: Level) -> bool {
        t.would_enable(target, &level)
    }

    #[test]
    fn journald_gets_each_line_s_syslog_priority() {
        assert_eq!([Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE].map(priority), [3, 4, 6, 7, 7]);
    }

    #[test]
    fn a_bare_level_is_for_baton_and_others_stay_at_warn() {
        let t = targets("debug").unwrap();
        assert!(enabled(&t, "baton_agent::shell", Level::DEBUG));
        assert!(!enabled(&t, "openraft::core", Level::INFO));
        assert!(enabled(&t, "openraft::core", Level::WARN));
        let t = targets("error").unwrap();
        assert!(!enabled(&t, "baton_agent::exec", Level::WARN));
        let t = targets(DEFAULT).unwrap();
        assert!(enabled(&t, "baton_resources::ip", Level::INFO) && !enabled(&t, "openraft", Level::INFO));
        let t = targets("info,openraft=debug").unwrap();
        assert!(enabled(&t, "openraft::raft", Level::DEBUG));
        assert!(targets("loud").unwrap_err().contains("log level \"loud\""));
    }

    #[test]
    fn an_openraft_warning_repeats_at_most_every_ten_seconds_per_line_of_its_code() {
        let (a, b) = (Identifier(&CALLSITE_A), Identifier(&CALLSITE_B));
        let r = Repeats::default();
        let t = Instant::now();
        assert!(r.admit(a.clone(), t), "the first time");
        assert!(!r.admit(a.clone(), t + Duration::from_millis(16)), "the same line 16 ms later");
        assert!(r.admit(b, t + Duration::from_millis(16)), "another line");
        assert!(!r.admit(a.clone(), t + REPEAT - Duration::from_millis(1)));
        assert!(r.admit(a, t + REPEAT), "ten seconds later");
    }

    #[test]
    fn only_openraft_warnings_and_errors_are_limited() {
        let event = |target: &'static str, level| {
            let fields = tracing::field::FieldSet::new(&[], Identifier(&CALLSITE_A));
            Metadata::new("e", target, level, None, None, None, fields, tracing::metadata::Kind::EVENT)
        };
        assert!(Repeats::limited(&event("openraft::replication", Level::WARN)));
        assert!(Repeats::limited(&event("openraft::replication", Level::ERROR)));
        assert!(!Repeats::limited(&event("openraft::core", Level::INFO)));
        assert!(!Repeats::limited(&event("baton_agent::shell", Level::ERROR)));
    }

    // Not zero-sized: two statics of a zero-sized type may share an address,
    // which is what identifies a callsite.
    struct Site(#[allow(dead_code)] u8);
    static CALLSITE_A: Site = Site(0);
    static CALLSITE_B: Site = Site(1);

    impl tracing::callsite::Callsite for Site {
        fn set_interest(&self, _: Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unreachable!("only identified, never registered")
        }
    }
}
