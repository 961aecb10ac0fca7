//! The token pair a refresh token was exchanged for, kept sealed for the refresh grace window so
//! that every request presenting that refresh token in the window gets the same pair (issue 11.2).
//!
//! Why keep it. Clients refresh in parallel (several tabs, a retry after a lost response), and the
//! losers of that race must end with the same, working pair as the winner. Only hashes of tokens
//! are stored, so the pair cannot be given again unless it is kept. The alternatives are worse:
//! rotating again for each retry (the old behaviour) spends the winner's refresh token, so the
//! client that holds it later "reuses" it and revokes its own session, and answering the losers
//! 401 leaves a client whose winning response was lost with no token at all.
//!
//! Why this is safe. The pair is sealed twice. The inner key is HMAC-SHA256 of the presented
//! refresh token (never stored; the database has its SHA-256 only, from which a 256-bit random
//! token cannot be recovered), so only the holder of that token can open it, and that holder
//! would get a pair from the server within the window anyway: keeping it grants nothing new. The
//! outer layer is the key ring (bound to the spent token's hash), so a database dump together with
//! an old token from a client's log still opens nothing. It is answered only within the grace
//! window and only while it is still the session's current pair, and the prune job erases it
//! within ten minutes after the window; the spent token's row stays, so a reuse after the window still revokes the
//! session. A thief racing the client within the window gets the same pair as the client rather
//! than a fresh one, so whichever of them refreshes first makes the other a reuser later: theft
//! detection is kept.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::token;
use crate::secret::sealed::Keyring;

const NONCE_LEN: usize = 24;
/// Domain separation: the key is no other use of the token (its stored hash is plain SHA-256).
const LABEL: &[u8] = b"gatehouse refresh successor v1";

/// A pair given out in exchange for a refresh token.
#[derive(PartialEq, Eq)]
pub struct Pair {
    pub access: String,
    pub refresh: String,
}

/// Never the tokens themselves: a `Debug` of a pair may reach a log.
impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pair { access: <redacted>, refresh: <redacted> }")
    }
}

fn cipher(presented: &str) -> XChaCha20Poly1305 {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(presented.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(LABEL);
    XChaCha20Poly1305::new(&mac.finalize().into_bytes())
}

/// Seals `pair` to the refresh token `presented`: the key id and the bytes to keep with its spent
/// row.
pub fn seal(keyring: &Keyring, presented: &str, pair: &Pair) -> (String, Vec<u8>) {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).expect("the operating system's random source failed");
    let plaintext = format!("{}\n{}", pair.access, pair.refresh);
    let inner = cipher(presented)
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext.as_bytes(), aad: LABEL })
        .expect("XChaCha20-Poly1305 encryption does not fail for in-memory sizes");
    let mut bound = nonce.to_vec();
    bound.extend_from_slice(&inner);
    keyring.seal(&bound, &token::hash(presented))
}

/// Opens what `seal` made for `presented`; `None` for any other token or altered bytes.
pub fn open(keyring: &Keyring, presented: &str, key_id: &str, sealed: &[u8]) -> Option<Pair> {
    let bound = keyring.open(key_id, sealed, &token::hash(presented)).ok()?;
    if bound.len() < NONCE_LEN {
        return None;
    }
    let (nonce, inner) = bound.split_at(NONCE_LEN);
    let plaintext = cipher(presented).decrypt(XNonce::from_slice(nonce), Payload { msg: inner, aad: LABEL }).ok()?;
    let (access, refresh) = std::str::from_utf8(&plaintext).ok()?.split_once('\n')?;
    Some(Pair { access: access.to_owned(), refresh: refresh.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::token::TokenKind;

    fn ring() -> Keyring {
        Keyring::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").expect("valid ring")
    }

    fn pair() -> Pair {
        Pair { access: token::issue(TokenKind::Access).token, refresh: token::issue(TokenKind::Refresh).token }
    }

    #[test]
    fn only_the_presented_token_opens_its_successor() {
        let ring = ring();
        let presented = token::issue(TokenKind::Refresh).token;
        let successor = pair();
        let (key_id, sealed) = seal(&ring, &presented, &successor);
        assert_eq!(open(&ring, &presented, &key_id, &sealed), Some(successor));
        let other = token::issue(TokenKind::Refresh).token;
        assert_eq!(open(&ring, &other, &key_id, &sealed), None, "another token");
        // What the database holds of the token is its hash; that is no key.
        let stored = data_encoding::BASE64URL_NOPAD.encode(&token::hash(&presented));
        assert_eq!(open(&ring, &stored, &key_id, &sealed), None, "the stored hash");
    }

    #[test]
    fn the_key_ring_is_needed_too() {
        let presented = token::issue(TokenKind::Refresh).token;
        let (key_id, sealed) = seal(&ring(), &presented, &pair());
        let other_ring = Keyring::parse("k1:AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").expect("valid ring");
        assert_eq!(open(&other_ring, &presented, &key_id, &sealed), None);
        let mut altered = sealed.clone();
        altered[30] ^= 1;
        assert_eq!(open(&ring(), &presented, &key_id, &altered), None);
    }
}
