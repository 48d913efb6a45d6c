//! KV storage: records by key digest, and the nonces of sync pushes already received.
//!
//! Layout of the `KEYGATE_KV` namespace:
//! - `rec:<64 hex digest>`: the [`EdgeRecord`] JSON, written only by sync;
//! - `nonce:<nonce>`: a sync nonce seen, expiring after `NONCE_TTL_SECS`.
//!
//! KV is eventually consistent across locations (a write is visible everywhere within about
//! 60 s, at once in the location that wrote it), which is why every record carries a version
//! and why the isolate cache TTL is short.

use keygate_shared::key::KeyDigest;
#[cfg(target_arch = "wasm32")]
use keygate_shared::record::EdgeRecord;

/// The KV key of a record.
pub fn record_key(digest: &KeyDigest) -> String {
    format!("rec:{}", digest.to_hex())
}

/// The KV key remembering a sync nonce.
pub fn nonce_key(nonce: &str) -> String {
    format!("nonce:{nonce}")
}

/// The worker's KV namespace.
#[cfg(target_arch = "wasm32")]
pub struct Store {
    kv: worker::KvStore,
}

#[cfg(target_arch = "wasm32")]
impl Store {
    /// The `KEYGATE_KV` binding.
    pub fn from_env(env: &worker::Env) -> Result<Self, crate::error::ApiError> {
        env.kv(crate::config::KV_BINDING)
            .map(|kv| Store { kv })
            .map_err(|_| {
                crate::error::ApiError::not_configured("the KEYGATE_KV binding is missing")
            })
    }

    /// The stored record for `digest`. A value that does not parse counts as absent (it can
    /// only come from outside keygate) and is logged.
    pub async fn record(
        &self,
        digest: &KeyDigest,
    ) -> Result<Option<EdgeRecord>, crate::error::ApiError> {
        let text = self
            .kv
            .get(&record_key(digest))
            .text()
            .await
            .map_err(storage_error)?;
        Ok(
            text.and_then(|t| match serde_json::from_str::<EdgeRecord>(&t) {
                Ok(r) if r.key_digest == *digest => Some(r),
                _ => {
                    worker::console_error!(
                        "keygate: unreadable record under {}",
                        record_key(digest)
                    );
                    None
                }
            }),
        )
    }

    /// Stores `record` under its digest.
    pub async fn put_record(&self, record: &EdgeRecord) -> Result<(), crate::error::ApiError> {
        let json = serde_json::to_string(record)
            .map_err(|_| crate::error::ApiError::storage_unavailable())?;
        self.kv
            .put(&record_key(&record.key_digest), json)
            .map_err(storage_error)?
            .execute()
            .await
            .map_err(storage_error)
    }

    /// Whether a sync nonce was seen within `NONCE_TTL_SECS`.
    pub async fn nonce_seen(&self, nonce: &str) -> Result<bool, crate::error::ApiError> {
        let v = self
            .kv
            .get(&nonce_key(nonce))
            .text()
            .await
            .map_err(storage_error)?;
        Ok(v.is_some())
    }

    /// Remembers a sync nonce for `NONCE_TTL_SECS`.
    pub async fn remember_nonce(&self, nonce: &str) -> Result<(), crate::error::ApiError> {
        self.kv
            .put(&nonce_key(nonce), "1")
            .map_err(storage_error)?
            .expiration_ttl(keygate_shared::signing::NONCE_TTL_SECS)
            .execute()
            .await
            .map_err(storage_error)
    }
}

#[cfg(target_arch = "wasm32")]
fn storage_error(e: worker::KvError) -> crate::error::ApiError {
    worker::console_error!("keygate: KV error: {e:?}");
    crate::error::ApiError::storage_unavailable()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_keys_are_namespaced() {
        let d = keygate_shared::key::digest("k");
        assert_eq!(record_key(&d), format!("rec:{}", d.to_hex()));
        assert_eq!(nonce_key("abc"), "nonce:abc");
    }
}
