//! The signing keys of ID tokens: one RS256 and one EdDSA key signs at a time, and each algorithm
//! always has its next key published beside it, so a rotation only starts using a key that every
//! client caching the JWKS already holds. A retired key stays published until the last ID token it
//! signed has expired. Private halves are sealed with the key ring at rest; the parsed keys live in
//! memory, so a signature costs one RSA or Ed25519 operation and nothing else.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use data_encoding::BASE64URL_NOPAD;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer as _};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::PgPool;

use crate::model::Alg;
use crate::secret::sealed::Keyring;
use crate::store::oidc::{self as db, StoredKey};
use crate::store::{Result, StoreError};

enum Signer {
    Rsa(rsa::pkcs1v15::SigningKey<Sha256>),
    Ed(ed25519_dalek::SigningKey),
}

/// A key that signs.
pub struct SigningKey {
    pub kid: String,
    pub alg: Alg,
    signer: Signer,
}

impl SigningKey {
    /// A compact JWS of `claims` (RFC 7515), with `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({ "alg": self.alg.as_str(), "kid": self.kid, "typ": "JWT" });
        let mut jws = format!("{}.{}", encode_json(&header), encode_json(claims));
        let signature = match &self.signer {
            // Blinded: the timing of a signature does not depend on the private key.
            Signer::Rsa(key) => key.sign_with_rng(&mut rsa::rand_core::OsRng, jws.as_bytes()).to_vec(),
            Signer::Ed(key) => key.sign(jws.as_bytes()).to_bytes().to_vec(),
        };
        jws.push('.');
        jws.push_str(&BASE64URL_NOPAD.encode(&signature));
        jws
    }
}

fn encode_json(value: &Value) -> String {
    BASE64URL_NOPAD.encode(value.to_string().as_bytes())
}

/// What is loaded: the signing key of each algorithm and the published JWKS.
struct Loaded {
    current: Vec<Arc<SigningKey>>,
    jwks: Value,
}

/// The keys, shared by every request of a replica; reloaded by `refresh` (every replica, on a
/// timer) and after a rotation on this replica.
pub struct Keys {
    pool: PgPool,
    keyring: Arc<Keyring>,
    loaded: RwLock<Arc<Loaded>>,
    /// How long a retired key stays published: the ID token lifetime and a margin for clocks.
    keep_retired: Duration,
    /// Set once the keys were loaded the first time.
    ready: tokio::sync::watch::Sender<bool>,
}

impl Keys {
    /// No keys yet: `load` makes and reads them (off the start-up path: making RSA keys takes a
    /// moment, and the database may not answer at once).
    pub fn new(pool: PgPool, keyring: Arc<Keyring>, id_token_ttl: Duration) -> Keys {
        Keys {
            pool,
            keyring,
            loaded: RwLock::new(Arc::new(Loaded { current: Vec::new(), jwks: json!({ "keys": [] }) })),
            keep_retired: id_token_ttl + Duration::from_secs(300),
            ready: tokio::sync::watch::channel(false).0,
        }
    }

    /// Makes sure each algorithm has a current and a next key (creating them on first start),
    /// then loads them.
    pub async fn load(&self) -> Result<()> {
        self.fill().await?;
        self.refresh().await?;
        self.ready.send_replace(true);
        Ok(())
    }

    /// Waits up to `limit` for the first load; whether the keys are loaded.
    pub async fn ready(&self, limit: Duration) -> bool {
        let mut ready = self.ready.subscribe();
        tokio::time::timeout(limit, ready.wait_for(|loaded| *loaded)).await.is_ok_and(|waited| waited.is_ok())
    }

    /// The key that signs ID tokens of `alg`.
    pub fn signer(&self, alg: Alg) -> Option<Arc<SigningKey>> {
        let loaded = self.loaded.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        loaded.current.iter().find(|key| key.alg == alg).cloned()
    }

    /// The published keys (RFC 7517 JWK Set): next, current and still-needed retired keys.
    pub fn jwks(&self) -> Value {
        self.loaded.read().unwrap_or_else(std::sync::PoisonError::into_inner).jwks.clone()
    }

    /// Rereads the keys from the database and drops retired keys no token needs any more.
    pub async fn refresh(&self) -> Result<()> {
        db::prune_retired_keys(&self.pool, self.keep_retired).await?;
        let stored = db::signing_keys(&self.pool).await?;
        let mut current = Vec::new();
        let mut published = Vec::new();
        for key in &stored {
            published.push(key.public_jwk.clone());
            if key.state == "current" {
                // A key this replica's key ring cannot open (a ring missing a retired sealing key)
                // leaves that algorithm unsigned here, and everything else working.
                match open(&self.keyring, key) {
                    Ok(signing) => current.push(Arc::new(signing)),
                    Err(error) => tracing::error!(%error, kid = %key.kid, "cannot open an ID token signing key"),
                }
            }
        }
        let loaded = Loaded { current, jwks: json!({ "keys": published }) };
        *self.loaded.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(loaded);
        Ok(())
    }

