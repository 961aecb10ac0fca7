//! `gatehouse drift`: resolve drift other than by reverting it (issue 15.6). `adopt` writes live
//! values into the config files (reads the database, writes only files); `allow` and `withdraw` ask a
//! running server to keep a tenant's drift until a deadline.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;

use super::client::ServerArgs;
use super::{DatabaseArgs, PathArg};
use crate::plan::adopt::{self, Adoption};
use crate::plan::{self, Options};
use crate::store;

#[derive(Debug, Subcommand)]
pub enum DriftCommand {
    /// Write the live values of drifted fields into the config files, changing nothing else, to
    /// commit as a pull request. Exit 0 all adopted (or nothing drifted), 1 some left to do by hand,
    /// 2 error.
    Adopt(AdoptArgs),
    /// Keep a tenant's drift until a deadline: reported, not reverted, even with selfHeal.
    Allow(AllowArgs),
    /// Withdraw a tenant's drift allowance: the next pass reverts its drift if it self-heals.
    Withdraw {
        tenant: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// The config repository whose files are rewritten.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub path: PathArg,
    /// Only this tenant's drift (default: every tenant's, and that of plans and applications).
    #[arg(long)]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("deadline").required(true).args(["until", "for_"]))]
pub struct AllowArgs {
    pub tenant: String,
    /// When the allowance ends (RFC 3339), such as 2026-12-31T00:00:00Z.
    #[arg(long)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// How long the allowance lasts from now, such as 7d or 12h.
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    pub for_: Option<std::time::Duration>,
    /// Why the drift is kept (audited, shown in the status).
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

pub fn drift(command: DriftCommand) -> anyhow::Result<u8> {
    match command {
        DriftCommand::Adopt(args) => super::runtime()?.block_on(adopt(args)),
        DriftCommand::Allow(args) => allow(args),
        DriftCommand::Withdraw { tenant, server } => {
            let answer = server.call("DELETE", &format!("/v1/sync/tenants/{tenant}/drift/allow"), None)?;
            println!("drift allowance of {tenant} withdrawn (it was until {})", answer["withdrawn"]["until"]);
            Ok(0)
        }
    }
}

fn allow(args: AllowArgs) -> anyhow::Result<u8> {
    let until = match (args.until, args.for_) {
        (Some(until), _) => until,
        (None, Some(span)) => chrono::Utc::now() + chrono::TimeDelta::from_std(span).context("--for is too long")?,
        (None, None) => anyhow::bail!("give --until or --for"),
    };
    let body = json!({ "until": until, "reason": args.reason });
    let answer = args.server.call("POST", &format!("/v1/sync/tenants/{}/drift/allow", args.tenant), Some(body))?;
    let allowance = &answer["driftAllowance"];
    println!(
        "drift of {} allowed until {}: {}",
        args.tenant,
        allowance["until"].as_str().unwrap_or_default(),
        allowance["reason"].as_str().unwrap_or_default()
    );
    Ok(0)
}

async fn adopt(args: AdoptArgs) -> anyhow::Result<u8> {
    let dir = args.path.config_dir(&args.dir);
    let validated = super::load(&dir)?;
    // Like `plan`, adopt only reads the database.
    let pool = store::connect_existing(args.database.database_url.expose()).await?;
    let mut conn = pool.acquire().await?;
    let mut live = store::load_live(&mut conn).await?;
    let inspect = plan::tenants_to_inspect(&plan::desired_tenants(&validated), &live);
    live.details = store::load_details(&mut conn, &inspect).await?;
    let planned = plan::diff(&validated, &live, Options::default());
    if let Some(tenant) = &args.tenant {
        let known = validated.desired.tenants.iter().any(|t| t.name.as_str() == tenant);
        anyhow::ensure!(known, "no valid tenant `{tenant}` is declared in {}", dir.display());
    }

    let mut by_file: BTreeMap<String, Vec<Adoption>> = BTreeMap::new();
    for adoption in adopt::adoptions(&planned, &validated, &live, args.tenant.as_deref()) {
        by_file.entry(adoption.file.clone()).or_default().push(adoption);
    }
    let (mut adopted, mut by_hand) = (0, 0);
    for (file, adoptions) in by_file {
        let path = dir.join(&file);
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let (edited, outcomes) = adopt::adopt_file(&text, adoptions);
        if edited != text {
            std::fs::write(&path, &edited).with_context(|| format!("cannot write {}", path.display()))?;
        }
        for outcome in outcomes {
            let what = describe(&outcome.adoption);
            match outcome.result {
                Ok(line) => {
                    adopted += 1;
                    println!("{file}:{line}: adopted {what}");
                }
                Err(todo) => {
                    by_hand += 1;
                    println!("{file}: adopt by hand: {what}: {todo}");
                }
            }
        }
    }
    if adopted + by_hand == 0 {
        println!("no drift to adopt");
        return Ok(0);
    }
    println!(
        "adopted {adopted} drifted values, {by_hand} to adopt by hand; review with `git diff` and commit them as a pull request"
    );
    Ok(if by_hand > 0 { 1 } else { 0 })
}

fn describe(adoption: &Adoption) -> String {
    match &adoption.edit {
        adopt::Edit::Field { field, applied, live } => format!("{} {field}: {applied} → {live}", adoption.resource),
        adopt::Edit::AddUser { .. } => format!("{} (created outside Git)", adoption.resource),
        adopt::Edit::RemovedUser => format!("{} (deleted outside Git)", adoption.resource),
    }
}
