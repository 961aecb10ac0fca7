//! Talking to a running server: the commands that ask (`status`) or change (`apps`, `keys`,
//! `tenants`, `users`) it, and how they show its answers.

use anyhow::Context as _;
use clap::Args;
use serde_json::Value;

use crate::secret::Secret;

fn secret(value: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(value.to_owned()))
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The Gatehouse server to ask.
    #[arg(long, env = "GATEHOUSE_SERVER", default_value = "http://127.0.0.1:8080", global = true)]
    pub server: String,
    /// The bearer token: a token from the identity provider (an operator's ID token), or the
    /// bootstrap operator token the server was started with. Unset, GATEHOUSE_OPERATOR_TOKEN is used.
    #[arg(long, alias = "operator-token", env = "GATEHOUSE_TOKEN", hide_env_values = true, value_parser = secret, global = true)]
    pub token: Option<Secret>,
}

/// The bearer token: `--token` / GATEHOUSE_TOKEN, else GATEHOUSE_OPERATOR_TOKEN (the variable the
/// CLI read before operators could sign in through an identity provider).
pub fn bearer(token: Option<&Secret>) -> Option<Secret> {
    token.cloned().or_else(|| std::env::var("GATEHOUSE_OPERATOR_TOKEN").ok().filter(|t| !t.is_empty()).map(Secret::new))
}

impl ServerArgs {
    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call("GET", path, None)
    }

    /// One request; a refusal becomes an error carrying the server's message.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        self.call_with(method, path, &[], body)
    }

    /// `call` with more request headers, such as `Idempotency-Key`. An answer without a body (204)
    /// is `Null`.
    pub fn call_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        let method = reqwest::Method::from_bytes(method.as_bytes()).with_context(|| format!("method {method}"))?;
        let mut request = self.client().request(method.clone(), &url).timeout(std::time::Duration::from_secs(10));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = self.sent(request)?;
        let status = response.status();
        if status == reqwest::StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        if !status.is_success() {
            anyhow::bail!("{method} {url} answered {}: {}", status.as_u16(), refusal(response));
        }
        response.json().with_context(|| format!("{url} did not answer JSON"))
    }

    /// `GET path` with `Accept: accept`, its body copied to `out` as it arrives (an export of any
    /// size in constant memory).
    pub fn download(&self, path: &str, accept: &str, out: &mut dyn std::io::Write) -> anyhow::Result<u64> {
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        let mut response = self.sent(self.client().get(&url).header("Accept", accept))?;
        if !response.status().is_success() {
            anyhow::bail!("GET {url} answered {}: {}", response.status().as_u16(), refusal(response));
        }
        Ok(response.copy_to(out)?)
    }

    /// A client for this server: the bearer token on every request; no overall timeout, so that
    /// an export of any size completes (connecting gives up after 10 s).
    fn client(&self) -> reqwest::blocking::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = bearer(self.token.as_ref())
            && let Ok(mut value) = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        {
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        reqwest::blocking::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(None)
            .tls_backend_preconfigured(crate::outbound::tls())
            .default_headers(headers)
            .build()
            .unwrap_or_else(|error| unreachable!("a client of fixed settings builds: {error}"))
    }

    /// Sends `request`; a server that cannot be reached is said so, naming where it was looked for.
    fn sent(&self, request: reqwest::blocking::RequestBuilder) -> anyhow::Result<reqwest::blocking::Response> {
        request.send().with_context(|| {
            format!(
                "cannot reach {} (is `gatehouse serve` running there? set --server or GATEHOUSE_SERVER)",
                self.server
            )
        })
    }

    /// A listing such as `GET /v1/tenants` with the `query` parameters that are set: the first page,
    /// or with `all` every page (following `next`), their `items` joined into one answer of the same
    /// shape without `next`.
    pub fn list(&self, path: &str, query: &[(&str, Option<&str>)], items: &str, all: bool) -> anyhow::Result<Value> {
        let set: Vec<(&str, &str)> = query.iter().filter_map(|(name, value)| value.map(|v| (*name, v))).collect();
        let page = |after: Option<&str>| {
            let after = after.map(|a| ("after", a));
            let query = serde_urlencoded::to_string(set.iter().copied().chain(after).collect::<Vec<_>>())?;
            self.get(&if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") })
        };
        let first = page(None)?;
        if !all {
            return Ok(first);
        }
        let mut listed = first[items].as_array().cloned().unwrap_or_default();
        let mut next = first["next"].as_str().map(str::to_owned);
        while let Some(after) = next {
            let answer = page(Some(&after))?;
            listed.extend(answer[items].as_array().cloned().unwrap_or_default());
            // A server that answers the same cursor again would page forever.
            next = answer["next"].as_str().filter(|n| *n != after).map(str::to_owned);
        }
        Ok(serde_json::json!({ items: listed, "next": null }))
    }
}

