//! `gatehouse audit export`: the audit log from a running server, as an auditor, operator or a
//! tenant's owner reads it: CSV on standard output (every matching row, streamed), or with
//! `--format json` every page as one JSON list. The export is itself audited by the server.

use std::io::Write as _;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::ReportFormat;
use super::client::{ServerArgs, with_query};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
    #[command(flatten)]
    pub server: ServerArgs,
    /// `text` (CSV) or `json`.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text, global = true)]
    pub format: ReportFormat,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Every row matching the filters, in time order.
    Export {
        /// Only rows at or after this RFC 3339 instant.
        #[arg(long)]
        from: Option<String>,
        /// Only rows before this RFC 3339 instant.
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        actor: Option<String>,
        /// Such as `user.update`.
        #[arg(long)]
        action: Option<String>,
        /// `success` or `failure`.
        #[arg(long)]
        outcome: Option<String>,
        /// Only rows whose resource starts with this.
        #[arg(long)]
        resource_prefix: Option<String>,
    },
}

pub fn audit(args: AuditArgs) -> anyhow::Result<u8> {
    let AuditCommand::Export { from, to, tenant, actor, action, outcome, resource_prefix } = &args.command;
    let query = [
        ("from", from.as_deref()),
        ("to", to.as_deref()),
        ("tenant", tenant.as_deref()),
        ("actor", actor.as_deref()),
        ("action", action.as_deref()),
        ("outcome", outcome.as_deref()),
        ("resourcePrefix", resource_prefix.as_deref()),
    ];
    match args.format {
        ReportFormat::Text => {
            let mut out = std::io::stdout().lock();
            args.server.download(&with_query("/v1/audit/export", &query)?, "text/csv", &mut out)?;
            out.flush()?;
        }
        ReportFormat::Json => {
            let mut events: Vec<Value> = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let mut page_query: Vec<(&str, Option<&str>)> = query.to_vec();
                page_query.push(("limit", Some("1000")));
                page_query.push(("after", after.as_deref()));
                let page = args.server.get(&with_query("/v1/audit/events", &page_query)?)?;
                events.extend(page["events"].as_array().cloned().unwrap_or_default());
                match page["next"].as_str() {
                    Some(next) if after.as_deref() != Some(next) => after = Some(next.to_owned()),
                    _ => break,
                }
            }
            println!("{:#}", json!({ "events": events }));
        }
    }
    Ok(0)
}
