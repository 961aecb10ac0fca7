//! Signed checkpoints of the audit log (issue 13.2): every so often, the heads of all the chains
//! (sequence number and hash), the time, the signing key's id and the signature of the checkpoint
//! before, signed with Ed25519. Stored in the database and written as a file to a directory the
//! operator keeps elsewhere (a mount of a bucket, a backup): whoever edits the log must then also
//! forge a signature they cannot make, and edit copies they cannot reach.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use data_encoding::BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::store::audit_chain::{self as db, CheckpointRow};
use crate::store::audit_retention::Dropped;

/// The key that signs checkpoints, from a base64 32-byte seed (`gatehouse audit keygen`).
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", key_id(&self.key.verifying_key()))
    }
}

impl Signer {
    pub fn from_base64(seed: &str) -> Result<Signer, String> {
        let bytes = BASE64.decode(seed.trim().as_bytes()).map_err(|e| format!("not base64: {e}"))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("{} bytes; a signing key is 32 (gatehouse audit keygen)", b.len()))?;
        Ok(Signer { key: SigningKey::from_bytes(&seed) })
    }

    /// A new random key.
    pub fn generate() -> Result<Signer, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        Ok(Signer { key: SigningKey::from_bytes(&seed) })
    }

    /// The seed, to keep secret (GATEHOUSE_AUDIT_SIGNING_KEY).
    pub fn seed_base64(&self) -> String {
        BASE64.encode(self.key.as_bytes())
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The checkpoint of `heads` and the `retention` records so far, after `previous`.
    pub fn sign(
        &self,
        heads: &[(i16, i64, Vec<u8>)],
        previous: Option<&CheckpointRow>,
        retention: &[Dropped],
    ) -> CheckpointRow {
        let created_at = Utc::now();
        let id = Uuid::now_v7();
        let body = Body {
            version: 1,
            id,
            created_at,
            key_id: key_id(&self.public_key()),
            heads: heads
                .iter()
                .map(|(chain, seq, hash)| Head { chain: *chain, seq: *seq, hash: hex::encode(hash) })
                .collect(),
            previous: previous.map(|p| hex::encode(&p.signature)),
            retention: retention_digest(retention),
        };
        let text = serde_json::to_string(&body).unwrap_or_default();
        let signature = self.key.sign(text.as_bytes()).to_bytes().to_vec();
        CheckpointRow { id, created_at, key_id: body.key_id, body: text, signature }
    }
}

/// A public key as `--public-key` takes it (base64 of the 32 bytes).
pub fn public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes = BASE64.decode(text.trim().as_bytes()).map_err(|e| format!("not base64: {e}"))?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| format!("{} bytes; a public key is 32", b.len()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("not an Ed25519 public key: {e}"))
}

pub fn public_key_base64(key: &VerifyingKey) -> String {
    BASE64.encode(key.as_bytes())
}

/// The id a checkpoint names its key by: the first 16 hex digits of the SHA-256 of the public key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))[..16].to_owned()
}

/// What a checkpoint signs, in this field order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Body {
    pub version: u8,
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub key_id: String,
    pub heads: Vec<Head>,
    /// The signature (hex) of the checkpoint before; `None` for the first.
    pub previous: Option<String>,
    /// The digest of every retention record so far (`retention_digest`); absent while there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
}

/// SHA-256 (hex) of the retention records in canonical JSON, oldest first: a checkpoint signs it,
/// so a record inserted, edited or deleted afterwards no longer matches (ADR 0014). `None` for none.
pub fn retention_digest(records: &[Dropped]) -> Option<String> {
    if records.is_empty() {
        return None;
    }
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            serde_json::json!({
                "partition": r.partition,
                "until": r.until.timestamp_micros(),
                "droppedAt": r.dropped_at.timestamp_micros(),
                "rows": r.rows,
                "legacyRows": r.legacy_rows,
                "keptForDays": r.kept_for_days,
                "anchors": r.anchors.0,
            })
        })
        .collect();
    let text = crate::store::chain::canonical_json(&serde_json::Value::Array(records));
    Some(hex::encode(Sha256::digest(text.as_bytes())))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Head {
    pub chain: i16,
    pub seq: i64,
    /// Hex.
    pub hash: String,
}

