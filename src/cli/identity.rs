//! Settings of sign-in, sessions and mail (shared by `serve` and `mail`), and `gatehouse mail list`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::DatabaseArgs;
use crate::identity::{Lockout, Settings};
use crate::secret::Secret;
use crate::secret::sealed::Keyring;
use crate::store;
use crate::store::identity::SessionTimes;

fn secret(value: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(value.to_owned()))
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    /// AEAD keys that seal TOTP secrets and unsent mail: `<id>:<base64 of 32 bytes>`, comma-separated,
    /// the first sealing (add a new key in front to rotate). Unset: a development key kept in
    /// ~/.local/share/gatehouse/dev-encryption.key (never use that in production).
    #[arg(long, env = "GATEHOUSE_ENCRYPTION_KEY", hide_env_values = true, value_parser = secret)]
    pub encryption_key: Option<Secret>,
}

impl KeyArgs {
    pub fn keyring(&self) -> anyhow::Result<Arc<Keyring>> {
        let ring = match &self.encryption_key {
            Some(keys) => Keyring::parse(keys.expose())?,
            None => {
                let path = dev_key_path();
                tracing::warn!(path = %path.display(), "GATEHOUSE_ENCRYPTION_KEY is not set: using a development key");
                Keyring::development(&path)?
            }
        };
        Ok(Arc::new(ring))
    }
}

fn dev_key_path() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("gatehouse/dev-encryption.key")
}

fn duration(text: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(text)
}

#[derive(Debug, Args)]
pub struct IdentityArgs {
    #[command(flatten)]
    pub keys: KeyArgs,
    /// A session ends after this long without use.
    #[arg(long, env = "GATEHOUSE_SESSION_IDLE_TIMEOUT", default_value = "30m", value_parser = duration)]
    pub session_idle_timeout: Duration,
    /// A session ends this long after sign-in, used or not.
    #[arg(long, env = "GATEHOUSE_SESSION_MAX_LIFETIME", default_value = "12h", value_parser = duration)]
    pub session_max_lifetime: Duration,
    /// How long an access token lives; the refresh token gets a new one.
    #[arg(long, env = "GATEHOUSE_ACCESS_TOKEN_TTL", default_value = "15m", value_parser = duration)]
    pub access_token_ttl: Duration,
    /// A spent refresh token presented again within this window (a client's retry, or a parallel
    /// refresh that lost the race) gets the same pair it was exchanged for; later, it ends the whole
    /// session.
    #[arg(long, env = "GATEHOUSE_REFRESH_REUSE_GRACE", default_value = "5s", value_parser = duration)]
    pub refresh_reuse_grace: Duration,
    #[arg(long, env = "GATEHOUSE_INVITATION_TTL", default_value = "7d", value_parser = duration)]
    pub invitation_ttl: Duration,
    #[arg(long, env = "GATEHOUSE_PASSWORD_RESET_TTL", default_value = "30m", value_parser = duration)]
    pub password_reset_ttl: Duration,
    /// Failed sign-ins of one account before it is locked.
    #[arg(long, env = "GATEHOUSE_LOCKOUT_THRESHOLD", default_value_t = 5)]
    pub lockout_threshold: u32,
    /// The first lock; each further failure doubles it.
    #[arg(long, env = "GATEHOUSE_LOCKOUT_DELAY", default_value = "30s", value_parser = duration)]
    pub lockout_delay: Duration,
    #[arg(long, env = "GATEHOUSE_LOCKOUT_MAX_DELAY", default_value = "15m", value_parser = duration)]
    pub lockout_max_delay: Duration,
    /// Requests per minute one client IP may make to each sign-in route (login, refresh, forgot,
    /// reset, accept, MFA), counted across replicas.
    #[arg(long, env = "GATEHOUSE_AUTH_IP_LIMIT", default_value_t = 60)]
    pub auth_ip_limit: u32,
    /// Owners must enrol TOTP before they can do anything else.
    #[arg(long, env = "GATEHOUSE_OWNERS_NEED_MFA", default_value_t = true, action = clap::ArgAction::Set)]
    pub owners_need_mfa: bool,
    /// SMTP relay for invitations and password resets: smtp://host:port (STARTTLS when offered),
    /// smtp://host:port?tls=required, smtps://user:password@host. Unset: mail stays in the outbox
    /// (`gatehouse mail list`).
    #[arg(long, env = "GATEHOUSE_SMTP_URL", hide_env_values = true, value_parser = secret)]
    pub smtp_url: Option<Secret>,
    #[arg(long, env = "GATEHOUSE_MAIL_FROM", default_value = "Gatehouse <gatehouse@localhost>")]
    pub mail_from: String,
}

