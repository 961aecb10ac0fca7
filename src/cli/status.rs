//! `gatehouse status`: what a running server reports, as a table for operators or JSON for scripts.

use clap::Args;
use serde_json::Value;

use super::ReportFormat;
use super::client::ServerArgs;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Show one tenant in detail: errors with file:line, drifted fields, orphans.
    #[arg(long)]
    pub tenant: Option<String>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

/// Exit 0 when synced, 1 when not, 2 when the server cannot be asked.
pub fn status(args: StatusArgs) -> anyhow::Result<u8> {
    let get = |path: &str| args.server.get(path);
    let (body, state) = match &args.tenant {
        Some(tenant) => {
            let body = get(&format!("/v1/sync/tenants/{tenant}"))?;
            let state = body["state"].as_str().unwrap_or_default().to_owned();
            (body, state)
        }
        None => {
            let mut overall = get("/v1/sync/status")?;
            overall["tenants"] = Value::Array(every_tenant(&args.server)?);
            let state = overall["state"].as_str().unwrap_or_default().to_owned();
            (overall, state)
        }
    };
    match (args.format, &args.tenant) {
        (ReportFormat::Json, _) => println!("{body:#}"),
        (ReportFormat::Text, Some(_)) => print!("{}", tenant_text(&body)),
        (ReportFormat::Text, None) => print!("{}", overall_text(&body)),
    }
    Ok(if state == "Synced" { 0 } else { 1 })
}

/// Tenants fetched per request while paging through all of them.
const PAGE: usize = 1000;