/// Whether `row`'s signature is valid for one of `keys` (the one its key id names).
pub fn signed_by(row: &CheckpointRow, keys: &[VerifyingKey]) -> bool {
    let Ok(signature) = Signature::from_slice(&row.signature) else { return false };
    keys.iter().filter(|k| key_id(k) == row.key_id).any(|k| k.verify(row.body.as_bytes(), &signature).is_ok())
}

/// A checkpoint as written to the directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct File {
    pub body: String,
    /// Hex.
    pub signature: String,
}

/// The file name of a checkpoint: sortable by time.
pub fn file_name(row: &CheckpointRow) -> String {
    format!("checkpoint-{}-{}.json", row.created_at.format("%Y%m%dT%H%M%S%.6fZ"), row.id)
}

/// Writes `row` to `dir` (through a temporary file, so a reader never sees half of one).
pub fn write_file(dir: &Path, row: &CheckpointRow) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let file = File { body: row.body.clone(), signature: hex::encode(&row.signature) };
    let path = dir.join(file_name(row));
    let temporary = dir.join(format!(".{}.tmp", file_name(row)));
    std::fs::write(&temporary, serde_json::to_vec_pretty(&file).unwrap_or_default())?;
    std::fs::rename(&temporary, &path)?;
    Ok(path)
}

/// Where and how often checkpoints are written.
#[derive(Debug)]
pub struct Settings {
    pub signer: Signer,
    pub every: Duration,
    pub dir: Option<PathBuf>,
}

/// Writes one checkpoint now (unless another replica just did), and its file.
pub async fn write(
    pool: &PgPool,
    settings: &Settings,
    min_age: chrono::TimeDelta,
) -> crate::store::Result<Option<CheckpointRow>> {
    let sign = |heads: &_, last: Option<&_>, retention: &_| settings.signer.sign(heads, last, retention);
    let Some(row) = db::checkpoint(pool, min_age, &sign).await? else {
        return Ok(None);
    };
    settings.copy(&row);
    Ok(Some(row))
}

impl Settings {
    /// Copies `row` to the checkpoint directory, if there is one.
    pub fn copy(&self, row: &CheckpointRow) {
        if let Some(dir) = &self.dir
            && let Err(error) = write_file(dir, row)
        {
            tracing::error!(%error, dir = %dir.display(), "cannot write the audit checkpoint's file");
        }
    }
}

/// Runs until `shutdown`: a checkpoint every `settings.every`, written by one replica.
pub async fn run(pool: PgPool, settings: std::sync::Arc<Settings>, shutdown: CancellationToken) {
    let min_age = chrono::TimeDelta::from_std(settings.every.mul_f64(0.9)).unwrap_or_default();
    loop {
        match write(&pool, &settings, min_age).await {
            Ok(Some(row)) => tracing::info!(id = %row.id, key = %row.key_id, "audit checkpoint written"),
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "cannot write an audit checkpoint"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(settings.every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_signed_over_its_body_and_chains_to_the_one_before() {
        let signer = Signer::generate().expect("random");
        let again = Signer::from_base64(&signer.seed_base64()).expect("seed");
        assert_eq!(again.public_key(), signer.public_key());
        let first = signer.sign(&[(0, 3, vec![1; 32])], None, &[]);
        let second = signer.sign(&[(0, 5, vec![2; 32])], Some(&first), &[]);
        assert!(!first.body.contains("retention"), "a checkpoint without retention reads as before");
        let body: Body = serde_json::from_str(&second.body).expect("body");
        assert_eq!(body.previous, Some(hex::encode(&first.signature)));
        assert_eq!(body.heads, [Head { chain: 0, seq: 5, hash: hex::encode([2; 32]) }]);
        let keys = [public_key(&public_key_base64(&signer.public_key())).expect("key")];
        assert!(signed_by(&second, &keys));
        let mut forged = second.clone();
        forged.body = forged.body.replace("\"seq\":5", "\"seq\":4");
        assert!(!signed_by(&forged, &keys), "an edited body fails");
        let other = Signer::generate().expect("random");
        assert!(!signed_by(&second, &[other.public_key()]), "another key fails");
        assert!(Signer::from_base64("c2hvcnQ=").expect_err("short").contains("32"));
    }
}
