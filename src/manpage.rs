//! `cluster.toml(5)`: the configuration chapters of docs/reference.md,
//! rendered as a manual page, so the installed page and the repository's
//! reference are one text.

const REFERENCE: &str = include_str!("../docs/reference.md");

/// The chapters of the reference that make the page.
const CHAPTERS: [&str; 2] = ["## Configuration reference", "## Resources, hooks and fencing (reference)"];

/// roff for `cluster.toml(5)`.
pub fn cluster_toml() -> String {
    let mut out = String::from(
        ".TH CLUSTER.TOML 5 \"\" \"baton\" \"File formats\"\n.SH NAME\ncluster.toml \\- baton's cluster configuration\n",
    );
    for chapter in CHAPTERS {
        let start = REFERENCE.find(chapter).expect("the reference has its chapters");
        let body = &REFERENCE[start + chapter.len()..];
        let end = body.find("\n## ").unwrap_or(body.len());
        let title = chapter.trim_start_matches("## ").to_uppercase();
        out += &format!(".SH {}\n", escape(&title));
        out += &render(&body[..end]);
    }
    out
}

/// Markdown paragraphs, code blocks, tables and lists as roff.
fn render(md: &str) -> String {
    let mut out = String::new();
    let mut code = false;
    let mut paragraph = true;
    for line in md.lines() {
        if line.starts_with("```") {
            out += if code { ".fi\n.RE\n" } else { ".RS\n.nf\n" };
            code = !code;
            continue;
        }
        if code {
            out += &format!("{}\n", escape(line));
            continue;
        }
        let text = line.trim();
        if text.is_empty() {
            paragraph = true;
        } else if text.starts_with('|') {
            // A table row: its cells, the first in bold; the rule row goes.
            let cells: Vec<&str> = text.trim_matches('|').split('|').map(str::trim).collect();
            if cells.iter().all(|c| c.chars().all(|ch| ch == '-' || ch == ':')) {
                continue;
            }
            out += &format!(".TP\n{}\n{}\n", inline(cells[0]), inline(&cells[1..].join(" \u{2014} ")));
            paragraph = true;
        } else {
            if paragraph {
                out += ".PP\n";
                paragraph = false;
            }
            let text = text.strip_prefix("- ").map_or(text.to_string(), |t| format!("\\(bu {t}"));
            out += &format!("{}\n", inline(&text));
        }
    }
    out
}

/// `code` in bold, **strong** in bold, links as their text; roff escaped.
fn inline(text: &str) -> String {
    let mut s = escape(text).replace("**", "`");
    while let Some(a) = s.find("](") {
        match (s[..a].rfind('['), s[a..].find(')')) {
            (Some(open), Some(len)) => s = format!("{}{}{}", &s[..open], &s[open + 1..a], &s[a + len + 1..]),
            _ => break,
        }
    }
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            out += &format!("\\fB{part}\\fR");
        } else {
            out += part;
        }
    }
    out
}

/// Backslashes, and a leading dot or quote that roff would take as a request.
fn escape(line: &str) -> String {
    let s = line.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_holds_every_key_of_the_reference_in_roff() {
        let page = cluster_toml();
        assert!(page.starts_with(".TH CLUSTER.TOML 5"));
        for key in ["secret_file", "failure_timeout", "heartbeat_interval", "delay_max", "lock_dir"] {
            assert!(page.contains(key), "{key} is in the page");
        }
        assert!(!page.lines().any(|l| l.starts_with("```") || l.starts_with("|---")), "no markdown left");
        assert_eq!(page.matches(".nf\n").count(), page.matches(".fi\n").count(), "code blocks closed");
        assert_eq!(inline("a `key` and [the guide](guide.md)"), "a \\fBkey\\fR and the guide");
    }
}
