//! The crash-failover outages as an SVG strip chart: one row per system,
//! every trial a dot, the median a bar. Plain SVG, no script, no fonts to
//! fetch.

use std::fmt::Write as _;

const WIDTH: f64 = 760.0;
const LEFT: f64 = 20.0;
const ROW: f64 = 56.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `rows`: (system, sorted outages in ms).
pub fn svg(title: &str, rows: &[(&str, &[u64])]) -> String {
    let max = rows.iter().filter_map(|r| r.1.last()).copied().max().unwrap_or(0).max(1);
    let step = [100, 250, 500, 1000, 2000, 5000].into_iter().find(|s| max / s <= 8).unwrap_or(10_000);
    let top = max.div_ceil(step) * step;
    let x = |ms: u64| LEFT + (WIDTH - 2.0 * LEFT) * ms as f64 / top as f64;
    let height = 40.0 + ROW * rows.len() as f64 + 56.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"22\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        escape(title)
    );
    for (i, (name, values)) in rows.iter().enumerate() {
        let y = 40.0 + ROW * i as f64;
        let colour = if name.starts_with("baton") { "#1f77b4" } else { "#d62728" };
        let _ = writeln!(s, "<text x=\"{LEFT}\" y=\"{}\">{}</text>", y + 14.0, escape(name));
        let mid = y + 32.0;
        let _ = writeln!(s, "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{mid}\" y2=\"{mid}\" stroke=\"#ddd\"/>", WIDTH - LEFT);
        for (k, v) in values.iter().enumerate() {
            // Spread equal values a little so every trial stays visible.
            let dy = (k % 5) as f64 * 3.0 - 6.0;
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\" fill-opacity=\"0.6\"/>",
                x(*v),
                mid + dy
            );
        }
        if !values.is_empty() {
            let med = values[(values.len() - 1) / 2];
            // Below the dots, on the side with room.
            let (dx, anchor) = if x(med) > WIDTH * 0.75 { (-6.0, "end") } else { (6.0, "start") };
            let _ = writeln!(
                s,
                "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1}\" y2=\"{2}\" stroke=\"black\" stroke-width=\"2\"/>\n\
                 <text x=\"{3:.1}\" y=\"{4}\" text-anchor=\"{anchor}\">median {med} ms</text>",
                x(med),
                mid - 10.0,
                mid + 10.0,
                x(med) + dx,
                mid + 20.0
            );
        }
    }
    let axis = 40.0 + ROW * rows.len() as f64 + 8.0;
    let _ = writeln!(s, "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{axis}\" y2=\"{axis}\" stroke=\"black\"/>", WIDTH - LEFT);
    for tick in (0..=top).step_by(step as usize) {
        let _ = writeln!(
            s,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{axis}\" y2=\"{1}\" stroke=\"black\"/>\n\
             <text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\">{tick}</text>",
            x(tick),
            axis + 5.0,
            axis + 18.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">outage seen by the client (ms)</text>\n</svg>",
        WIDTH - LEFT,
        axis + 34.0
    );
    s
}

#[cfg(test)]
mod tests {
    use super::svg;

    #[test]
    fn every_trial_is_a_dot_and_every_median_is_labelled() {
        let a = [300, 310, 320];
        let b = [1000, 3000];
        let out = svg("t", &[("baton, x", &a), ("keepalived <y>", &b)]);
        assert_eq!(out.matches("<circle").count(), 5);
        assert!(out.contains("median 310 ms") && out.contains("median 1000 ms"));
        assert!(out.contains("keepalived &lt;y&gt;"));
        assert!(out.trim_end().ends_with("</svg>"));
    }
}
