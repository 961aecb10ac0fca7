//! The provider's published signing keys (a JWK Set) and which of them may check a given token:
//! the key its `kid` names, of the family its `alg` needs. Pure: fetching lives in `jwks`.

use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::Refusal;
use super::settings::SigningAlg;

pub(crate) struct Key {
    pub kid: Option<String>,
    jwk: Jwk,
    pub decoding: DecodingKey,
}

impl Key {
    /// Whether this key can check `alg`: the right family and curve, and the key's own `alg`
    /// and `use`, when it states them, agree (RFC 7517 §4.2, §4.4).
    fn fits(&self, alg: SigningAlg) -> bool {
        let family = match (&self.jwk.algorithm, alg.0) {
            (
                AlgorithmParameters::RSA(_),
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512,
            ) => true,
            (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
            (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
            (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => p.curve == EllipticCurve::Ed25519,
            _ => false,
        };
        let stated_alg = self.jwk.common.key_algorithm.is_none_or(|stated| stated.to_string() == alg.name());
        let for_signing =
            !matches!(self.jwk.common.public_key_use, Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_)));
        family && stated_alg && for_signing
    }

    fn describe(&self) -> String {
        match &self.jwk.algorithm {
            AlgorithmParameters::RSA(_) => "an RSA key".to_owned(),
            AlgorithmParameters::EllipticCurve(p) => format!("an EC {:?} key", p.curve),
            AlgorithmParameters::OctetKeyPair(p) => format!("an OKP {:?} key", p.curve),
            AlgorithmParameters::OctetKey(_) => "a symmetric key".to_owned(),
        }
    }
}

#[derive(Default)]
pub(crate) struct KeySet {
    keys: Vec<Arc<Key>>,
}

/// Which keys may check a token.
pub(crate) enum Lookup {
    Found(Vec<Arc<Key>>),
    /// No key has this `kid` (or, without a `kid`, none fits): the set may be stale.
    Unknown,
}

impl KeySet {
    /// The usable keys of a JWK Set document; keys of other kinds (symmetric, encryption-only,
    /// unknown types) are skipped rather than failing the whole set.
    pub fn parse(document: &Value) -> Result<KeySet, String> {
        let Some(items) = document.get("keys").and_then(Value::as_array) else {
            return Err("the JWK Set has no `keys` array".into());
        };
        let mut keys = Vec::new();
        for item in items {
            let Ok(jwk) = serde_json::from_value::<Jwk>(item.clone()) else {
                tracing::debug!(kid = ?item.get("kid"), "skipping a JWK of a kind Gatehouse does not use");
                continue;
            };
            if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
                continue;
            }
            match DecodingKey::from_jwk(&jwk) {
                Ok(decoding) => keys.push(Arc::new(Key { kid: jwk.common.key_id.clone(), jwk, decoding })),
                Err(error) => tracing::warn!(kid = ?jwk.common.key_id, %error, "skipping an unusable JWK"),
            }
        }
        Ok(KeySet { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The keys that may check a token signed with `alg` naming `kid`. A `kid` that names only
    /// keys of another kind is a refusal, not a reason to fetch again.
    pub fn lookup(&self, kid: Option<&str>, alg: SigningAlg) -> Result<Lookup, Refusal> {
        let Some(kid) = kid else {
            let fitting: Vec<_> = self.keys.iter().filter(|k| k.fits(alg)).cloned().collect();
            return Ok(if fitting.is_empty() { Lookup::Unknown } else { Lookup::Found(fitting) });
        };
        let named: Vec<_> = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).collect();
        if named.is_empty() {
            return Ok(Lookup::Unknown);
        }
        let fitting: Vec<_> = named.iter().filter(|k| k.fits(alg)).map(|k| Arc::clone(k)).collect();
        if fitting.is_empty() {
            return Err(Refusal::invalid(format!(
                "the token is signed with {alg}, but its key `{kid}` is {}, published for other use",
                named[0].describe()
            )));
        }
        Ok(Lookup::Found(fitting))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
    const EC_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const EC_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    fn set() -> KeySet {
        KeySet::parse(&json!({"keys": [
            {"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "n": N, "e": "AQAB"},
            {"kty": "RSA", "kid": "rsa-enc", "use": "enc", "n": N, "e": "AQAB"},
            {"kty": "EC", "kid": "ec-1", "crv": "P-256", "x": EC_X, "y": EC_Y},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "weird", "kid": "x"},
        ]}))
        .expect("key set")
    }

    fn alg(name: &str) -> SigningAlg {
        SigningAlg::accepted(name).expect(name)
    }

    fn found(lookup: Result<Lookup, Refusal>) -> Vec<Option<String>> {
        match lookup.expect("lookup") {
            Lookup::Found(keys) => keys.iter().map(|k| k.kid.clone()).collect(),
            Lookup::Unknown => panic!("unknown"),
        }
    }

    #[test]
    fn symmetric_and_unknown_keys_are_skipped() {
        assert_eq!(set().len(), 3);
        assert!(KeySet::parse(&json!({"nokeys": []})).is_err());
    }

    #[test]
    fn the_kid_names_the_key_and_the_alg_must_fit_it() {
        let set = set();
        assert_eq!(found(set.lookup(Some("rsa-1"), alg("RS256"))), [Some("rsa-1".to_owned())]);
        assert_eq!(found(set.lookup(Some("ec-1"), alg("ES256"))), [Some("ec-1".to_owned())]);
        let wrong = |kid, a| set.lookup(Some(kid), alg(a)).err().map(|r| r.to_string()).expect("refused");
        assert!(wrong("rsa-1", "ES256").contains("an RSA key"), "family");
        assert!(wrong("rsa-1", "PS256").contains("rsa-1"), "the key states RS256");
        assert!(wrong("ec-1", "ES384").contains("P256"), "curve");
        assert!(wrong("rsa-enc", "RS256").contains("rsa-enc"), "an encryption key never checks a signature");
        assert!(matches!(set.lookup(Some("rotated"), alg("RS256")), Ok(Lookup::Unknown)));
    }

    #[test]
    fn without_a_kid_every_fitting_key_is_a_candidate() {
        let set = set();
        assert_eq!(found(set.lookup(None, alg("RS256"))), [Some("rsa-1".to_owned())]);
        assert!(matches!(set.lookup(None, alg("EdDSA")), Ok(Lookup::Unknown)));
    }
}