    /// Starts signing with each algorithm's next key, retires the current one and publishes a new
    /// next key. Returns the kids that sign from now on.
    pub async fn rotate(&self) -> Result<Vec<String>> {
        let fresh = self.generate_all().await?;
        let kids = db::rotate_keys(&self.pool, &fresh).await?;
        self.refresh().await?;
        Ok(kids)
    }

    /// Rotates when the current keys are older than `every` (one replica wins; the others see it
    /// at their next refresh).
    pub async fn rotate_if_older(&self, every: Duration) -> Result<bool> {
        if !db::current_key_older_than(&self.pool, every).await? {
            return Ok(false);
        }
        // Due: the keys are made, then the rotation checks again under the keys' lock.
        let fresh = self.generate_all().await?;
        let rotated = db::rotate_keys_if_older(&self.pool, &fresh, every).await?;
        if rotated {
            self.refresh().await?;
        }
        Ok(rotated)
    }

    /// Makes the keys only when a place is empty (the first start): making two RSA keys costs a
    /// replica about half a second of CPU, which every later start and every other replica skips.
    async fn fill(&self) -> Result<()> {
        let stored = db::signing_keys(&self.pool).await?;
        if all_places_filled(&stored) {
            return Ok(());
        }
        let fresh = self.generate_all().await?;
        db::fill_keys(&self.pool, &fresh).await
    }

    /// Two new keys of each algorithm, sealed, for whichever places are empty.
    async fn generate_all(&self) -> Result<Vec<StoredKey>> {
        let keyring = self.keyring.clone();
        tokio::task::spawn_blocking(move || {
            Alg::ALL.into_iter().flat_map(|alg| [generate(&keyring, alg), generate(&keyring, alg)]).collect()
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))
    }
}

/// Whether every algorithm has its current and its next key.
fn all_places_filled(stored: &[StoredKey]) -> bool {
    Alg::ALL.into_iter().all(|alg| {
        ["current", "next"].into_iter().all(|state| stored.iter().any(|k| k.alg == alg.as_str() && k.state == state))
    })
}

/// The signing key of a stored key.
fn open(keyring: &Keyring, key: &StoredKey) -> Result<SigningKey> {
    let alg = Alg::parse(&key.alg).ok_or_else(|| StoreError::Task(format!("unknown algorithm {}", key.alg)))?;
    let private = keyring
        .open(&key.sealing_key, &key.private_sealed, key.kid.as_bytes())
        .map_err(|e| StoreError::Task(format!("cannot open signing key {}: {e}", key.kid)))?;
    let signer = signer_of(alg, &private).map_err(StoreError::Task)?;
    Ok(SigningKey { kid: key.kid.clone(), alg, signer })
}

/// A new key of `alg`, its private half sealed, its public half as a JWK.
fn generate(keyring: &Keyring, alg: Alg) -> StoredKey {
    let mut id = [0u8; 9];
    getrandom::fill(&mut id).expect("the operating system's random source failed");
    let kid = format!("{}-{}", alg.as_str().to_lowercase(), BASE64URL_NOPAD.encode(&id));
    let (private, public_jwk) = key_material(alg, &kid);
    let (sealing_key, private_sealed) = keyring.seal(&private, kid.as_bytes());
    StoredKey { kid, alg: alg.as_str().to_owned(), state: String::new(), public_jwk, sealing_key, private_sealed }
}

/// A new private key of `alg` (PKCS#1 DER for RSA, the 32-byte seed for Ed25519) and its public
/// half as a JWK named `kid`.
fn key_material(alg: Alg, kid: &str) -> (Vec<u8>, Value) {
    match alg {
        Alg::RS256 => {
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                .expect("generating a 2048-bit RSA key cannot fail");
            let der = key.to_pkcs1_der().expect("an RSA key has a DER form").as_bytes().to_vec();
            let jwk = json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": BASE64URL_NOPAD.encode(&key.n().to_bytes_be()),
                "e": BASE64URL_NOPAD.encode(&key.e().to_bytes_be()),
            });
            (der, jwk)
        }
        Alg::EdDSA => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).expect("the operating system's random source failed");
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            let jwk = json!({
                "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
                "x": BASE64URL_NOPAD.encode(key.verifying_key().as_bytes()),
            });
            (seed.to_vec(), jwk)
        }
    }
}

/// The signer of a private key of `alg`.
fn signer_of(alg: Alg, private: &[u8]) -> std::result::Result<Signer, String> {
    Ok(match alg {
        Alg::RS256 => Signer::Rsa(rsa::pkcs1v15::SigningKey::new(
            rsa::RsaPrivateKey::from_pkcs1_der(private).map_err(|e| e.to_string())?,
        )),
        Alg::EdDSA => {
            let seed: [u8; 32] = private.try_into().map_err(|_| "an Ed25519 seed is 32 bytes".to_owned())?;
            Signer::Ed(ed25519_dalek::SigningKey::from_bytes(&seed))
        }
    })
}

