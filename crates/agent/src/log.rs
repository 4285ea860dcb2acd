//! The agent's and the guard's log: `tracing` events on stderr, one line
//! each with its level (and its time, unless journald stamps the lines
//! itself), filtered by `--log-level` or `RUST_LOG` (e.g. `debug`, or
//! `info,openraft=debug`). openraft's own events come through at `warn`
//! unless asked for.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
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
        base.with(layer.event_format(Priority(format))).try_init()
    } else {
        base.with(layer).try_init()
    };
    installed.map_err(|e| format!("starting the log: {e}"))
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
    use tracing::Level;
    use tracing_subscriber::filter::Targets;

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
}
