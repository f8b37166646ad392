//! Rendering of reports: Markdown for people, JSON (the verifiable form), and a
//! self-contained HTML page (no external resources; every text from a node is escaped).

use std::fmt::Write as _;

use super::{Report, ReportError};

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Markdown.
    Markdown,
    /// JSON (what `verify-report` reads).
    Json,
    /// One HTML page.
    Html,
}

/// Renders reports: one document for all of them (a JSON array when there are several).
pub fn render(reports: &[Report], format: Format) -> Result<String, ReportError> {
    Ok(match (format, reports) {
        (Format::Json, [one]) => serde_json::to_string_pretty(one)?,
        (Format::Json, many) => serde_json::to_string_pretty(many)?,
        (Format::Markdown, _) => reports.iter().map(markdown).collect::<Vec<_>>().join("\n"),
        (Format::Html, _) => html(reports),
    })
}

/// The rows shown for a report: (label, value), in order, as plain text.
fn facts(r: &Report) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        ("Incident", format!("{}:{}", r.member, r.seq)),
        ("Phase", r.phase.clone()),
        ("Nodes", r.nodes.join(", ")),
        (
            "Solvency contract",
            r.solvency_contract
                .map_or_else(|| "unknown".into(), |a| a.to_string()),
        ),
    ];
    if let Some(d) = &r.draw {
        let home = r
            .pinned
            .iter()
            .find(|p| p.chain_id == d.registration.chain_id);
        rows.push((
            "Trigger",
            match home {
                Some(p) => format!(
                    "gap {} at block {} ({}) of chain {}",
                    d.gap, p.number, p.hash, p.chain_id
                ),
                None => format!("gap {} (pinned home block unknown)", d.gap),
            },
        ));
    }
    if let Some(o) = &r.observed {
        rows.push((
            "Last gap read",
            format!("{} at block {} of chain {}", o.gap, o.block, o.chain_id),
        ));
    }
    let pinned: Vec<String> = r
        .pinned
        .iter()
        .map(|p| format!("chain {} block {} ({})", p.chain_id, p.number, p.hash))
        .collect();
    rows.push(("Pinned blocks", or_none(pinned.join("; "))));
    rows.push(("Deductible", r.deductible.to_string()));
    if let Some(d) = &r.draw {
        rows.push(("Draw", format!("{} ({})", d.amount, d.hash)));
        let g = &d.registration;
        rows.push((
            "Registered",
            format!(
                "chain {} vault {} in {} at block {}",
                g.chain_id, g.vault, g.tx_hash, g.block
            ),
        ));
    } else {
        rows.push(("Draw", "none registered".into()));
    }
    rows.push(("Uncovered", r.uncovered.to_string()));
    let signers: Vec<String> = r.signers.iter().map(|s| s.to_string()).collect();
    rows.push(("Signers", or_none(signers.join(", "))));
    let txs: Vec<String> = r.transactions.iter().map(|t| t.to_string()).collect();
    rows.push(("Transactions", or_none(txs.join(", "))));
    rows
}

fn or_none(s: String) -> String {
    if s.is_empty() { "none".into() } else { s }
}

/// The legs as table rows.
fn legs(r: &Report) -> Vec<[String; 5]> {
    r.draw
        .iter()
        .flat_map(|d| &d.legs)
        .map(|l| {
            [
                l.chain_id.to_string(),
                l.vault.to_string(),
                l.amount.to_string(),
                l.tx_hash.map_or_else(
                    || {
                        if l.paid {
                            "paid (tx unknown)".into()
                        } else {
                            "unpaid".into()
                        }
                    },
                    |t| t.to_string(),
                ),
                l.block.map_or_else(String::new, |b| b.to_string()),
            ]
        })
        .collect()
}

