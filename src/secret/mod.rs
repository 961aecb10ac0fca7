//! `Secret`: a string that never shows in `Debug` output or logs (tokens, keys, passwords given
//! on the command line or in the environment), and `sealed`: the keyring that seals the secrets kept
//! recoverable at rest.

pub mod sealed;

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this secret, in constant time: the SHA-256 digests are compared, so
    /// neither the content nor the length shows in the time taken.
    pub fn matches(&self, presented: &str) -> bool {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        bool::from(Sha256::digest(self.0.as_bytes()).ct_eq(&Sha256::digest(presented.as_bytes())))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn matches_compares_the_whole_value() {
        let secret = Secret::new("hunter2".into());
        assert!(secret.matches("hunter2"));
        assert!(!secret.matches("hunter"));
        assert!(!secret.matches("hunter22"));
        assert!(!secret.matches(""));
    }

    #[test]
    fn debug_output_never_shows_the_value() {
        assert_eq!(format!("{:?}", Secret::new("hunter2".into())), "<redacted>");
    }
}
