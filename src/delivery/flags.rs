//! A tenant's resolved flags (plan defaults overridden by the tenant's own), rendered once per change
//! into every body the API serves, each with its strong ETag. Requests clone reference-counted bytes.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::http::HeaderValue;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::model::FlagType;

/// Where a resolved value comes from; also its OFREP variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagSource {
    Plan,
    Tenant,
}

impl FlagSource {
    fn as_str(self) -> &'static str {
        match self {
            Self::Plan => "plan",
            Self::Tenant => "tenant",
        }
    }

    /// OFREP reason: a plan default is static; a tenant's own value is chosen by the context's tenant.
    fn ofrep_reason(self) -> &'static str {
        match self {
            Self::Plan => "STATIC",
            Self::Tenant => "TARGETING_MATCH",
        }
    }
}

/// A body and its strong ETag.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub body: Bytes,
    pub etag: HeaderValue,
}

// The bodies, as the OpenAPI document names them. Fields are in alphabetical order, the order the
// bodies had when they were built as JSON maps, so the bytes and versions stay the same.

/// `GET /v1/tenants/{tenant}/flags`: the tenant's resolved flags.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TenantFlagsBody {
    /// Every flag by key.
    pub flags: BTreeMap<String, ResolvedFlag>,
    #[schema(example = "acme")]
    pub tenant: String,
    /// Equal flags, equal version, on every replica (the ETag).
    pub version: String,
}

/// A flag's value for a tenant, and where it comes from.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ResolvedFlag {
    /// `plan` (the plan's default) or `tenant` (the tenant's own).
    #[schema(example = "plan")]
    pub source: &'static str,
    /// `boolean`, `integer`, `float`, `string` or `object`.
    #[serde(rename = "type")]
    #[schema(example = "boolean")]
    pub kind: String,
    pub value: Value,
}

/// An OpenFeature Remote Evaluation Protocol evaluation of one flag.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OfrepEvaluation {
    pub key: String,
    pub metadata: OfrepFlagMetadata,
    /// `STATIC` (a plan's default) or `TARGETING_MATCH` (the tenant's own value).
    pub reason: &'static str,
    pub value: Value,
    /// `plan` or `tenant`.
    pub variant: &'static str,
}

/// What an evaluation says beyond OFREP's fields.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OfrepFlagMetadata {
    pub source: &'static str,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: String,
}

/// OFREP bulk evaluation: every flag of the tenant, and where its changes stream.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfrepBulk {
    pub event_streams: Vec<EventStream>,
    pub flags: Vec<OfrepEvaluation>,
    pub metadata: OfrepBulkMetadata,
}

/// Where a client hears of changes instead of polling.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventStream {
    pub inactivity_delay_sec: u32,
    /// `sse`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub url: String,
}

/// The tenant and version of a bulk evaluation.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OfrepBulkMetadata {
    pub tenant: String,
    pub version: String,
}

/// What the live rows say of one tenant.
#[derive(Debug, Clone)]
pub struct TenantFlagsRow {
    pub name: String,
    pub active: bool,
    pub applications: Vec<String>,
    pub plan_flags: Value,
    pub overrides: Value,
}

/// One tenant as the flag endpoints serve it.
#[derive(Debug)]
pub struct TenantFlags {
    pub name: Box<str>,
    pub active: bool,
    /// Applications whose keys may read this tenant (the tenant's `applications`).
    pub applications: Box<[Box<str>]>,
    /// Hash of the resolved flags: equal flags, equal version, on every replica.
    pub version: Box<str>,
    /// `GET /v1/tenants/{tenant}/flags`.
    pub rest: Rendered,
    /// `POST /ofrep/v1/evaluate/flags`.
    pub ofrep_bulk: Rendered,
    /// `POST /ofrep/v1/evaluate/flags/{key}`, by key.
    pub ofrep_single: HashMap<Box<str>, Bytes>,
}

impl TenantFlags {
    /// Resolves and renders `row`. `events_url` is where this tenant's change stream is served.
    pub fn build(row: TenantFlagsRow, events_url: &str) -> Self {
        let resolved = resolve(&row.plan_flags, &row.overrides);
        let flags: BTreeMap<String, ResolvedFlag> = resolved
            .iter()
            .map(|(key, (value, source))| {
                let flag = ResolvedFlag { source: source.as_str(), kind: type_of(value), value: value.clone() };
                (key.clone(), flag)
            })
            .collect();
        let version = hex::encode(&Sha256::digest(serde_json::to_vec(&flags).unwrap_or_default())[..12]);
        let evaluation = |key: &str, value: &Value, source: FlagSource| OfrepEvaluation {
            key: key.to_owned(),
            metadata: OfrepFlagMetadata { source: source.as_str(), kind: type_of(value), version: version.clone() },
            reason: source.ofrep_reason(),
            value: value.clone(),
            variant: source.as_str(),
        };
        let ofrep_single = resolved
            .iter()
            .map(|(key, (value, source))| (key.as_str().into(), to_bytes(&evaluation(key, value, *source))))
            .collect();
        let bulk = OfrepBulk {
            event_streams: vec![EventStream { inactivity_delay_sec: 120, kind: "sse", url: events_url.to_owned() }],
            flags: resolved.iter().map(|(k, (v, s))| evaluation(k, v, *s)).collect(),
            metadata: OfrepBulkMetadata { tenant: row.name.clone(), version: version.clone() },
        };
        let rest = TenantFlagsBody { flags, tenant: row.name.clone(), version: version.clone() };
        TenantFlags {
            active: row.active,
            applications: row.applications.into_iter().map(String::into_boxed_str).collect(),
            rest: Rendered { body: to_bytes(&rest), etag: etag(&format!("\"{version}\"")) },
            ofrep_bulk: Rendered { body: to_bytes(&bulk), etag: etag(&format!("\"ofrep-{version}\"")) },
            ofrep_single,
            version: version.into(),
            name: row.name.into(),
        }
    }

