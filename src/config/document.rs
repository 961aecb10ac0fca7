//! The config-repo format as written by people: one `Document` per YAML document. These serde types
//! are the single source of the JSON Schemas in `schemas/` (see `schema.rs`); they hold raw strings
//! so that `validate.rs` can report every semantic problem at once instead of stopping at the first.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::model::{AppStatus, ClientType, OnLimit, Role, Scope, TenantStatus, UserStatus, WriteBackMode};

/// The only API version so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum ApiVersion {
    #[serde(rename = "gatehouse.dev/v1")]
    V1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum Kind {
    Tenant,
    Plan,
    Application,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "Tenant",
            Self::Plan => "Plan",
            Self::Application => "Application",
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// The resource's unique name: a DNS label (lowercase letters, digits, '-').
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"))]
    pub name: String,
}

/// A customer organisation with its users, its flag overrides and its sync policy.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TenantSpec {
    /// Human-readable name, shown in consoles and emails.
    #[schemars(length(min = 1, max = 200))]
    pub display_name: String,
    /// The name of a `Plan` declared in this repository.
    pub plan: String,
    #[serde(default)]
    pub status: TenantStatus,
    #[serde(default)]
    pub sync: SyncSpec,
    /// Overrides the plan's budget.
    pub budget: Option<BudgetSpec>,
    /// OIDC federation with the tenant's own identity provider.
    pub sso: Option<SsoSpec>,
    /// Names of `Application`s this tenant uses.
    #[serde(default)]
    pub applications: Vec<String>,
    #[serde(default)]
    pub users: Vec<UserSpec>,
    /// Overrides of the plan's flag defaults; each must be declared by the plan, with the same type.
    #[serde(default, deserialize_with = "super::unique::flags")]
    pub flags: BTreeMap<String, RawFlagValue>,
}

/// The reconciler's policy for this tenant. Both default to `true`: Git is the source of truth.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SyncSpec {
    /// Revert changes made outside Git on the next pass (default true).
    pub self_heal: Option<bool>,
    /// Delete users and flags removed from Git (default true); when false they are reported as orphans.
    pub prune: Option<bool>,
    /// Let tenant admins and operators change this tenant, its users and its flags through the API
    /// and the consoles. `false` (default): such changes are refused with 409, naming this file.
    /// `true`: they are made and show as drift with their name; `selfHeal` decides whether the next
    /// pass reverts them. `writeBack`: each becomes a commit of this file (see `writeBack`).
    pub interactive_edits: Option<InteractiveEdits>,
    /// With `interactiveEdits: writeBack`: `direct` (default) commits to the tracked branch and
    /// applies at once; `review` commits to a branch of its own, applied once merged.
    pub write_back: Option<WriteBackMode>,
}

/// `sync.interactiveEdits`: a boolean, or `writeBack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(untagged)]
pub enum InteractiveEdits {
    Allowed(bool),
    Written(WriteBackWord),
}

/// The word `writeBack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum WriteBackWord {
    #[serde(rename = "writeBack")]
    WriteBack,
}

impl<'de> Deserialize<'de> for InteractiveEdits {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Edits;
        impl Visitor<'_> for Edits {
            type Value = InteractiveEdits;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false or writeBack")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(InteractiveEdits::Allowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "writeBack" => Ok(InteractiveEdits::Written(WriteBackWord::WriteBack)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        deserializer.deserialize_any(Edits)
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    #[schemars(email)]
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    pub role: Role,
    /// `active` (default) or `disabled`. New users are invited until they set a credential.
    #[serde(default)]
    pub status: UserStatus,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BudgetSpec {
    /// Monthly usage limit in billing units; greater than zero.
    #[schemars(range(min = 1))]
    pub monthly_limit: i64,
    pub on_limit: OnLimit,
    /// Percentages of the limit at which to warn: strictly increasing, each from 1 to 99.
    #[serde(default)]
    pub warn_at: Vec<i64>,
    /// The usage event types the budget counts; every type when absent.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SsoSpec {
    /// The OIDC issuer URL (https).
    #[schemars(regex(pattern = r"^https://[^\s/]+"))]
    pub issuer: String,
    #[schemars(length(min = 1))]
    pub client_id: String,
    /// Where the client secret is read from at run time; it never lives in Git.
    pub client_secret_ref: SecretRefSpec,
    /// The email domains whose users sign in through this provider (the login page routes them).
    #[serde(default)]
    pub domains: Vec<String>,
    /// Refuse passwords for the tenant's users once the provider is active.
    #[serde(default)]
    pub mandatory: bool,
    /// Create unknown users on their first sign-in with this role (`admin` or `user`).
    pub jit_role: Option<Role>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRefSpec {
    /// Name of an environment variable of the Gatehouse process.
    #[schemars(regex(pattern = r"^[A-Z_][A-Z0-9_]*$"))]
    pub env: String,
}

/// A subscription plan: flag defaults and a budget for every tenant on it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlanSpec {
    pub display_name: Option<String>,
    /// Flag defaults. A flag's type (boolean, integer, number, string, object) is fixed here.
    #[serde(default, deserialize_with = "super::unique::flags")]
    pub flags: BTreeMap<String, RawFlagValue>,
    pub budget: Option<BudgetSpec>,
}

/// A managed application that calls Gatehouse with API keys.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApplicationSpec {
    #[schemars(length(min = 1, max = 200))]
    pub display_name: String,
    /// Email of the owning developer or team.
    #[schemars(email)]
    pub owner: String,
    #[serde(default)]
    pub status: AppStatus,
    /// What this application's API keys may do.
    #[serde(default)]
    pub scopes: Vec<Scope>,
    /// Sign tenant users in through Gatehouse (OpenID Connect); the client id is the name.
    pub oidc: Option<OidcClientSpec>,
}