/// Markdown text: `|`, `\`, backticks, `<` and newlines from nodes cannot break the table.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Incident {}:{}\n", r.member, r.seq);
    let _ = writeln!(o, "| | |\n|---|---|");
    for (k, v) in facts(r) {
        let _ = writeln!(o, "| {k} | {} |", md(&v));
    }
    let _ = writeln!(
        o,
        "\n## Legs\n\n| Chain | Vault | Amount | Transaction | Block |\n|---|---|---|---|---|"
    );
    for row in legs(r) {
        let cells: Vec<String> = row.iter().map(|c| md(c)).collect();
        let _ = writeln!(o, "| {} |", cells.join(" | "));
    }
    let _ = writeln!(o, "\n## Circuit breakers\n");
    if r.breakers.is_empty() {
        let _ = writeln!(o, "None.");
    }
    for b in &r.breakers {
        let state = if b.active {
            "active".to_string()
        } else {
            md(&b.ended)
        };
        let _ = writeln!(
            o,
            "- {} tripped at {} ms: {} ({state})",
            md(&b.id),
            b.tripped_ms,
            md(&b.cause)
        );
    }
    let _ = writeln!(
        o,
        "\n## Timeline\n\n| Time (ms) | Node | Block | What |\n|---|---|---|---|"
    );
    for s in &r.timeline {
        let block = s.block.map_or_else(String::new, |b| b.to_string());
        let _ = writeln!(
            o,
            "| {} | {} | {block} | {} |",
            s.at_ms,
            md(&s.node),
            md(&s.what)
        );
    }
    o
}

/// HTML text.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html(reports: &[Report]) -> String {
    let mut o = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Backstop incident report</title>\n\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;font-family:monospace}</style>\n\
         </head><body>\n",
    );
    for r in reports {
        let _ = writeln!(o, "<h1>Incident {}:{}</h1>\n<table>", r.member, r.seq);
        for (k, v) in facts(r) {
            let _ = writeln!(o, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
        }
        let _ = writeln!(
            o,
            "</table>\n<h2>Legs</h2>\n<table><tr><th>Chain</th><th>Vault</th><th>Amount</th><th>Transaction</th><th>Block</th></tr>"
        );
        for row in legs(r) {
            let cells: Vec<String> = row.iter().map(|c| format!("<td>{}</td>", esc(c))).collect();
            let _ = writeln!(o, "<tr>{}</tr>", cells.concat());
        }
        let _ = writeln!(o, "</table>\n<h2>Circuit breakers</h2>\n<ul>");
        for b in &r.breakers {
            let state = if b.active {
                "active".to_string()
            } else {
                esc(&b.ended)
            };
            let _ = writeln!(
                o,
                "<li>{} tripped at {} ms: {} ({state})</li>",
                esc(&b.id),
                b.tripped_ms,
                esc(&b.cause)
            );
        }
        let _ = writeln!(
            o,
            "</ul>\n<h2>Timeline</h2>\n<table><tr><th>Time (ms)</th><th>Node</th><th>Block</th><th>What</th></tr>"
        );
        for s in &r.timeline {
            let block = s.block.map_or_else(String::new, |b| b.to_string());
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{block}</td><td>{}</td></tr>",
                s.at_ms,
                esc(&s.node),
                esc(&s.what)
            );
        }
        o.push_str("</table>\n");
    }
    o.push_str("</body></html>\n");
    o
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::report::build;
    use crate::report::tests::answer;

    #[test]
    fn every_format_shows_the_facts_and_escapes_what_nodes_wrote() {
        let mut a = answer("node <a>", 5);
        a.incident.timeline[0].what = "<script>alert(1)</script> | x".into();
        let r = build(&[a]).unwrap();
        let md_text = render(std::slice::from_ref(&r), Format::Markdown).unwrap();
        assert!(md_text.contains("| Uncovered | 0 |"), "{md_text}");
        assert!(md_text.contains("| Deductible | 100 |"));
        assert!(
            md_text.contains("gap 1000 at block 8"),
            "the trigger at the pinned home block"
        );
        assert!(
            md_text.contains("\\<script\\>alert(1)\\</script\\> \\| x"),
            "{md_text}"
        );
        assert!(md_text.contains("exploit:0x"));
        let html_text = render(std::slice::from_ref(&r), Format::Html).unwrap();
        assert!(!html_text.contains("<script>"), "{html_text}");
        assert!(html_text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html_text.contains("node &lt;a&gt;"));
        assert!(
            !html_text.contains("http"),
            "self-contained: no external resource"
        );
        let json = render(&[r.clone(), r.clone()], Format::Json).unwrap();
        assert!(
            json.trim_start().starts_with('['),
            "several reports: an array"
        );
        let one = render(std::slice::from_ref(&r), Format::Json).unwrap();
        assert_eq!(crate::report::parse(one.as_bytes()).unwrap(), r);
    }
}
