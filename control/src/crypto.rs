//! Server-side keys: the master key, what is derived from it, and sealing of revealable
//! secrets (SDK keys) with AES-256-GCM.
//!
//! The master key comes from `KEYGATE_MASTER_KEY`, or is generated into
//! `<data dir>/master.key` (mode 0600) on first run with a warning. Separate subkeys are
//! derived from it by HMAC-SHA256 with a label, so the OTP pepper, the CSRF key and the
//! sealing key are independent.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The subkeys of one master key, and its public key id.
#[derive(Clone)]
struct KeySet {
    kid: String,
    sealing: Aes256Gcm,
    otp_pepper: Zeroizing<[u8; 32]>,
    csrf: Zeroizing<[u8; 32]>,
}

impl KeySet {
    fn new(master: &[u8; 32]) -> KeySet {
        let sealing = derive(master, "keygate-seal-v1");
        KeySet {
            kid: keygate_shared::signing::key_id(&master[..]),
            sealing: Aes256Gcm::new_from_slice(&sealing[..]).expect("32-byte key"),
            otp_pepper: derive(master, "keygate-otp-pepper-v1"),
            csrf: derive(master, "keygate-csrf-v1"),
        }
    }

    fn open_raw(&self, b64: &str, context: &str) -> Option<Zeroizing<String>> {
        let raw = B64.decode(b64).ok()?;
        if raw.len() < 12 + 16 {
            return None;
        }
        let (nonce, ct) = raw.split_at(12);
        let pt = self
            .sealing
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .ok()?;
        String::from_utf8(pt).ok().map(Zeroizing::new)
    }
}

/// Keys derived from the master key (`KEYGATE_MASTER_KEY`) and, while a rotation is pending,
/// from the previous one (`KEYGATE_MASTER_KEY_PREVIOUS`): new values are sealed and keyed
/// under the current key only; values sealed, OTP codes hashed and CSRF tokens made under
/// the previous key still open and verify until it is removed. `Debug` prints nothing secret.
#[derive(Clone)]
pub struct Keys {
    current: KeySet,
    previous: Option<KeySet>,
}

/// Prefix of sealed values that name their master key: `mk1:<key id>:<base64>`. Values
/// without it (sealed before key ids) are tried under each configured key.
const SEALED_PREFIX: &str = "mk1:";

/// The master key id a sealed value names, or `None` for values sealed before key ids.
pub fn sealed_key_id(sealed: &str) -> Option<&str> {
    sealed
        .strip_prefix(SEALED_PREFIX)?
        .split_once(':')
        .map(|(kid, _)| kid)
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

/// Why the master key could not be loaded.
#[derive(Debug)]
pub struct KeyError(pub String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

fn derive(master: &[u8; 32], label: &str) -> Zeroizing<[u8; 32]> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(master).expect("any key length");
    m.update(label.as_bytes());
    Zeroizing::new(m.finalize().into_bytes().into())
}

/// Parses a 32-byte key written as 64 hex characters or base64.
pub fn parse_master_key(text: &str) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let text = text.trim();
    let mut out = Zeroizing::new([0u8; 32]);
    if text.len() == 64 && hex::decode_to_slice(text, &mut out[..]).is_ok() {
        return Ok(out);
    }
    match B64.decode(text) {
        Ok(bytes) if bytes.len() == 32 => {
            out.copy_from_slice(&bytes);
            Ok(out)
        }
        _ => Err(KeyError(
            "the master key must be 32 bytes, written as 64 hex characters or base64".into(),
        )),
    }
}

impl Keys {
    /// Derives every subkey from a master key.
    pub fn from_master(master: &[u8; 32]) -> Keys {
        Keys {
            current: KeySet::new(master),
            previous: None,
        }
    }

    /// The same keys, also accepting what was sealed or keyed under `previous` (the master
    /// key being rotated away from). A previous key equal to the current one is ignored.
    pub fn with_previous(self, previous: &[u8; 32]) -> Keys {
        let previous = KeySet::new(previous);
        if previous.kid == self.current.kid {
            return self;
        }
        Keys {
            previous: Some(previous),
            ..self
        }
    }

