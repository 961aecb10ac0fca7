//! `gatehouse apps …` and `gatehouse keys …`: managed applications and their API keys, on a running
//! server (operator token). Text for people, `--format json` for scripts.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::ReportFormat;
use super::client::{ServerArgs, table, text, when};

#[derive(Debug, Args)]
pub struct AppsArgs {
    #[command(subcommand)]
    pub command: AppsCommand,
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text, global = true)]
    pub format: ReportFormat,
}

#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// List applications.
    List,
    /// Show one application.
    Show { name: String },
    /// Register an application (applications declared in Git are managed there).
    Create {
        name: String,
        #[arg(long)]
        display_name: String,
        /// Owner's email address.
        #[arg(long)]
        owner: String,
        /// Scopes its keys may have (repeat, or comma-separated): flags:read, usage:write, usage:read,
        /// audit:write, auth:introspect.
        #[arg(long = "scope", value_delimiter = ',')]
        scopes: Vec<String>,
    },
    /// Change an application registered through the API.
    Update {
        name: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long = "scope", value_delimiter = ',')]
        scopes: Option<Vec<String>>,
    },
    /// Disable an application: its keys are refused at once, on every replica.
    Disable { name: String },
    /// Enable a disabled application.
    Enable { name: String },
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text, global = true)]
    pub format: ReportFormat,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a key; its secret is printed this once.
    Create {
        /// The application the key is for.
        #[arg(long)]
        app: String,
        /// Default: every scope of the application.
        #[arg(long = "scope", value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        /// Such as 90d; default: no expiry.
        #[arg(long)]
        expires_in: Option<String>,
        /// A label, such as where the key is used.
        #[arg(long)]
        name: Option<String>,
    },
    /// List an application's keys (never their secrets).
    List {
        #[arg(long)]
        app: String,
    },
    /// Revoke a key: refused at once, on every replica.
    Revoke {
        #[arg(long)]
        app: String,
        /// The key id (the part after `gatehouse_`).
        key: String,
    },
    /// Issue a replacement; the old key keeps working for the grace period.
    Rotate {
        #[arg(long)]
        app: String,
        key: String,
        /// Such as 24h (the default) or 0s.
        #[arg(long)]
        grace_period: Option<String>,
    },
}

pub fn apps(args: AppsArgs) -> anyhow::Result<u8> {
    let server = &args.server;
    let set_status =
        |name: &str, status: &str| server.call("PATCH", &app_path(name), Some(json!({ "status": status })));
    let body = match &args.command {
        AppsCommand::List => server.get("/v1/apps")?,
        AppsCommand::Show { name } => server.get(&app_path(name))?,
        AppsCommand::Create { name, display_name, owner, scopes } => server.call(
            "POST",
            "/v1/apps",
            Some(json!({ "name": name, "displayName": display_name, "owner": owner, "scopes": scopes })),
        )?,
        AppsCommand::Update { name, display_name, owner, scopes } => server.call(
            "PATCH",
            &app_path(name),
            Some(json!({ "displayName": display_name, "owner": owner, "scopes": scopes })),
        )?,
        AppsCommand::Disable { name } => set_status(name, "disabled")?,
        AppsCommand::Enable { name } => set_status(name, "active")?,
    };
    match args.format {
        ReportFormat::Json => println!("{body:#}"),
        ReportFormat::Text => match body["applications"].as_array() {
            Some(apps) => print!("{}", apps_table(apps)),
            None => print!("{}", apps_table(std::slice::from_ref(&body))),
        },
    }
    Ok(0)
}

pub fn keys(args: KeysArgs) -> anyhow::Result<u8> {
    let server = &args.server;
    let body = match &args.command {
        KeysCommand::Create { app, scopes, expires_in, name } => server.call(
            "POST",
            &format!("{}/keys", app_path(app)),
            Some(json!({ "scopes": scopes, "expiresIn": expires_in, "name": name })),
        )?,
        KeysCommand::List { app } => server.get(&format!("{}/keys", app_path(app)))?,
        KeysCommand::Revoke { app, key } => server.call("DELETE", &key_path(app, key), None)?,
        KeysCommand::Rotate { app, key, grace_period } => server.call(
            "POST",
            &format!("{}/rotate", key_path(app, key)),
            Some(json!({ "gracePeriod": grace_period })),
        )?,
    };
    if let ReportFormat::Json = args.format {
        println!("{body:#}");
        return Ok(0);
    }
    match &args.command {
        KeysCommand::List { .. } => print!("{}", keys_table(body["keys"].as_array().map_or(&[], Vec::as_slice))),
        KeysCommand::Create { .. } => print!("{}", issued_text(&body)),
        KeysCommand::Rotate { .. } => {
            print!("{}", issued_text(&body["key"]));
            println!(
                "previous key {} works until {}",
                text(&body["previous"]["id"]),
                text(&body["previous"]["expiresAt"])
            );
        }
        KeysCommand::Revoke { .. } => println!("revoked key {} at {}", text(&body["id"]), text(&body["revokedAt"])),
    }
    Ok(0)
}

fn app_path(name: &str) -> String {
    format!("/v1/apps/{name}")
}

fn key_path(app: &str, key: &str) -> String {
    let key = key.strip_prefix(crate::delivery::key::PREFIX).map_or(key, |rest| rest.split('_').next().unwrap_or(rest));
    format!("/v1/apps/{app}/keys/{key}")
}

fn apps_table(apps: &[Value]) -> String {
    let columns = [("NAME", 24), ("STATUS", 9), ("FROM", 5), ("ID", 36), ("SCOPES", 0)];
    table(&columns, apps, |app| {
        vec![text(&app["name"]), text(&app["status"]), text(&app["managedBy"]), text(&app["id"]), text(&app["scopes"])]
    })
}

fn keys_table(keys: &[Value]) -> String {
    let columns = [("KEY", 14), ("STATE", 8), ("CREATED", 21), ("EXPIRES", 21), ("LAST USED", 21), ("SCOPES", 0)];
    table(&columns, keys, |key| {
        let state = if !key["revokedAt"].is_null() { "revoked" } else { "active" };
        vec![
            text(&key["id"]),
            state.to_owned(),
            when(&key["createdAt"]),
            when(&key["expiresAt"]),
            when(&key["lastUsedAt"]),
            text(&key["scopes"]),
        ]
    })
}

fn issued_text(key: &Value) -> String {
    format!(
        "key id:  {}\nscopes:  {}\nexpires: {}\nsecret:  {}\n\nStore the secret now: it is not shown again.\n",
        text(&key["id"]),
        text(&key["scopes"]),
        text(&key["expiresAt"]),
        text(&key["secret"])
    )
}