    /// Whether `app`'s keys may read this tenant.
    pub fn open_to(&self, app: &str) -> bool {
        self.applications.iter().any(|a| &**a == app)
    }
}

/// Plan defaults, then the tenant's own values over them, sorted by key.
fn resolve(plan_flags: &Value, overrides: &Value) -> BTreeMap<String, (Value, FlagSource)> {
    let mut resolved = BTreeMap::new();
    for (flags, source) in [(plan_flags, FlagSource::Plan), (overrides, FlagSource::Tenant)] {
        if let Value::Object(map) = flags {
            for (key, value) in map {
                resolved.insert(key.clone(), (value.clone(), source));
            }
        }
    }
    resolved
}

fn type_of(value: &Value) -> String {
    FlagType::of(value).map_or("object".to_owned(), |t| t.to_string())
}

fn to_bytes(value: &impl serde::Serialize) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

fn etag(quoted: &str) -> HeaderValue {
    // Hex digits and quotes only, always a valid header value.
    HeaderValue::from_str(quoted).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// `If-None-Match` against our ETag, with the weak comparison RFC 9110 §13.1.2 prescribes: a list,
/// `W/` prefixes and `*` are understood.
pub fn not_modified(if_none_match: Option<&HeaderValue>, etag: &HeaderValue) -> bool {
    let Some(header) = if_none_match else { return false };
    if header == etag {
        return true;
    }
    let Ok(header) = header.to_str() else { return false };
    let ours = etag.as_bytes();
    header.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/").as_bytes() == ours)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(plan: Value, overrides: Value) -> TenantFlagsRow {
        TenantFlagsRow {
            name: "acme".into(),
            active: true,
            applications: vec!["billing".into()],
            plan_flags: plan,
            overrides,
        }
    }

    #[test]
    fn tenant_values_override_plan_defaults() {
        let t = TenantFlags::build(
            row(json!({"a": true, "b": 10}), json!({"b": 20, "c": "x"})),
            "http://h/v1/tenants/acme/flags/events",
        );
        let body: Value = serde_json::from_slice(&t.rest.body).expect("json");
        assert_eq!(body["flags"]["a"], json!({"value": true, "type": "boolean", "source": "plan"}));
        assert_eq!(body["flags"]["b"], json!({"value": 20, "type": "integer", "source": "tenant"}));
        assert_eq!(body["flags"]["c"]["source"], "tenant");
        let single: Value = serde_json::from_slice(&t.ofrep_single["b"]).expect("json");
        assert_eq!(single["value"], 20);
        assert_eq!(single["reason"], "TARGETING_MATCH");
        let bulk: Value = serde_json::from_slice(&t.ofrep_bulk.body).expect("json");
        assert_eq!(bulk["flags"].as_array().map(Vec::len), Some(3));
        assert_eq!(bulk["eventStreams"][0]["url"], "http://h/v1/tenants/acme/flags/events");
    }

    /// The typed bodies serialize as the JSON maps they replaced did (keys in order), so versions
    /// and ETags did not change with them.
    #[test]
    fn the_bodies_keep_their_bytes_and_version() {
        let t = TenantFlags::build(row(json!({"a": true}), json!({"b": 2})), "http://h/e");
        let flags = json!({ "a": { "value": true, "type": "boolean", "source": "plan" },
                            "b": { "value": 2, "type": "integer", "source": "tenant" } });
        let version = hex::encode(&Sha256::digest(serde_json::to_vec(&flags).expect("json"))[..12]);
        let rest = json!({ "tenant": "acme", "version": version, "flags": flags });
        assert_eq!(t.rest.body, serde_json::to_vec(&rest).expect("json"));
        let single = json!({ "key": "b", "value": 2, "reason": "TARGETING_MATCH", "variant": "tenant",
                             "metadata": { "source": "tenant", "type": "integer", "version": version } });
        assert_eq!(t.ofrep_single["b"], serde_json::to_vec(&single).expect("json"));
    }

    #[test]
    fn equal_flags_have_equal_etags_and_a_change_changes_them() {
        let a = TenantFlags::build(row(json!({"a": true}), json!({})), "u");
        let b = TenantFlags::build(row(json!({"a": true}), json!({})), "u");
        let c = TenantFlags::build(row(json!({"a": true}), json!({"a": false})), "u");
        assert_eq!(a.rest.etag, b.rest.etag);
        assert_ne!(a.rest.etag, c.rest.etag);
        assert_ne!(a.rest.etag, a.ofrep_bulk.etag);
    }

    #[test]
    fn if_none_match_understands_lists_weak_tags_and_star() {
        let ours = HeaderValue::from_static("\"abc\"");
        let check = |h: &'static str| not_modified(Some(&HeaderValue::from_static(h)), &ours);
        assert!(check("\"abc\""));
        assert!(check("\"x\", W/\"abc\""));
        assert!(check("*"));
        assert!(!check("\"abd\""));
        assert!(!not_modified(None, &ours));
    }
}
