//! The start-up banner.

use std::io::Write as _;

/// Prints a title and a two-column table on stdout (the banners of the
/// gateway and the router, which scripts and tests read). A closed stdout
/// (a supervisor that stopped reading) must not kill the process, so write
/// errors are ignored.
///
/// ```
/// jim_service::print_table("Demo 1.0", &[("tcp", "127.0.0.1:9001".into())], None);
/// // Demo 1.0
/// // +-----------+----------------+
/// // | tcp       | 127.0.0.1:9001 |
/// // +-----------+----------------+
/// ```
pub fn print_table(title: &str, rows: &[(&str, String)], footer: Option<&str>) {
    let mut out = std::io::stdout().lock();
    let width = rows.iter().map(|(_, v)| v.chars().count()).max().unwrap_or(0);
    let line = format!("+-----------+-{}-+", "-".repeat(width));
    let _ = writeln!(out, "{title}\n{line}");
    for (name, value) in rows {
        let _ = writeln!(out, "| {name:<9} | {value:<width$} |");
    }
    let _ = writeln!(out, "{line}");
    if let Some(footer) = footer {
        let _ = writeln!(out, "{footer}");
    }
}
