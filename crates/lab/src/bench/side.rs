//! bench.md's first table when one run measures baton, keepalived and the
//! peers: every system side by side, at its defaults and at its fastest
//! other setting, with baton's ratio to the best peer on each row.

use std::fmt::Write as _;

use super::cost::Cost;
use super::report::quantile;
use super::Row;

/// One setting of a system and what it measured.
pub struct Setting<'a> {
    /// The setting, as its table row names it after the system.
    label: &'a str,
    default: bool,
    row: &'a Row,
}

/// One system's settings.
pub struct Column<'a> {
    system: &'a str,
    settings: Vec<Setting<'a>>,
}

/// Groups `(name, default?, row)` by system ("ucarp, tuned (...)" is
/// ucarp's), in the order systems first appear.
pub fn columns<'a>(rows: impl IntoIterator<Item = (&'a str, bool, &'a Row)>) -> Vec<Column<'a>> {
    let mut out: Vec<Column> = Vec::new();
    for (name, default, row) in rows {
        let (system, label) = name.split_once(", ").unwrap_or((name, "defaults"));
        let setting = Setting { label, default, row };
        match out.iter_mut().find(|c| c.system == system) {
            Some(c) => c.settings.push(setting),
            None => out.push(Column { system, settings: vec![setting] }),
        }
    }
    out
}

fn median(v: &[u64]) -> Option<u64> {
    (!v.is_empty()).then(|| quantile(v, 0.5))
}

impl Column<'_> {
    fn defaults(&self) -> Option<&Row> {
        self.settings.iter().find(|s| s.default).map(|s| s.row)
    }

    /// The setting other than the defaults with the shortest crash median.
    fn fastest(&self) -> Option<&Setting<'_>> {
        let crash = |s: &&Setting| median(&s.row.crash);
        self.settings.iter().filter(|s| !s.default && crash(s).is_some()).min_by_key(crash)
    }

    /// The idle cost, measured at the defaults.
    fn cost(&self) -> Option<&Cost> {
        self.defaults().and_then(|r| r.cost.as_ref())
    }

    /// The longest of a dual-ownership trial at any setting.
    fn worst(&self, pick: fn(&Row) -> &[u64]) -> Option<u64> {
        self.settings.iter().flat_map(|s| pick(s.row).iter().copied()).max()
    }
}

/// One row of the table: a value per column (lower is better), and how it
/// reads.
struct Line {
    what: &'static str,
    values: Vec<Option<f64>>,
    show: fn(f64) -> String,
}

fn ms(v: f64) -> String {
    format!("{v:.0} ms")
}

/// The table; `columns[0]` is baton. Empty without a peer.
pub fn table(columns: &[Column]) -> String {
    if columns.len() < 2 {
        return String::new();
    }
    let each = |f: &dyn Fn(&Column) -> Option<f64>| columns.iter().map(f).collect::<Vec<_>>();
    let of = |r: Option<&Row>, pick: fn(&Row) -> &[u64]| r.and_then(|r| median(pick(r))).map(|v| v as f64);
    let lines = [
        Line { what: "crash failover, defaults (median)", values: each(&|c| of(c.defaults(), |s| &s.crash)), show: ms },
        Line {
            what: "crash failover, fastest setting (median)",
            values: each(&|c| of(c.fastest().map(|s| s.row), |s| &s.crash)),
            show: ms,
        },
        Line {
            what: "planned move, defaults (median)",
            values: each(&|c| of(c.defaults(), |s| s.moves_of_the_address().0)),
            show: ms,
        },
        Line {
            what: "planned move, fastest setting (median)",
            values: each(&|c| of(c.fastest().map(|s| s.row), |s| s.moves_of_the_address().0)),
            show: ms,
        },
        Line {
            what: "two holders after SIGKILL (longest trial, any setting)",
            values: each(&|c| c.worst(|s| &s.dual_kill).map(|v| v as f64)),
            show: ms,
        },
        Line {
            what: "two holders under a partition (longest trial, any setting)",
            values: each(&|c| c.worst(|s| &s.dual_partition).map(|v| v as f64)),
            show: ms,
        },
        Line {
            what: "planned moves with two holders of the address (all settings)",
            values: each(&|c| {
                let gaps: Vec<i64> = c.settings.iter().flat_map(|s| s.row.move_gaps_us.iter().copied()).collect();
                (!gaps.is_empty()).then(|| gaps.iter().filter(|&&g| g < 0).count() as f64)
            }),
            show: |v| format!("{v:.0}"),
        },
        Line {
            what: "false failovers under load and loss (all settings)",
            values: each(&|c| {
                let counted: Vec<usize> =
                    c.settings.iter().filter_map(|s| s.row.quiet.as_ref()).map(|q| q.takeovers).collect();
                (!counted.is_empty()).then(|| counted.iter().sum::<usize>() as f64)
            }),
            show: |v| format!("{v:.0}"),
        },
        Line {
            what: "idle CPU per node",
            values: each(&|c| c.cost().map(Cost::mean_cpu)),
            show: |v| format!("{v:.2} %"),
        },
        Line {
            what: "resident memory per node",
            values: each(&|c| c.cost().map(|k| k.mean_rss_kib() as f64)),
            show: |v| format!("{:.1} MiB", v / 1024.0),
        },
        Line {
            what: "proportional memory per node",
            values: each(&|c| c.cost().map(|k| k.mean_pss_kib() as f64)),
            show: |v| format!("{:.1} MiB", v / 1024.0),
        },
    ];
    let mut md = String::from("| | ");
    md += &columns.iter().map(|c| c.system).collect::<Vec<_>>().join(" | ");
    md += " | baton / best other |\n|---|";
    md += &"---|".repeat(columns.len() + 1);
    md.push('\n');
    for line in &lines {
        let cells: Vec<String> = line.values.iter().map(|v| v.map_or("not measured".into(), line.show)).collect();
        let best = line.values[1..].iter().flatten().copied().reduce(f64::min);
        let ratio = match (line.values[0], best) {
            (Some(b), Some(o)) if o > 0.0 => format!("{:.2}", b / o),
            (Some(b), Some(_)) if b <= 0.0 => "both 0".into(),
            _ => "–".into(),
        };
        let _ = writeln!(md, "| {} | {} | {ratio} |", line.what, cells.join(" | "));
    }
    md.push_str("\nThe settings behind each column's \"fastest setting\":");
    for c in columns {
        if let Some(s) = c.fastest() {
            let _ = write!(md, " {}: {};", c.system, s.label);
        }
    }
    md.pop();
    md.push_str(
        ".\n\nbaton's planned moves here are of the address alone, the web server running on every node, as \
         keepalived, ucarp and vip-manager move it (Pacemaker's group moves the web server too; baton's moves \
         with the web server in the set are under \"Planned move\").\n",
    );
    md
}

