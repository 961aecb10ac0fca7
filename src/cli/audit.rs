//! `gatehouse audit …`: `export` reads the audit log from a running server, as an auditor, operator
//! or a tenant's owner reads it: CSV on standard output (every matching row, streamed), or with
//! `--format json` every page as one JSON list (the export is itself audited by the server).
//! `verify` checks the log in the database itself: every hash chain and every signed checkpoint.
//! `keygen` makes a checkpoint-signing key.

use std::io::Write as _;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::{ServerArgs, with_query};
use super::{DatabaseArgs, ReportFormat};
use crate::audit::checkpoint::{self, Signer};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
    /// `text` (CSV for `export`, lines for `verify`) or `json`.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text, global = true)]
    pub format: ReportFormat,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Every row matching the filters, in time order.
    Export {
        #[command(flatten)]
        server: ServerArgs,
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
    /// Check that the log is as Gatehouse wrote it: every row's hash, every chain's order, every
    /// signed checkpoint. Exit 0 verified, 1 tampered with (each problem named), 2 could not run.
    Verify {
        #[command(flatten)]
        database: DatabaseArgs,
        /// A public key (base64) trusted to sign checkpoints; repeat it for every key used since
        /// the log began (after a rotation).
        #[arg(long = "public-key", value_name = "BASE64")]
        public_keys: Vec<String>,
        /// The directory serve writes checkpoint files to: each must match the database's, and
        /// every checkpoint must have its file there.
        #[arg(long)]
        checkpoint_dir: Option<std::path::PathBuf>,
        /// The audit retention serve runs with: a month dropped sooner, or under a shorter
        /// retention, is a finding.
        #[arg(long, env = "GATEHOUSE_AUDIT_RETENTION", default_value = "400d", value_parser = humantime::parse_duration)]
        audit_retention: std::time::Duration,
    },
    /// Make a checkpoint-signing key: the secret for serve (GATEHOUSE_AUDIT_SIGNING_KEY) and the
    /// public key for `verify --public-key`.
    Keygen,
}

pub fn audit(args: AuditArgs) -> anyhow::Result<u8> {
    let (server, from, to, tenant, actor, action, outcome, resource_prefix) = match &args.command {
        AuditCommand::Export { server, from, to, tenant, actor, action, outcome, resource_prefix } => {
            (server, from, to, tenant, actor, action, outcome, resource_prefix)
        }
        AuditCommand::Verify { database, public_keys, checkpoint_dir, audit_retention } => {
            let retention = chrono::TimeDelta::from_std(*audit_retention)
                .map_err(|_| anyhow::anyhow!("--audit-retention: at most 100 years"))?;
            return verify(database, public_keys, checkpoint_dir.as_deref(), retention, args.format);
        }
        AuditCommand::Keygen => {
            let signer = Signer::generate()?;
            println!("GATEHOUSE_AUDIT_SIGNING_KEY={}", signer.seed_base64());
            println!(
                "public key (for `gatehouse audit verify --public-key`): {}",
                checkpoint::public_key_base64(&signer.public_key())
            );
            return Ok(0);
        }
    };
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
            server.download(&with_query("/v1/audit/export", &query)?, "text/csv", &mut out)?;
            out.flush()?;
        }
        ReportFormat::Json => {
            let mut events: Vec<Value> = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let mut page_query: Vec<(&str, Option<&str>)> = query.to_vec();
                page_query.push(("limit", Some("1000")));
                page_query.push(("after", after.as_deref()));
                let page = server.get(&with_query("/v1/audit/events", &page_query)?)?;
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

fn verify(
    database: &DatabaseArgs,
    public_keys: &[String],
    dir: Option<&std::path::Path>,
    retention: chrono::TimeDelta,
    format: ReportFormat,
) -> anyhow::Result<u8> {
    let keys = public_keys
        .iter()
        .map(|k| checkpoint::public_key(k).map_err(|e| anyhow::anyhow!("--public-key {k}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let report = super::runtime()?.block_on(async {
        let pool = crate::store::connect_existing(database.database_url.expose()).await?;
        crate::audit::verify::verify(&pool, &keys, dir, retention).await
    })?;
    match format {
        ReportFormat::Json => println!(
            "{:#}",
            json!({ "verified": report.is_clean(), "rows": report.rows, "checkpoints": report.checkpoints,
                    "findings": report.findings, "notes": report.notes })
        ),
        ReportFormat::Text => {
            for finding in &report.findings {
                println!("✗ {finding}");
            }
            for note in &report.notes {
                println!("  {note}");
            }
            if report.is_clean() {
                println!(
                    "audit log verified: {} rows in {} chains, {} checkpoints",
                    report.rows,
                    crate::store::chain::CHAINS,
                    report.checkpoints
                );
            } else {
                let problems = report.findings.len();
                let plural = if problems == 1 { "" } else { "s" };
                println!("audit log NOT verified: {problems} problem{plural} in {} rows", report.rows);
            }
        }
    }
    Ok(if report.is_clean() { 0 } else { 1 })
}