    /// Loads the configured master key, or the one generated in `data_dir` (creating it on
    /// first run). Returns the keys and whether a key was generated just now.
    pub fn load_or_generate(
        configured: Option<&str>,
        data_dir: &Path,
    ) -> Result<(Keys, bool), KeyError> {
        if let Some(text) = configured {
            let master = parse_master_key(text)?;
            return Ok((Keys::from_master(&master), false));
        }
        let path = data_dir.join("master.key");
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| KeyError(format!("cannot read {}: {e}", path.display())))?;
            let master = parse_master_key(&text)?;
            return Ok((Keys::from_master(&master), false));
        }
        let mut master = Zeroizing::new([0u8; 32]);
        keygate_shared::random::fill(&mut master[..]);
        write_private(&path, &hex::encode(&master[..]))
            .map_err(|e| KeyError(format!("cannot write {}: {e}", path.display())))?;
        Ok((Keys::from_master(&master), true))
    }

    /// The current master key's id (16 hex characters; names the key, reveals nothing).
    pub fn key_id(&self) -> &str {
        &self.current.kid
    }

    /// The previous master key's id, while one is configured.
    pub fn previous_key_id(&self) -> Option<&str> {
        self.previous.as_ref().map(|p| p.kid.as_str())
    }

    /// The pepper for new OTP code hashes (the current key's).
    pub fn otp_pepper(&self) -> &[u8] {
        &self.current.otp_pepper[..]
    }

    /// Every pepper an OTP hash may have been made with: current first, then previous.
    pub fn otp_peppers(&self) -> Vec<&[u8]> {
        self.sets().map(|k| &k.otp_pepper[..]).collect()
    }

    /// The key new CSRF tokens are derived with (the current key's).
    pub fn csrf_key(&self) -> &[u8] {
        &self.current.csrf[..]
    }

    /// Every key a CSRF token may have been derived with: current first, then previous.
    pub fn csrf_keys(&self) -> Vec<&[u8]> {
        self.sets().map(|k| &k.csrf[..]).collect()
    }

    fn sets(&self) -> impl Iterator<Item = &KeySet> {
        std::iter::once(&self.current).chain(self.previous.as_ref())
    }

    /// Encrypts a secret under the current key; `context` (e.g. the row id) is bound as
    /// associated data, so a sealed value copied to another row does not open.
    /// Output: `mk1:<key id>:base64(nonce || ciphertext)`.
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let mut nonce = [0u8; 12];
        keygate_shared::random::fill(&mut nonce);
        let ct = self
            .current
            .sealing
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of a short message cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("{SEALED_PREFIX}{}:{}", self.current.kid, B64.encode(out))
    }

    /// Decrypts what [`Keys::seal`] produced for the same context, under the key it names
    /// (current or previous; values without a key id are tried under both); `None` if it
    /// was altered, sealed for another context, or under a key not configured here.
    pub fn open(&self, sealed: &str, context: &str) -> Option<Zeroizing<String>> {
        match sealed.strip_prefix(SEALED_PREFIX) {
            Some(rest) => {
                let (kid, b64) = rest.split_once(':')?;
                self.sets().find(|k| k.kid == kid)?.open_raw(b64, context)
            }
            None => self.sets().find_map(|k| k.open_raw(sealed, context)),
        }
    }

    /// Whether a sealed value is already under the current key (a rotation skips it).
    pub fn is_current(&self, sealed: &str) -> bool {
        sealed_key_id(sealed) == Some(self.current.kid.as_str())
    }
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut f = options.open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::from_master(&[7u8; 32])
    }

    #[test]
    fn sealed_values_open_only_in_their_context() {
        let k = keys();
        let sealed = k.seal("sk_live_secret", "row-1");
        assert!(!sealed.contains("sk_live_secret"));
        assert_eq!(
            k.open(&sealed, "row-1").as_deref().map(String::as_str),
            Some("sk_live_secret")
        );
        assert!(k.open(&sealed, "row-2").is_none());
        assert!(Keys::from_master(&[8u8; 32])
            .open(&sealed, "row-1")
            .is_none());
        let b64 = sealed.rsplit(':').next().unwrap();
        let mut tampered = B64.decode(b64).unwrap();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let tampered = format!("mk1:{}:{}", k.key_id(), B64.encode(tampered));
        assert!(k.open(&tampered, "row-1").is_none());
        assert!(k.open("not base64!", "row-1").is_none());
    }

    #[test]
    fn master_keys_parse_from_hex_or_base64_only_at_32_bytes() {
        assert!(parse_master_key(&"ab".repeat(32)).is_ok());
        assert!(parse_master_key(&B64.encode([1u8; 32])).is_ok());
        assert!(parse_master_key("short").is_err());
        assert!(parse_master_key(&B64.encode([1u8; 16])).is_err());
    }

    #[test]
    fn subkeys_are_independent() {
        let k = keys();
        assert_ne!(k.otp_pepper(), k.csrf_key());
        assert_eq!(format!("{k:?}"), "Keys(<redacted>)");
    }

    #[test]
    fn the_previous_key_opens_until_retired_and_ids_name_keys() {
        let old = Keys::from_master(&[1u8; 32]);
        let sealed_old = old.seal("sk_live_a", "row-1");
        assert_eq!(sealed_key_id(&sealed_old), Some(old.key_id()));
        // Legacy value (no key id): the bare base64 part.
        let legacy = sealed_old.rsplit(':').next().unwrap().to_owned();
        let rotating = Keys::from_master(&[2u8; 32]).with_previous(&[1u8; 32]);
        assert_eq!(rotating.previous_key_id(), Some(old.key_id()));
        assert!(!rotating.is_current(&sealed_old));
        for s in [&sealed_old, &legacy] {
            assert_eq!(
                rotating.open(s, "row-1").as_deref().map(String::as_str),
                Some("sk_live_a")
            );
        }
        let resealed = rotating.seal("sk_live_a", "row-1");
        assert!(rotating.is_current(&resealed));
        assert_eq!(rotating.otp_peppers()[1], old.otp_pepper());
        assert_eq!(rotating.csrf_keys()[1], old.csrf_key());
        // Retired: only the new key remains.
        let retired = Keys::from_master(&[2u8; 32]);
        assert!(retired.open(&sealed_old, "row-1").is_none());
        assert!(retired.open(&legacy, "row-1").is_none());
        assert!(retired.open(&resealed, "row-1").is_some());
        assert_eq!(retired.otp_peppers().len(), 1);
        // A value naming an unknown key id is not tried under others.
        let forged = resealed.replace(retired.key_id(), old.key_id());
        assert!(rotating.open(&forged, "row-1").is_none());
        // The same key as previous is no previous key.
        assert!(Keys::from_master(&[2u8; 32])
            .with_previous(&[2u8; 32])
            .previous_key_id()
            .is_none());
    }

    #[test]
    fn a_generated_master_key_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, generated) = Keys::load_or_generate(None, dir.path()).unwrap();
        assert!(generated);
        let (b, generated) = Keys::load_or_generate(None, dir.path()).unwrap();
        assert!(!generated);
        let sealed = a.seal("x", "c");
        assert!(b.open(&sealed, "c").is_some());
    }
}
