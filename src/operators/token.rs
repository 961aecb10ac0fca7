//! The compact JWS form of a bearer JWT taken apart, before any key is involved: header, claims and
//! the signed bytes. Nothing read here is trusted until the signature is checked.

use data_encoding::BASE64URL_NOPAD;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Refusal;

/// Larger bearer tokens are refused before decoding; real ID tokens are a few kilobytes.
const MAX_TOKEN_LEN: usize = 16 * 1024;

#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
    /// Extensions the signer requires the reader to understand (RFC 7515 §4.1.11): we know none.
    #[serde(default)]
    pub crit: Option<Value>,
}

#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub header: Header,
    pub claims: Map<String, Value>,
    /// `header.payload`, the bytes the signature covers.
    pub signed: &'a str,
    pub signature: &'a str,
}

/// Three base64url segments whose first decodes to a JSON object: how a JWT is told from the other
/// bearer tokens (session tokens and API keys have prefixes with `_` and no dots).
pub fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let base64url = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    token.len() <= MAX_TOKEN_LEN
        && !header.is_empty()
        && !payload.is_empty()
        && [header, payload, signature].into_iter().all(base64url)
        && decode_object(header).is_some()
}

pub(crate) fn parse(token: &str) -> Result<Parsed<'_>, Refusal> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Refusal::invalid(format!("the token is larger than {MAX_TOKEN_LEN} bytes")));
    }
    let malformed = |what: &str| Refusal::invalid(format!("the bearer token is not a well-formed JWT: {what}"));
    let Some((signed, signature)) = token.rsplit_once('.') else { return Err(malformed("it has no dots")) };
    let Some((header, payload)) = signed.split_once('.') else { return Err(malformed("it has two parts, not three")) };
    if payload.contains('.') {
        return Err(malformed("it has more than three parts (an encrypted token is not accepted)"));
    }
    let header = decode_object(header).ok_or_else(|| malformed("its header is not base64url JSON"))?;
    let header: Header = serde_json::from_value(Value::Object(header))
        .map_err(|e| malformed(&format!("its header has no usable `alg`: {e}")))?;
    if header.crit.is_some() {
        return Err(Refusal::invalid("the token's header has `crit` extensions, which Gatehouse does not understand"));
    }
    let claims = decode_object(payload).ok_or_else(|| malformed("its claims are not base64url JSON"))?;
    Ok(Parsed { header, claims, signed, signature })
}

fn decode_object(segment: &str) -> Option<Map<String, Value>> {
    let bytes = BASE64URL_NOPAD.decode(segment.as_bytes()).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        BASE64URL_NOPAD.encode(text.as_bytes())
    }

    fn jwt(header: &str, claims: &str) -> String {
        format!("{}.{}.c2ln", b64(header), b64(claims))
    }

    #[test]
    fn jwts_are_told_from_other_bearer_tokens() {
        assert!(looks_like_jwt(&jwt(r#"{"alg":"RS256","kid":"k"}"#, r#"{"sub":"a"}"#)));
        assert!(looks_like_jwt(&format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64("{}"))), "unsigned: refused later");
        for other in [
            "gatehouse_at_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "gatehouse_0123456789abcdef_secretsecretsecret",
            "cli-test-token",
            "a.b.c",
            "",
            "..",
        ] {
            assert!(!looks_like_jwt(other), "{other}");
        }
        assert!(!looks_like_jwt(&format!("{}.{}.x", b64("[1]"), b64("{}"))), "header must be an object");
        assert!(!looks_like_jwt(&format!("{}.{}.x.y", b64("{}"), b64("{}"))), "four parts");
    }

    #[test]
    fn parse_splits_header_claims_and_signed_bytes() {
        let token = jwt(r#"{"alg":"ES256","kid":"k1"}"#, r#"{"iss":"https://idp"}"#);
        let parsed = parse(&token).expect("parsed");
        assert_eq!(parsed.header.alg, "ES256");
        assert_eq!(parsed.header.kid.as_deref(), Some("k1"));
        assert_eq!(parsed.claims["iss"], "https://idp");
        assert_eq!(parsed.signature, "c2ln");
        assert_eq!(format!("{}.c2ln", parsed.signed), token);
    }

    #[test]
    fn malformed_tokens_are_refused_with_what_is_wrong() {
        let message = |token: &str| parse(token).expect_err(token).to_string();
        assert!(message("abc").contains("no dots"));
        assert!(message(&jwt(r#"{"kid":"k"}"#, "{}")).contains("`alg`"));
        assert!(message(&jwt(r#"{"alg":"RS256","crit":["b64"]}"#, "{}")).contains("crit"));
        assert!(message(&format!("{}.bm90IGpzb24.x", b64(r#"{"alg":"RS256"}"#))).contains("claims"));
        assert!(message(&"a".repeat(MAX_TOKEN_LEN + 1)).contains("larger"));
    }
}
