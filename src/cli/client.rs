//! Talking to a running server: the commands that ask (`status`) or change (`apps`, `keys`) it.

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
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        let mut request = ureq::request(method, &url).timeout(std::time::Duration::from_secs(10));
        if let Some(token) = bearer(self.token.as_ref()) {
            request = request.set("Authorization", &format!("Bearer {}", token.expose()));
        }
        let sent = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        match sent {
            Ok(response) => response.into_json().with_context(|| format!("{url} did not answer JSON")),
            Err(ureq::Error::Status(code, response)) => {
                let body: Value = response.into_json().unwrap_or_default();
                let message = body["error"]["message"].as_str().unwrap_or("no message").to_owned();
                anyhow::bail!("{method} {url} answered {code}: {message}")
            }
            Err(error) => Err(error).with_context(|| {
                format!(
                    "cannot reach {} (is `gatehouse serve` running there? set --server or GATEHOUSE_SERVER)",
                    self.server
                )
            }),
        }
    }
}
