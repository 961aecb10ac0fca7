//! `gatehouse sync …`: operator actions on a running server's reconciler: allow one tenant's guarded
//! change once, and read the history of passes.

use clap::{Args, Subcommand};
use serde_json::Value;

use super::ReportFormat;
use super::client::{ServerArgs, segment};

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub command: SyncCommand,
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Allow one tenant's guarded change once: the next pass deletes the tenant whose file was
    /// removed (the mass-delete guard refuses it otherwise), then the allowance is used up.
    AllowDeletion {
        /// The tenant to delete.
        tenant: String,
    },
    /// The passes that changed, reverted or failed something, newest first.
    History {
        /// Only the passes that touched this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// How many passes to show (at most 100).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
}

/// Exit 0 when the server did it, 2 when it refused or cannot be asked.
pub fn sync(args: SyncArgs) -> anyhow::Result<u8> {
    match args.command {
        SyncCommand::AllowDeletion { tenant } => {
            let path = format!("/v1/sync/tenants/{}/allow-deletion", segment(&tenant));
            let answer = args.server.call("POST", &path, None)?;
            println!(
                "allowed: the next pass deletes tenant {} once (allowed by {} at {})",
                tenant,
                text(&answer["allowed"]["allowedBy"]),
                text(&answer["allowed"]["allowedAt"])
            );
            Ok(0)
        }
        SyncCommand::History { tenant, limit, format } => {
            let query = format!("?limit={limit}");
            let path = match &tenant {
                Some(t) => format!("/v1/sync/tenants/{}/history{query}", segment(t)),
                None => format!("/v1/sync/history{query}"),
            };
            let body = args.server.get(&path)?;
            match format {
                ReportFormat::Json => println!("{body:#}"),
                ReportFormat::Text => print!("{}", history_text(&body)),
            }
            Ok(0)
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

/// One paragraph per pass: when, why, which version, the counts; then each tenant's part.
fn history_text(body: &Value) -> String {
    let mut out = String::new();
    for pass in body["passes"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{}  {}  {} ({} ms)  version {} by {}\n  created {}, updated {}, deleted {}, healed {}, refused {}, failed {}\n",
            text(&pass["startedAt"]),
            text(&pass["state"]),
            text(&pass["trigger"]),
            text(&pass["durationMs"]),
            text(&pass["version"]),
            text(&pass["author"]),
            text(&pass["created"]),
            text(&pass["updated"]),
            text(&pass["deleted"]),
            text(&pass["healed"]),
            text(&pass["refused"]),
            text(&pass["failed"]),
        ));
        for t in pass["tenants"].as_array().into_iter().flatten() {
            let problem = t["problem"].as_str().map(|p| format!(": {p}")).unwrap_or_default();
            out.push_str(&format!("  {} {}{problem}\n", text(&t["tenant"]), text(&t["outcome"])));
            for d in t["drift"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "    reverted {} {}: {} back to {} (changed by {} at {})\n",
                    text(&d["resource"]),
                    text(&d["field"]),
                    d["reverted"],
                    d["applied"],
                    text(&d["changedBy"]),
                    text(&d["changedAt"]),
                ));
            }
        }
    }
    if out.is_empty() {
        out.push_str("no passes changed, reverted or failed anything yet\n");
    }
    out
}