/// Every tenant the server knows, synced ones included, a page at a time.
fn every_tenant(server: &ServerArgs) -> anyhow::Result<Vec<Value>> {
    let mut tenants = Vec::new();
    let mut after = String::new();
    let limit = PAGE.to_string();
    loop {
        let query =
            serde_urlencoded::to_string([("all", "true"), ("limit", limit.as_str()), ("after", after.as_str())])?;
        let page = server.get(&format!("/v1/sync/tenants?{query}"))?;
        tenants.extend(page["tenants"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) if next != after => after = next.to_owned(),
            _ => return Ok(tenants),
        }
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn overall_text(body: &Value) -> String {
    let counts = &body["counts"];
    let unmanaged = counts["Unmanaged"].as_u64().filter(|n| *n > 0).map(|n| format!(", {n} unmanaged"));
    let mut out = format!(
        "{}  commit {}  last sync {}  leader {}\ntenants: {} synced, {} out of sync, {} drifted, {} error{}{}\n",
        text(&body["state"]),
        text(&body["sourceCommit"]),
        text(&body["lastAttemptAt"]),
        text(&body["leader"]),
        text(&counts["Synced"]),
        text(&counts["OutOfSync"]),
        text(&counts["Drifted"]),
        text(&counts["Error"]),
        unmanaged.unwrap_or_default(),
        if body["paused"] == Value::Bool(true) { "  (paused)" } else { "" },
    );
    if let Some(error) = body["lastError"].as_str() {
        out.push_str(&format!("last error: {error}\n"));
    }
    let tenants = body["tenants"].as_array().cloned().unwrap_or_default();
    if !tenants.is_empty() {
        out.push('\n');
        out.push_str(&tenant_table(&tenants));
    }
    out
}

/// One line per tenant: name, state, the version that last changed it, when, and its first problem.
fn tenant_table(tenants: &[Value]) -> String {
    let rows: Vec<[String; 5]> = tenants
        .iter()
        .map(|t| {
            [
                text(&t["tenant"]),
                text(&t["state"]),
                t["appliedCommit"].as_str().map_or_else(|| "-".to_owned(), short_version),
                t["changedAt"].as_str().map_or_else(|| "-".to_owned(), short_time),
                problem(t),
            ]
        })
        .collect();
    let header = ["TENANT", "STATE", "VERSION", "LAST CHANGE", "PROBLEM"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A commit as `git log --oneline` shows it; a content hash with its prefix.
fn short_version(version: &str) -> String {
    let keep = if version.starts_with("content:") { "content:".len() + 12 } else { 12 };
    version.chars().take(keep).collect()
}

/// `2024-05-01T12:30:00.123456Z` as `2024-05-01 12:30:00`.
fn short_time(at: &str) -> String {
    at.chars().take(19).collect::<String>().replace('T', " ")
}

/// A tenant's first problem: an error, else its drift or orphans; `-` for none.
fn problem(t: &Value) -> String {
    if let Some(message) = t["errors"][0]["message"].as_str() {
        let file = t["errors"][0]["file"].as_str().filter(|f| !f.is_empty());
        return match file {
            Some(file) => format!("{file}:{}: {message}", text(&t["errors"][0]["line"])),
            None => message.to_owned(),
        };
    }
    let count = |key: &str| t[key].as_array().map_or(0, Vec::len);
    match (count("drift"), count("orphans")) {
        (0, 0) => "-".to_owned(),
        (0, orphans) => format!("{orphans} orphans"),
        (drifted, _) => format!("{drifted} drifted fields"),
    }
}

fn tenant_text(body: &Value) -> String {
    let mut out = format!(
        "tenant {}: {}  (file {}, synced commit {}, last changed by commit {})\n",
        text(&body["tenant"]),
        text(&body["state"]),
        text(&body["sourceFile"]),
        text(&body["syncedCommit"]),
        text(&body["appliedCommit"]),
    );
    for e in body["errors"].as_array().into_iter().flatten() {
        let at = if e["file"].as_str().is_some_and(|f| !f.is_empty()) {
            format!("{}:{}:{}: ", text(&e["file"]), text(&e["line"]), text(&e["column"]))
        } else {
            String::new()
        };
        out.push_str(&format!("  error  {at}{}\n", text(&e["message"])));
    }
    for d in body["drift"].as_array().into_iter().flatten() {
        let action = match &d["allowed"] {
            Value::Object(a) => format!("allowed until {}: {}", text(&a["until"]), text(&a["reason"])),
            _ if d["reverted"] == Value::Bool(true) => "reverted".into(),
            _ => "kept".into(),
        };
        out.push_str(&format!(
            "  drift  {} {}: applied {}, live {} ({action}; changed by {} at {})\n",
            text(&d["resource"]),
            text(&d["field"]),
            d["applied"],
            d["live"],
            text(&d["changedBy"]),
            text(&d["changedAt"]),
        ));
    }
    if let Some(a) = body["driftAllowance"].as_object().filter(|a| a["active"] == Value::Bool(true)) {
        out.push_str(&format!(
            "  drift allowed until {} by {}: {}\n",
            text(&a["until"]),
            text(&a["allowedBy"]),
            text(&a["reason"])
        ));
    }
    for o in body["orphans"].as_array().into_iter().flatten() {
        out.push_str(&format!("  orphan {}\n", text(o)));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_tenant_table_has_a_column_each_for_state_version_last_change_and_problem() {
        let tenants = [
            json!({ "tenant": "acme", "state": "Synced", "appliedCommit": "0123456789abcdef0123456789abcdef01234567",
                    "changedAt": "2024-05-01T12:30:00.123456Z", "errors": [], "drift": [], "orphans": [] }),
            json!({ "tenant": "globex", "state": "Error", "appliedCommit": "content:feedfacefeedfacefeed",
                    "changedAt": null, "errors": [{ "message": "would delete 4 of 4 users" }], "drift": [], "orphans": [] }),
            json!({ "tenant": "Bad_Name", "state": "Error", "appliedCommit": null, "changedAt": null,
                    "errors": [{ "file": "tenants/bad.yaml", "line": 5, "column": 9, "message": "not a DNS label" }] }),
            json!({ "tenant": "umbrella", "state": "Drifted", "drift": [{}, {}], "orphans": [] }),
        ];
        let table = tenant_table(&tenants);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "TENANT    STATE    VERSION               LAST CHANGE          PROBLEM");
        assert_eq!(lines[1], "acme      Synced   0123456789ab          2024-05-01 12:30:00  -");
        assert_eq!(lines[2], "globex    Error    content:feedfacefeed  -                    would delete 4 of 4 users");
        assert_eq!(
            lines[3],
            "Bad_Name  Error    -                     -                    tenants/bad.yaml:5: not a DNS label"
        );
        assert_eq!(lines[4], "umbrella  Drifted  -                     -                    2 drifted fields");
    }
}
