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
            overall["tenants"] = get("/v1/sync/tenants?limit=1000")?["tenants"].clone();
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

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn overall_text(body: &Value) -> String {
    let counts = &body["counts"];
    let mut out = format!(
        "{}  commit {}  last sync {}  leader {}\ntenants: {} synced, {} out of sync, {} drifted, {} error{}\n",
        text(&body["state"]),
        text(&body["sourceCommit"]),
        text(&body["lastAttemptAt"]),
        text(&body["leader"]),
        text(&counts["Synced"]),
        text(&counts["OutOfSync"]),
        text(&counts["Drifted"]),
        text(&counts["Error"]),
        if body["paused"] == Value::Bool(true) { "  (paused)" } else { "" },
    );
    if let Some(error) = body["lastError"].as_str() {
        out.push_str(&format!("last error: {error}\n"));
    }
    let tenants = body["tenants"].as_array().cloned().unwrap_or_default();
    if !tenants.is_empty() {
        out.push_str(&format!("\n{:<24} {:<10} {:<32} DETAIL\n", "TENANT", "STATE", "FILE"));
        for t in tenants {
            let detail = t["errors"][0]["message"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| {
                    t["drift"].as_array().filter(|d| !d.is_empty()).map(|d| format!("{} drifted fields", d.len()))
                })
                .or_else(|| t["orphans"].as_array().filter(|o| !o.is_empty()).map(|o| format!("{} orphans", o.len())))
                .unwrap_or_default();
            out.push_str(&format!(
                "{:<24} {:<10} {:<32} {detail}\n",
                text(&t["tenant"]),
                text(&t["state"]),
                text(&t["sourceFile"])
            ));
        }
    }
    out
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
