//! Issue 22.1: the operations of the generated OpenAPI document, as the route × actor matrix and
//! the hostile-input suite walk them. Both read every route, who may call it (its security
//! requirements: the roles of `operator` and `session`, the scopes of `apiKey`), its query
//! parameters and a valid-looking body (from its request schema) from here, so a new route needs
//! no line in either suite: its `#[utoipa::path]` says all they need.

use serde_json::{Map, Value, json};

/// One operation of the document.
pub(crate) struct Operation {
    /// Upper case: `GET`, `POST`, …
    pub(crate) method: String,
    /// With the document's parameter names: `/v1/tenants/{tenant}/users/{email}`.
    pub(crate) path: String,
    /// Who may call it; `None` when no credential is asked for.
    pub(crate) security: Option<Vec<Requirement>>,
    pub(crate) query: Vec<String>,
    pub(crate) body: Body,
    pub(crate) errors: Errors,
}

/// One way to call an operation: a security scheme and its roles (or a key's scopes).
pub(crate) struct Requirement {
    pub(crate) scheme: String,
    pub(crate) scopes: Vec<String>,
}

/// What an operation reads from its body.
#[derive(Clone)]
pub(crate) enum Body {
    None,
    /// A JSON object made from the request schema (examples where it gives them), and every
    /// field the schema names, to spoil one at a time.
    Json {
        base: Value,
        fields: Vec<String>,
    },
    /// `application/x-www-form-urlencoded` with these fields.
    Form(Vec<String>),
    /// Whatever the webhook makes of bytes (its schema says nothing).
    Bytes,
}

/// How an operation answers its errors: the JSON envelope, a page (what a browser opens), or the
/// OAuth 2.0 error object (RFC 6749 §5.2, RFC 6750 §3: what an OAuth client library reads).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Errors {
    Envelope,
    Html,
    OAuth,
}

impl Operation {
    /// `METHOD /path/{}/…`.
    pub(crate) fn shape(&self) -> String {
        let segments: Vec<&str> = self.path.split('/').map(|s| if s.starts_with('{') { "{}" } else { s }).collect();
        format!("{} {}", self.method, segments.join("/"))
    }

    /// The roles (or scopes) of `scheme`, if the operation accepts it.
    pub(crate) fn roles(&self, scheme: &str) -> Option<&[String]> {
        let requirements = self.security.as_deref()?;
        requirements.iter().find(|r| r.scheme == scheme).map(|r| r.scopes.as_slice())
    }

    /// A signed webhook: no actor, a signature.
    pub(crate) fn is_webhook(&self) -> bool {
        self.roles("githubSignature").is_some()
    }
}

/// Every operation of the document served at `/openapi.json`, in the order of its paths.
pub(crate) fn operations() -> Vec<Operation> {
    let document: Value = serde_json::from_str(&gatehouse::api::openapi::document()).expect("the document is JSON");
    let schemas = &document["components"]["schemas"];
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(operation) = item.get(method) else { continue };
            let security = operation["security"].as_array().map(|requirements| {
                requirements
                    .iter()
                    .filter_map(Value::as_object)
                    .flat_map(|requirement| requirement.iter())
                    .map(|(scheme, scopes)| Requirement {
                        scheme: scheme.clone(),
                        scopes: scopes
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect(),
                    })
                    .collect()
            });
            let query = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect::<Vec<_>>();
            let mut body = body_of(operation, schemas);
            // An OAuth 2.0 / OpenID endpoint served on GET and POST takes its parameters as a form
            // on POST (RFC 6749 §3.1, OpenID Connect Core §3.1.2.1).
            if method == "post" && matches!(body, Body::None) && item.get("get").is_some() && !query.is_empty() {
                body = Body::Form(query.clone());
            }
            operations.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                security,
                query,
                body,
                errors: errors_of(operation),
            });
        }
    }
    operations
}

