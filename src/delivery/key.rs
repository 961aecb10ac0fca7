//! The API key format: `gatehouse_<key id>_<secret><checksum>`.
//!
//! - `gatehouse_` makes a leaked key recognisable to secret scanners and to people;
//! - the key id (12 base62 characters) is public: lists, paths and audit rows name a key by it;
//! - the secret (32 base62 characters, about 190 bits) is shown once and stored only as SHA-256;
//! - the checksum (CRC32 of everything before it, 6 base62 characters) lets a scanner or a client
//!   tell a real key from a look-alike without asking the server, as GitHub's token format does.

use sha2::{Digest, Sha256};

pub const PREFIX: &str = "gatehouse_";
const KEY_ID_LEN: usize = 12;
const SECRET_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A newly issued key: the whole token (shown once) and what is stored of it.
pub struct IssuedKey {
    pub key_id: String,
    pub token: String,
    pub secret_hash: [u8; 32],
}

/// Draws a new key from the operating system's random source.
pub fn issue() -> IssuedKey {
    let key_id = random_base62(KEY_ID_LEN);
    let body = format!("{PREFIX}{key_id}_{}", random_base62(SECRET_LEN));
    let token = format!("{body}{}", checksum(&body));
    let secret_hash = hash(&token);
    IssuedKey { key_id, token, secret_hash }
}

/// The key id of a well-formed token with a valid checksum; `None` for anything else, so junk and
/// typos are refused before any lookup.
pub fn key_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(PREFIX)?;
    if rest.len() != KEY_ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN || !rest.is_ascii() {
        return None;
    }
    let (key_id, rest) = rest.split_at(KEY_ID_LEN);
    let secret = rest.strip_prefix('_')?;
    let well_formed = key_id.bytes().chain(secret.bytes()).all(|b| b.is_ascii_alphanumeric());
    let (body, sum) = token.split_at(token.len() - CHECKSUM_LEN);
    (well_formed && checksum(body) == sum).then_some(key_id)
}

/// What is stored of a key and compared, in constant time, with what a client presents.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The shown, non-secret part of a key, as lists print it.
pub fn display_prefix(key_id: &str) -> String {
    format!("{PREFIX}{key_id}_…")
}

fn checksum(body: &str) -> String {
    let mut n = crc32fast::hash(body.as_bytes()) as u64;
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|&b| b as char).collect()
}

/// Uniform base62: bytes at or above 248 (= 4 × 62) are drawn again, so no character is favoured.
fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).expect("the operating system's random source failed");
        out.extend(
            buf.iter().filter(|&&b| b < 248).map(|&b| ALPHABET[(b % 62) as usize] as char).take(len - out.len()),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_keys_parse_back_to_their_id_and_are_distinct() {
        let a = issue();
        let b = issue();
        assert_eq!(key_id(&a.token), Some(a.key_id.as_str()));
        assert_eq!(a.token.len(), PREFIX.len() + KEY_ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN);
        assert_ne!(a.token, b.token);
        assert_ne!(a.key_id, b.key_id);
        assert_eq!(a.secret_hash, hash(&a.token));
    }

    #[test]
    fn a_changed_character_fails_the_checksum() {
        let key = issue();
        let mut bytes = key.token.clone().into_bytes();
        let i = PREFIX.len() + KEY_ID_LEN + 5;
        bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(bytes).expect("ascii");
        assert_eq!(key_id(&typo), None);
    }

    #[test]
    fn junk_is_refused_without_panicking() {
        for junk in ["", "gatehouse_", "gatehouse_abc", "Bearer x", "gatehouse_ééééééééééééé_", &"x".repeat(500)]
        {
            assert_eq!(key_id(junk), None, "{junk}");
        }
    }
}