/// `path` with the `query` parameters that are set, URL-encoded.
pub fn with_query(path: &str, query: &[(&str, Option<&str>)]) -> anyhow::Result<String> {
    let set: Vec<(&str, &str)> = query.iter().filter_map(|(name, value)| value.map(|v| (*name, v))).collect();
    let encoded = serde_urlencoded::to_string(set)?;
    Ok(if encoded.is_empty() { path.to_owned() } else { format!("{path}?{encoded}") })
}

/// One path segment: anything but letters, digits, `-`, `.` and `_` percent-encoded, so that a
/// name or email (`dan+ops@acme.example`) reaches the server as it was typed.
pub fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A field of the server's JSON as a table cell or line shows it: `-` for none, lists comma-separated.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// An RFC 3339 time to the second (`2026-11-21T11:45:01Z`), so table columns line up.
pub fn when(value: &Value) -> String {
    match value.as_str() {
        Some(t) if t.len() > 19 => format!("{}Z", &t[..19]),
        _ => text(value),
    }
}

/// A table: a header line, then a line per item; each column but the last padded to its width.
pub fn table<T>(columns: &[(&str, usize)], items: &[T], cells: impl Fn(&T) -> Vec<String>) -> String {
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, (cell, (_, width))) in cells.iter().zip(columns).enumerate() {
            if i + 1 < columns.len() {
                out += &format!("{cell:<width$} ");
            } else {
                out += cell;
            }
        }
        out + "\n"
    };
    let header = line(columns.iter().map(|(title, _)| (*title).to_owned()).collect());
    items.iter().fold(header, |out, item| out + &line(cells(item)))
}

/// One record, a `label: value` line per field, the values aligned.
pub fn fields(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(label, _)| label.len() + 2).max().unwrap_or(0);
    rows.iter().map(|(label, value)| format!("{:<width$}{value}\n", format!("{label}:"))).collect()
}

/// The message of a refusal's `{"error":{"message"}}` body.
fn refusal(response: reqwest::blocking::Response) -> String {
    let body: Value = response.json().unwrap_or_default();
    body["error"]["message"].as_str().unwrap_or("no message").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_or_email_is_escaped_as_one_path_segment() {
        assert_eq!(segment("globex"), "globex");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment("dan+ops@acme.example"), "dan%2Bops%40acme.example");
    }

    #[test]
    fn table_columns_line_up_and_the_last_is_not_padded() {
        let rows = [("acme", "active"), ("globex-long", "suspended")];
        let out = table(&[("NAME", 8), ("STATE", 9)], &rows, |(name, state)| vec![(*name).into(), (*state).into()]);
        assert_eq!(out, "NAME     STATE\nacme     active\nglobex-long suspended\n");
    }

    #[test]
    fn fields_align_their_values_after_the_longest_label() {
        let out = fields(&[("user", "dan@acme.example".into()), ("managed by", "git".into())]);
        assert_eq!(out, "user:       dan@acme.example\nmanaged by: git\n");
    }
}