/// An application as an OpenID Connect client of Gatehouse.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OidcClientSpec {
    /// `confidential` (has a secret, set with `POST /v1/apps/{app}/client-secret`) or `public` (PKCE only).
    #[serde(default)]
    pub client_type: ClientType,
    /// The exact URIs authorizations may return to: https, or http on a loopback host.
    #[schemars(length(min = 1))]
    pub redirect_uris: Vec<String>,
    /// The exact URIs `end_session` may return to.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// How its ID tokens are signed: `RS256` (the default) or `EdDSA`.
    #[serde(default)]
    pub id_token_signed_response_alg: crate::model::Alg,
}

/// A flag value as written: checked for its type by the validator. An object with a key written
/// twice, at any depth, is refused (`unique`).
#[derive(Debug, Clone)]
pub struct RawFlagValue(pub serde_json::Value);

impl<'de> Deserialize<'de> for RawFlagValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(super::unique::JsonVisitor).map(RawFlagValue)
    }
}

impl JsonSchema for RawFlagValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FlagValue".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A flag value: boolean, integer, number, string or JSON object.",
            "type": ["boolean", "integer", "number", "string", "object"]
        })
    }
}

/// One parsed YAML document of the config repository.
#[derive(Debug, Clone)]
pub enum Document {
    Tenant { metadata: Metadata, spec: TenantSpec },
    Plan { metadata: Metadata, spec: PlanSpec },
    Application { metadata: Metadata, spec: ApplicationSpec },
}

impl Document {
    pub fn kind(&self) -> Kind {
        match self {
            Self::Tenant { .. } => Kind::Tenant,
            Self::Plan { .. } => Kind::Plan,
            Self::Application { .. } => Kind::Application,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Tenant { metadata, .. } | Self::Plan { metadata, .. } | Self::Application { metadata, .. } => {
                &metadata.name
            }
        }
    }
}

const DOCUMENT_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec"];

/// Spec parsed as soon as `kind` is known, so that its errors keep their line and column. A `spec`
/// written before `kind` is buffered first (still correct, only less precisely located).
enum Spec {
    Tenant(TenantSpec),
    Plan(PlanSpec),
    Application(ApplicationSpec),
    Buffered(serde_yaml::Value),
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(DocumentVisitor)
    }
}

struct DocumentVisitor;

impl<'de> Visitor<'de> for DocumentVisitor {
    type Value = Document;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Gatehouse resource with apiVersion, kind, metadata and spec")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
        let (mut api_version, mut kind, mut metadata, mut spec) = (None::<ApiVersion>, None::<Kind>, None, None);
        let mut seen: Vec<String> = Vec::with_capacity(4);
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(format!("duplicate entry with key \"{key}\"")));
            }
            seen.push(key.clone());
            match key.as_str() {
                "apiVersion" => api_version = Some(map.next_value()?),
                "kind" => kind = Some(map.next_value()?),
                "metadata" => metadata = Some(map.next_value()?),
                "spec" => {
                    spec = Some(match kind {
                        Some(Kind::Tenant) => Spec::Tenant(map.next_value()?),
                        Some(Kind::Plan) => Spec::Plan(map.next_value()?),
                        Some(Kind::Application) => Spec::Application(map.next_value()?),
                        None => Spec::Buffered(map.next_value()?),
                    })
                }
                other => return Err(de::Error::unknown_field(other, DOCUMENT_FIELDS)),
            }
        }
        api_version.ok_or_else(|| de::Error::missing_field("apiVersion"))?;
        let kind = kind.ok_or_else(|| de::Error::missing_field("kind"))?;
        let metadata = metadata.ok_or_else(|| de::Error::missing_field("metadata"))?;
        let spec = spec.ok_or_else(|| de::Error::missing_field("spec"))?;
        Ok(match spec {
            Spec::Tenant(spec) => Document::Tenant { metadata, spec },
            Spec::Plan(spec) => Document::Plan { metadata, spec },
            Spec::Application(spec) => Document::Application { metadata, spec },
            Spec::Buffered(value) => buffered_document(kind, metadata, value).map_err(de::Error::custom)?,
        })
    }
}

fn buffered_document(kind: Kind, metadata: Metadata, value: serde_yaml::Value) -> Result<Document, String> {
    let document = match kind {
        Kind::Tenant => serde_yaml::from_value(value).map(|spec| Document::Tenant { metadata, spec }),
        Kind::Plan => serde_yaml::from_value(value).map(|spec| Document::Plan { metadata, spec }),
        Kind::Application => serde_yaml::from_value(value).map(|spec| Document::Application { metadata, spec }),
    };
    document.map_err(|e| format!("spec: {e}"))
}