#[cfg(test)]
mod tests {
    use super::super::quiet::Quiet;
    use super::*;

    fn row(crash: &[u64], dual: &[u64], quiet: usize) -> Row {
        Row {
            crash: crash.to_vec(),
            dual_kill: dual.to_vec(),
            quiet: Some(Quiet { takeovers: quiet, dual_ms: 0 }),
            ..Row::default()
        }
    }

    #[test]
    fn each_row_sets_baton_against_the_best_other_system() {
        let rows = [
            ("baton, defaults (lease 1s)", true, row(&[1000, 1010], &[0], 0)),
            ("baton, tuned (lease 300ms)", false, row(&[300, 320, 330], &[0], 0)),
            ("baton, fast (lease 100ms)", false, row(&[140, 150, 160], &[0], 1)),
            ("keepalived, defaults", true, row(&[3200], &[5000], 0)),
            ("keepalived, tuned (0.1)", false, row(&[320], &[7700], 2)),
            ("ucarp, tuned (deadratio 1)", false, row(&[1540], &[7300], 0)),
        ];
        let mut rows = rows;
        rows[0].2.move_gaps_us = vec![400, 500];
        rows[4].2.move_gaps_us = vec![-900, 30];
        let columns = columns(rows.iter().map(|(n, d, r)| (*n, *d, r)));
        assert_eq!(columns.iter().map(|c| c.system).collect::<Vec<_>>(), ["baton", "keepalived", "ucarp"]);
        let md = table(&columns);
        assert!(md.contains("| crash failover, defaults (median) | 1000 ms | 3200 ms | not measured | 0.31 |"), "{md}");
        // The fastest setting is the one with the shortest median.
        assert!(md.contains("| crash failover, fastest setting (median) | 150 ms | 320 ms | 1540 ms | 0.47 |"), "{md}");
        assert!(
            md.contains("| two holders after SIGKILL (longest trial, any setting) | 0 ms | 7700 ms | 7300 ms | 0.00 |")
        );
        assert!(md.contains("| false failovers under load and loss (all settings) | 1 | 2 | 0 | – |"), "{md}");
        let overlaps = "| planned moves with two holders of the address (all settings) | 0 | 1 | not measured | 0.00 |";
        assert!(md.contains(overlaps), "{md}");
        assert!(md.contains("| idle CPU per node | not measured | not measured | not measured | – |"), "{md}");
        assert!(md.contains("baton: fast (lease 100ms)"), "{md}");
    }

    #[test]
    fn without_another_system_there_is_no_table() {
        let only = row(&[1000], &[], 0);
        assert_eq!(table(&columns([("baton, defaults", true, &only)])), "");
    }
}
