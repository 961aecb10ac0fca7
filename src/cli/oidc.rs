//! `serve` flags of the external identity provider platform operators sign in through, named as the
//! Kubernetes API server names its OIDC authenticator's.

use std::time::Duration;

use clap::Args;

use crate::operators::settings::{self, GroupBinding, OidcSettings, RequiredClaim, SigningAlg};

#[derive(Debug, Args)]
#[command(next_help_heading = "Operators signed in through an OIDC identity provider")]
pub struct OidcArgs {
    /// The identity provider's issuer URL, exactly as its tokens' `iss` says; its keys come through
    /// <issuer>/.well-known/openid-configuration. https (http only on 127.0.0.1, ::1 or localhost).
    /// Unset: only the bootstrap operator token is accepted.
    #[arg(long, env = "GATEHOUSE_OIDC_ISSUER_URL", requires = "oidc_audience")]
    pub oidc_issuer_url: Option<String>,
    /// The client id Gatehouse's tokens are issued to: tokens whose `aud` lacks it are refused.
    #[arg(long, env = "GATEHOUSE_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// The claim that names the operator in the audit log. `email` counts only with
    /// `email_verified` true.
    #[arg(long, env = "GATEHOUSE_OIDC_USERNAME_CLAIM", default_value = "sub")]
    pub oidc_username_claim: String,
    /// The claim that lists the operator's groups (an array of strings or one string).
    #[arg(long, env = "GATEHOUSE_OIDC_GROUPS_CLAIM", default_value = "groups")]
    pub oidc_groups_claim: String,
    /// `claim=value` the token must carry, such as hd=example.com (repeat, or comma-separated).
    #[arg(long = "oidc-required-claim", env = "GATEHOUSE_OIDC_REQUIRED_CLAIMS", value_delimiter = ',', value_parser = settings::parse_required_claim)]
    pub oidc_required_claims: Vec<RequiredClaim>,
    /// Signature algorithms accepted: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA
    /// (never `none` or HMAC).
    #[arg(long, env = "GATEHOUSE_OIDC_SIGNING_ALGS", value_delimiter = ',', default_value = "RS256", value_parser = settings::parse_signing_alg)]
    pub oidc_signing_algs: Vec<SigningAlg>,
    /// `group=operator` or `group=auditor` (repeat, or comma-separated). A token none of whose
    /// groups is bound is refused; operator wins when both are.
    #[arg(long = "oidc-group-binding", env = "GATEHOUSE_OIDC_GROUP_BINDINGS", value_delimiter = ',', value_parser = settings::parse_group_binding)]
    pub oidc_group_bindings: Vec<GroupBinding>,
    /// How far the provider's clock may be off ours when checking `exp`, `nbf` and `iat`.
    #[arg(long, env = "GATEHOUSE_OIDC_CLOCK_LEEWAY", default_value = "30s", value_parser = humantime::parse_duration)]
    pub oidc_clock_leeway: Duration,
    /// A token signed by a key Gatehouse has not seen makes it fetch the provider's keys at once,
    /// but at most once in this window, whatever the tokens name.
    #[arg(long, env = "GATEHOUSE_OIDC_JWKS_MIN_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub oidc_jwks_min_interval: Duration,
    /// The secret of Gatehouse's client (`--oidc-audience`) at the provider: with it, operators
    /// and auditors also sign in in a browser (`/console/login`; register
    /// `<public URL>/console/login/callback` as a redirect URI of the client).
    #[arg(long, env = "GATEHOUSE_OIDC_CLIENT_SECRET", hide_env_values = true, value_parser = super::serve::secret, requires = "oidc_issuer_url")]
    pub oidc_client_secret: Option<crate::secret::Secret>,
    /// How long a browser's platform session lasts at most, whatever the person does.
    #[arg(long, env = "GATEHOUSE_OIDC_BROWSER_SESSION", default_value = "8h", value_parser = humantime::parse_duration)]
    pub oidc_browser_session: Duration,
}

impl OidcArgs {
    /// The settings, when an issuer is configured.
    pub fn settings(&self) -> Option<OidcSettings> {
        let issuer_url = self.oidc_issuer_url.clone()?;
        Some(OidcSettings {
            issuer_url,
            audience: self.oidc_audience.clone().unwrap_or_default(),
            username_claim: self.oidc_username_claim.clone(),
            groups_claim: self.oidc_groups_claim.clone(),
            required_claims: self.oidc_required_claims.clone(),
            signing_algs: self.oidc_signing_algs.clone(),
            group_bindings: self.oidc_group_bindings.clone(),
            clock_leeway: self.oidc_clock_leeway,
            jwks_min_interval: self.oidc_jwks_min_interval,
        })
    }
}