fn body_of(operation: &Value, schemas: &Value) -> Body {
    let Some(content) = operation["requestBody"]["content"].as_object() else { return Body::None };
    if let Some(form) = content.get("application/x-www-form-urlencoded") {
        let fields = properties(&form["schema"], schemas).map(|p| p.keys().cloned().collect()).unwrap_or_default();
        return Body::Form(fields);
    }
    let json = content.get("application/json").or_else(|| content.values().next()).expect("a body's content");
    let schema = &json["schema"];
    if schema.as_object().is_none_or(Map::is_empty) {
        return Body::Bytes;
    }
    let mut fields: Vec<String> = properties(schema, schemas).into_iter().flat_map(|p| p.keys()).cloned().collect();
    let base = example(schema, schemas, 0);
    for name in base.as_object().into_iter().flat_map(|o| o.keys()) {
        if !fields.contains(name) {
            fields.push(name.clone());
        }
    }
    Body::Json { base, fields }
}

/// A page on a browser route, the OAuth error object where the document names it, else the envelope.
fn errors_of(operation: &Value) -> Errors {
    let responses = operation["responses"].as_object().into_iter().flatten();
    let mut errors = Errors::Envelope;
    for (_, response) in responses {
        let Some(content) = response["content"].as_object() else { continue };
        if content.contains_key("text/html") {
            return Errors::Html;
        }
        let oauth = |c: &Value| c["schema"]["$ref"].as_str().is_some_and(|r| r.ends_with("/OAuthError"));
        if content.values().any(oauth) {
            errors = Errors::OAuth;
        }
    }
    errors
}

/// The properties of an object schema, or of the first non-null choice of a `oneOf` / `anyOf`
/// (an optional body).
fn properties<'a>(schema: &'a Value, schemas: &'a Value) -> Option<&'a Map<String, Value>> {
    let schema = resolve(schema, schemas);
    let choices = schema["oneOf"].as_array().or_else(|| schema["anyOf"].as_array());
    match choices {
        Some(choices) => properties(choices.iter().find(|c| c["type"] != "null")?, schemas),
        None => schema["properties"].as_object(),
    }
}

fn resolve<'a>(schema: &'a Value, schemas: &'a Value) -> &'a Value {
    match schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => resolve(&schemas[name], schemas),
        None => schema,
    }
}

/// A value the schema accepts: its example where it has one, else one made from its type and
/// format. Every property of an object is filled, so that each can be spoiled in turn.
pub(crate) fn example(schema: &Value, schemas: &Value, depth: usize) -> Value {
    let schema = resolve(schema, schemas);
    if let Some(example) = schema.get("example").or_else(|| schema["examples"].get(0)) {
        return example.clone();
    }
    if depth > 8 {
        return Value::Null;
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(choices) = schema[key].as_array() {
            let choice = choices.iter().find(|c| c["type"] != "null").unwrap_or(&Value::Null);
            return example(choice, schemas, depth + 1);
        }
    }
    if let Some(parts) = schema["allOf"].as_array() {
        let mut merged = Map::new();
        for part in parts {
            if let Value::Object(fields) = example(part, schemas, depth + 1) {
                merged.extend(fields);
            }
        }
        return Value::Object(merged);
    }
    if let Some(first) = schema["enum"].get(0) {
        return first.clone();
    }
    let kind = match &schema["type"] {
        Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).find(|k| *k != "null").unwrap_or("null"),
        kind => kind.as_str().unwrap_or(if schema["properties"].is_object() { "object" } else { "string" }),
    };
    match kind {
        "object" => {
            let properties = schema["properties"].as_object().into_iter().flatten();
            Value::Object(properties.map(|(name, s)| (name.clone(), example(s, schemas, depth + 1))).collect())
        }
        "array" => json!([example(&schema["items"], schemas, depth + 1)]),
        "integer" | "number" => schema.get("minimum").cloned().unwrap_or(json!(1)),
        "boolean" => json!(false),
        "null" => Value::Null,
        _ => json!(match schema["format"].as_str() {
            Some("email") => "someone@acme.example".to_owned(),
            Some("uri") => "https://acme.example/".to_owned(),
            Some("date-time") => chrono::Utc::now().to_rfc3339(),
            Some("uuid") => "0190a0d4-0000-7000-8000-000000000000".to_owned(),
            _ => "x".to_owned(),
        }),
    }
}

