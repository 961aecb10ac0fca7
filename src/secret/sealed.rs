//! Recoverable secrets (TOTP seeds, unsent mail) sealed with XChaCha20-Poly1305. Each value records
//! the id of the key that sealed it, so keys can rotate: the first key of the ring seals, every key
//! opens.

use std::collections::HashMap;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use data_encoding::BASE64;

const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(
        "GATEHOUSE_ENCRYPTION_KEY must be a comma-separated list of <id>:<base64 of 32 bytes>, the first sealing (for example k1:$(openssl rand -base64 32)): {0}"
    )]
    Invalid(String),
    #[error("cannot read or write the development key {path}: {reason}")]
    DevKey { path: String, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("no key {0} in GATEHOUSE_ENCRYPTION_KEY: it sealed this value; add it back to read it")]
    UnknownKey(String),
    #[error("a sealed value does not open with key {0}: it was altered or sealed for another record")]
    Corrupt(String),
}

pub struct Keyring {
    sealing: String,
    keys: HashMap<String, XChaCha20Poly1305>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("sealing", &self.sealing).finish_non_exhaustive()
    }
}

impl Keyring {
    /// Parses `id:base64,id:base64`.
    pub fn parse(text: &str) -> Result<Keyring, KeyringError> {
        let mut sealing = None;
        let mut keys = HashMap::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (id, encoded) =
                item.split_once(':').ok_or_else(|| KeyringError::Invalid(format!("{:?} has no id", redact(item))))?;
            let bytes = BASE64
                .decode(encoded.as_bytes())
                .map_err(|_| KeyringError::Invalid(format!("key {id} is not base64")))?;
            if bytes.len() != 32 {
                return Err(KeyringError::Invalid(format!("key {id} has {} bytes, not 32", bytes.len())));
            }
            keys.insert(id.to_owned(), XChaCha20Poly1305::new(Key::from_slice(&bytes)));
            sealing.get_or_insert_with(|| id.to_owned());
        }
        let sealing = sealing.ok_or_else(|| KeyringError::Invalid("it is empty".into()))?;
        Ok(Keyring { sealing, keys })
    }

    /// For local development only: a key kept in `path`, made on first use (mode 0600).
    pub fn development(path: &Path) -> Result<Keyring, KeyringError> {
        let error =
            |e: std::io::Error| KeyringError::DevKey { path: path.display().to_string(), reason: e.to_string() };
        if !path.exists() {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).expect("the operating system's random source failed");
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(error)?;
            }
            write_private(path, &format!("dev:{}\n", BASE64.encode(&bytes))).map_err(error)?;
        }
        Keyring::parse(std::fs::read_to_string(path).map_err(error)?.trim())
    }

    pub fn sealing_key_id(&self) -> &str {
        &self.sealing
    }

    /// `nonce ‖ ciphertext`, bound to `context` (such as the owning row's id), and the key id.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> (String, Vec<u8>) {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the operating system's random source failed");
        let cipher = &self.keys[&self.sealing];
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: context })
            .expect("XChaCha20-Poly1305 encryption does not fail for in-memory sizes");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        (self.sealing.clone(), out)
    }

    pub fn open(&self, key_id: &str, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, OpenError> {
        let cipher = self.keys.get(key_id).ok_or_else(|| OpenError::UnknownKey(key_id.to_owned()))?;
        if sealed.len() < NONCE_LEN {
            return Err(OpenError::Corrupt(key_id.to_owned()));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad: context })
            .map_err(|_| OpenError::Corrupt(key_id.to_owned()))
    }
}

fn redact(item: &str) -> String {
    item.chars().take(4).collect::<String>() + "…"
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        BASE64.encode(&[byte; 32])
    }

    #[test]
    fn seals_with_the_first_key_and_opens_with_any() {
        let old = Keyring::parse(&format!("k1:{}", key(1))).expect("valid ring");
        let (id, sealed) = old.seal(b"seed", b"user-1");
        assert_eq!(id, "k1");
        let rotated = Keyring::parse(&format!("k2:{},k1:{}", key(2), key(1))).expect("valid ring");
        assert_eq!(rotated.open(&id, &sealed, b"user-1").expect("opens"), b"seed");
        assert_eq!(rotated.seal(b"x", b"").0, "k2");
    }

    #[test]
    fn refuses_another_context_a_tampered_value_and_an_unknown_key() {
        let ring = Keyring::parse(&format!("k1:{}", key(1))).expect("valid ring");
        let (id, mut sealed) = ring.seal(b"seed", b"user-1");
        assert!(matches!(ring.open(&id, &sealed, b"user-2"), Err(OpenError::Corrupt(_))));
        assert!(matches!(ring.open("k9", &sealed, b"user-1"), Err(OpenError::UnknownKey(_))));
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(ring.open(&id, &sealed, b"user-1"), Err(OpenError::Corrupt(_))));
    }

    #[test]
    fn rejects_malformed_rings_without_echoing_the_key() {
        let error = Keyring::parse("secretsecret").expect_err("no id").to_string();
        assert!(!error.contains("secretsecret"), "{error}");
        assert!(Keyring::parse(&format!("k1:{}", BASE64.encode(&[1; 16]))).is_err());
        assert!(Keyring::parse("").is_err());
    }
}