impl IdentityArgs {
    pub fn settings(&self, public_url: &str) -> Settings {
        Settings {
            times: SessionTimes {
                access_ttl: self.access_token_ttl.min(self.session_idle_timeout),
                idle: self.session_idle_timeout,
                absolute: self.session_max_lifetime,
                refresh_grace: self.refresh_reuse_grace,
            },
            invitation_ttl: self.invitation_ttl,
            reset_ttl: self.password_reset_ttl,
            lockout: Lockout {
                threshold: self.lockout_threshold.max(1),
                base: self.lockout_delay,
                max: self.lockout_max_delay,
            },
            ip_limit_per_minute: self.auth_ip_limit,
            owners_need_mfa: self.owners_need_mfa,
            public_url: public_url.to_owned(),
        }
    }
}

#[derive(Debug, Args)]
pub struct MailArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    keys: KeyArgs,
    /// Ask this running server (`GET /v1/mail/outbox`) instead of reading the database.
    #[arg(long, env = "GATEHOUSE_SERVER")]
    server: Option<String>,
    /// The bearer token for `--server`: an operator's token from the identity provider, or the
    /// bootstrap operator token. Unset, GATEHOUSE_OPERATOR_TOKEN is used.
    #[arg(long, alias = "operator-token", env = "GATEHOUSE_TOKEN", hide_env_values = true, value_parser = secret)]
    token: Option<Secret>,
    /// Only mail to this address.
    #[arg(long)]
    to: Option<String>,
    /// Also show delivered and abandoned mail (their bodies are gone).
    #[arg(long)]
    all: bool,
    #[arg(long, default_value_t = 20)]
    limit: i64,
    #[arg(long, value_enum, default_value_t = super::ReportFormat::Text)]
    format: super::ReportFormat,
}

/// `gatehouse mail list`: the outbox, newest first, with the bodies of undelivered mail (local
/// development without SMTP: the invitation and reset links are there). It reads: it never creates
/// or migrates a database, so a mistyped URL is an error, not an empty outbox.
pub async fn list(args: MailArgs) -> anyhow::Result<u8> {
    let items = match &args.server {
        Some(server) => {
            let client = super::client::ServerArgs { server: server.clone(), token: args.token.clone() };
            let mut path = format!("/v1/mail/outbox?limit={}&all={}", args.limit, args.all);
            if let Some(to) = &args.to {
                path.push_str(&format!("&to={}", query_value(to)));
            }
            let body = tokio::task::spawn_blocking(move || client.get(&path)).await??;
            body["mail"].as_array().cloned().unwrap_or_default()
        }
        None => {
            let pool = store::connect_existing(args.database.database_url.expose()).await?;
            let keyring = args.keys.keyring()?;
            let to = args.to.as_deref().map(str::to_lowercase);
            let rows = store::mail::list(&pool, to.as_deref(), !args.all, args.limit).await?;
            let listed = crate::mail::listing(&keyring, rows);
            listed.iter().map(serde_json::to_value).collect::<Result<Vec<_>, _>>()?
        }
    };
    match args.format {
        super::ReportFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "mail": items }))?);
        }
        super::ReportFormat::Text => {
            if items.is_empty() {
                println!("no mail");
            }
            for item in items {
                let text = |key: &str| item[key].as_str().unwrap_or_default().to_owned();
                let state = match (when(&item["sentAt"]), when(&item["failedAt"])) {
                    (Some(at), _) => format!("delivered {at}"),
                    (None, Some(at)) => format!("abandoned {at} ({})", text("lastError")),
                    (None, None) => format!("waiting since {}", when(&item["createdAt"]).unwrap_or_default()),
                };
                println!("To: {}\nSubject: {}\nState: {state}\n", text("recipient"), text("subject"));
                if let Some(body) = item["text"].as_str() {
                    println!("{body}");
                }
                println!("{}", "-".repeat(72));
            }
        }
    }
    Ok(0)
}

/// A timestamp of the outbox, as `2024-05-01 12:00:00`.
fn when(value: &serde_json::Value) -> Option<String> {
    let at = chrono::DateTime::parse_from_rfc3339(value.as_str()?).ok()?;
    Some(at.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S").to_string())
}

/// Percent-encodes a query parameter value.
fn query_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
