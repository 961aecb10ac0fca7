//! Opaque bearer tokens: 256 random bits, recognisable by prefix, stored only as SHA-256.

use data_encoding::BASE64URL_NOPAD;
use sha2::{Digest, Sha256};

/// What a token is for; its prefix names it, so a leaked one is recognisable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
    /// Invitation and password-reset links.
    Link,
    /// OpenID Connect authorization codes (single use, a minute).
    Code,
    /// Secrets of confidential OpenID Connect clients.
    ClientSecret,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            TokenKind::Access => "gatehouse_at_",
            TokenKind::Refresh => "gatehouse_rt_",
            TokenKind::Link => "gatehouse_lt_",
            TokenKind::Code => "gatehouse_ac_",
            TokenKind::ClientSecret => "gatehouse_cs_",
        }
    }

    /// The kind a presented token claims by its prefix.
    pub fn of(token: &str) -> Option<TokenKind> {
        [TokenKind::Access, TokenKind::Refresh, TokenKind::Link, TokenKind::Code, TokenKind::ClientSecret]
            .into_iter()
            .find(|kind| token.starts_with(kind.prefix()))
    }
}

/// A freshly issued token: the plaintext goes to the client once, the hash to the database.
pub struct Issued {
    pub token: String,
    pub hash: Vec<u8>,
}

pub fn issue(kind: TokenKind) -> Issued {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    let token = format!("{}{}", kind.prefix(), BASE64URL_NOPAD.encode(&bytes));
    let hash = hash(&token);
    Issued { token, hash }
}

/// What is stored of a token, and what a presented token is looked up by.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Random text for recovery codes: `xxxxx-xxxxx` in lower-case base32 (50 bits).
pub fn recovery_code() -> String {
    let mut bytes = [0u8; 7];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    let text = data_encoding::BASE32_NOPAD.encode(&bytes).to_ascii_lowercase();
    format!("{}-{}", &text[..5], &text[5..10])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_hashed() {
        let a = issue(TokenKind::Access);
        let b = issue(TokenKind::Access);
        assert_ne!(a.token, b.token);
        assert!(a.token.starts_with("gatehouse_at_"));
        assert_eq!(a.token.len(), "gatehouse_at_".len() + 43);
        assert_eq!(a.hash, hash(&a.token));
        assert_eq!(TokenKind::of(&issue(TokenKind::Refresh).token), Some(TokenKind::Refresh));
        assert_eq!(TokenKind::of("gatehouse_abc"), None);
    }

    #[test]
    fn recovery_codes_have_the_documented_shape() {
        let code = recovery_code();
        assert_eq!(code.len(), 11);
        assert_eq!(code.as_bytes()[5], b'-');
        assert_ne!(code, recovery_code());
    }
}
