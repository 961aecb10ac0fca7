//! Settings of sign-in, sessions and mail (shared by `serve` and `mail`), and `gatehouse mail list`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::DatabaseArgs;
use crate::identity::sealed::Keyring;
use crate::identity::{Lockout, Settings};
use crate::source::Secret;
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
/// development without SMTP: the invitation and reset links are there).
pub async fn list(args: MailArgs) -> anyhow::Result<u8> {
    let pool = store::connect(args.database.database_url.expose()).await?;
    let keyring = args.keys.keyring()?;
    let to = args.to.as_deref().map(str::to_lowercase);
    let rows = store::mail::list(&pool, to.as_deref(), !args.all, args.limit).await?;
    let mut items = Vec::new();
    for row in rows {
        let bodies = crate::mail::open(&keyring, &row);
        let text = match &bodies {
            Ok(Some(bodies)) => Some(bodies.text.clone()),
            Ok(None) => None,
            Err(error) => Some(format!("(cannot open: {error})")),
        };
        items.push((row, text));
    }
    match args.format {
        super::ReportFormat::Json => {
            let json: Vec<_> = items
                .iter()
                .map(|(row, text)| {
                    let mut value = serde_json::to_value(row).unwrap_or_default();
                    value["text"] = serde_json::json!(text);
                    value
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "mail": json }))?);
        }
        super::ReportFormat::Text => {
            if items.is_empty() {
                println!("no mail");
            }
            for (row, text) in items {
                let state = match (row.sent_at, row.failed_at) {
                    (Some(at), _) => format!("delivered {}", at.format("%Y-%m-%d %H:%M:%S")),
                    (None, Some(at)) => {
                        format!("abandoned {} ({})", at.format("%Y-%m-%d %H:%M:%S"), row.last_error.unwrap_or_default())
                    }
                    (None, None) => format!("waiting since {}", row.created_at.format("%Y-%m-%d %H:%M:%S")),
                };
                println!("To: {}\nSubject: {}\nState: {state}\n", row.recipient, row.subject);
                if let Some(text) = text {
                    println!("{text}");
                }
                println!("{}", "-".repeat(72));
            }
        }
    }
    Ok(0)
}