#[test]
fn a_made_up_body_follows_its_schema_and_prefers_its_examples() {
    let schemas = json!({
        "Role": { "type": "string", "enum": ["owner", "user"] },
        "Invite": {
            "type": "object",
            "required": ["email"],
            "properties": {
                "email": { "type": "string", "example": "dan@acme.example" },
                "role": { "$ref": "#/components/schemas/Role" },
                "name": { "type": ["string", "null"] },
                "seats": { "type": "integer", "minimum": 2 },
                "when": { "type": "string", "format": "date-time" },
                "tags": { "type": "array", "items": { "type": "string" } },
                "limit": { "oneOf": [{ "type": "null" }, { "type": "boolean" }] }
            }
        }
    });
    let made = example(&json!({ "$ref": "#/components/schemas/Invite" }), &schemas, 0);
    assert_eq!(made["email"], "dan@acme.example");
    assert_eq!(made["role"], "owner");
    assert_eq!(made["name"], "x");
    assert_eq!(made["seats"], 2);
    assert!(chrono::DateTime::parse_from_rfc3339(made["when"].as_str().expect("a time")).is_ok(), "{made}");
    assert_eq!(made["tags"], json!(["x"]));
    assert_eq!(made["limit"], false);
}

#[test]
fn every_operation_of_the_document_is_read_with_its_security_and_body() {
    let operations = operations();
    let find = |method: &str, path: &str| {
        operations.iter().find(|o| o.method == method && o.path == path).unwrap_or_else(|| panic!("{method} {path}"))
    };
    assert!(find("GET", "/healthz").security.is_none());
    assert!(find("POST", "/v1/hooks/git").is_webhook());
    assert!(matches!(find("POST", "/v1/hooks/git").body, Body::Bytes));
    let users = find("GET", "/v1/tenants/{tenant}/users");
    assert_eq!(users.roles("operator"), Some(&["operator".to_owned(), "auditor".to_owned()][..]));
    assert_eq!(users.roles("session"), Some(&["owner".to_owned(), "admin".to_owned()][..]));
    assert!(users.query.contains(&"emailPrefix".to_owned()));
    assert_eq!(find("POST", "/v1/usage/events").roles("apiKey"), Some(&["usage:write".to_owned()][..]));
    match &find("POST", "/v1/tenants/{tenant}/users").body {
        Body::Json { base, fields } => {
            assert_eq!(base["email"], "newcomer@acme.example");
            assert_eq!(fields, &["email", "name", "role"]);
        }
        _ => panic!("the invitation takes JSON"),
    }
    match &find("PATCH", "/v1/tenants/{tenant}").body {
        // The schema's own example, and every field it names to spoil.
        Body::Json { base, fields } => {
            assert_eq!(base, &json!({ "displayName": "Acme Corporation", "plan": "pro" }));
            assert_eq!(fields, &["applications", "displayName", "plan"]);
        }
        _ => panic!("a tenant's change takes JSON"),
    }
    match &find("POST", "/v1/apps/{app}/keys").body {
        // An optional body (`oneOf` null or the schema): every field of the schema.
        Body::Json { fields, .. } => assert_eq!(fields, &["expiresAt", "expiresIn", "name", "scopes"]),
        _ => panic!("a key's creation takes JSON"),
    }
    match &find("POST", "/oauth2/authorize").body {
        Body::Form(fields) => assert!(fields.contains(&"code_challenge".to_owned()), "{fields:?}"),
        _ => panic!("the authorization endpoint takes a form on POST"),
    }
    match &find("POST", "/oauth2/userinfo").body {
        // An optional form (RFC 6750 §2.2).
        Body::Form(fields) => assert_eq!(fields, &["access_token"]),
        _ => panic!("UserInfo takes a form on POST"),
    }
    assert_eq!(find("GET", "/login/sso/callback").errors, Errors::Html);
    assert_eq!(find("POST", "/oauth2/token").errors, Errors::OAuth);
    assert_eq!(find("GET", "/v1/tenants").errors, Errors::Envelope);
}