impl SigningKey {
    /// A key that is never stored or published: for benchmarks.
    pub fn ephemeral(alg: Alg) -> SigningKey {
        let (private, _) = key_material(alg, "ephemeral");
        let signer = signer_of(alg, &private).expect("a key just made opens");
        SigningKey { kid: "ephemeral".into(), alg, signer }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring() -> Keyring {
        Keyring::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").expect("a test key ring parses")
    }

    fn verify_rs256(jws: &str, jwk: &Value) -> bool {
        use rsa::signature::Verifier;
        let n = rsa::BigUint::from_bytes_be(
            &BASE64URL_NOPAD.decode(jwk["n"].as_str().unwrap_or("").as_bytes()).unwrap_or_default(),
        );
        let e = rsa::BigUint::from_bytes_be(
            &BASE64URL_NOPAD.decode(jwk["e"].as_str().unwrap_or("").as_bytes()).unwrap_or_default(),
        );
        let Ok(public) = rsa::RsaPublicKey::new(n, e) else { return false };
        let (signed, signature) = jws.rsplit_once('.').unwrap_or_default();
        let signature = BASE64URL_NOPAD.decode(signature.as_bytes()).unwrap_or_default();
        let Ok(signature) = rsa::pkcs1v15::Signature::try_from(signature.as_slice()) else { return false };
        rsa::pkcs1v15::VerifyingKey::<Sha256>::new(public).verify(signed.as_bytes(), &signature).is_ok()
    }

    #[test]
    fn keys_are_made_only_while_a_place_is_empty() {
        let keyring = Keyring::parse("test:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").expect("key ring");
        let (rsa, ed) = (generate(&keyring, Alg::RS256), generate(&keyring, Alg::EdDSA));
        let placed = |alg: Alg, state: &str| {
            let key = if alg == Alg::RS256 { &rsa } else { &ed };
            StoredKey { state: state.to_owned(), ..key.clone() }
        };
        let mut stored = vec![placed(Alg::RS256, "current"), placed(Alg::RS256, "next"), placed(Alg::EdDSA, "current")];
        assert!(!all_places_filled(&stored), "EdDSA has no next key");
        stored.push(placed(Alg::EdDSA, "retired"));
        assert!(!all_places_filled(&stored), "a retired key fills no place");
        stored.push(placed(Alg::EdDSA, "next"));
        assert!(all_places_filled(&stored));
    }

    #[test]
    fn a_generated_key_signs_what_its_published_half_verifies() {
        let keyring = keyring();
        for alg in Alg::ALL {
            let stored = generate(&keyring, alg);
            let key = open(&keyring, &stored).expect("a sealed key opens with its ring");
            let jws = key.sign(&json!({ "sub": "x" }));
            let header: Value = serde_json::from_slice(
                &BASE64URL_NOPAD.decode(jws.split('.').next().unwrap_or("").as_bytes()).unwrap_or_default(),
            )
            .unwrap_or_default();
            assert_eq!(header["kid"], stored.kid.as_str());
            assert_eq!(header["alg"], alg.as_str());
            match alg {
                Alg::RS256 => {
                    assert!(verify_rs256(&jws, &stored.public_jwk));
                    let mut tampered = jws.clone();
                    tampered.insert(jws.find('.').unwrap_or(0) + 2, 'A');
                    assert!(!verify_rs256(&tampered, &stored.public_jwk));
                }
                Alg::EdDSA => {
                    use ed25519_dalek::Verifier;
                    let x = BASE64URL_NOPAD
                        .decode(stored.public_jwk["x"].as_str().unwrap_or("").as_bytes())
                        .unwrap_or_default();
                    let public =
                        ed25519_dalek::VerifyingKey::from_bytes(&x.try_into().unwrap_or([0; 32])).expect("a key");
                    let (signed, signature) = jws.rsplit_once('.').unwrap_or_default();
                    let signature = BASE64URL_NOPAD.decode(signature.as_bytes()).unwrap_or_default();
                    let signature = ed25519_dalek::Signature::from_slice(&signature).expect("64 bytes");
                    assert!(public.verify(signed.as_bytes(), &signature).is_ok());
                }
            }
        }
    }

    #[test]
    fn a_key_sealed_for_one_kid_does_not_open_as_another() {
        let keyring = keyring();
        let mut stored = generate(&keyring, Alg::EdDSA);
        stored.kid.push('x');
        assert!(keyring.open(&stored.sealing_key, &stored.private_sealed, stored.kid.as_bytes()).is_err());
    }
}
