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

/// Keys derived from the master key. `Debug` prints nothing secret.
#[derive(Clone)]
pub struct Keys {
    sealing: Aes256Gcm,
    otp_pepper: Zeroizing<[u8; 32]>,
    csrf: Zeroizing<[u8; 32]>,
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
        let sealing = derive(master, "keygate-seal-v1");
        Keys {
            sealing: Aes256Gcm::new_from_slice(&sealing[..]).expect("32-byte key"),
            otp_pepper: derive(master, "keygate-otp-pepper-v1"),
            csrf: derive(master, "keygate-csrf-v1"),
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

    /// The pepper for OTP code hashes.
    pub fn otp_pepper(&self) -> &[u8] {
        &self.otp_pepper[..]
    }

    /// The key CSRF tokens are derived with.
    pub fn csrf_key(&self) -> &[u8] {
        &self.csrf[..]
    }

    /// Encrypts a secret; `context` (e.g. the row id) is bound as associated data, so a
    /// sealed value copied to another row does not open. Output: base64(nonce || ciphertext).
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let mut nonce = [0u8; 12];
        keygate_shared::random::fill(&mut nonce);
        let ct = self
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
        B64.encode(out)
    }

    /// Decrypts what [`Keys::seal`] produced for the same context; `None` if it was altered,
    /// sealed for another context, or under another master key.
    pub fn open(&self, sealed: &str, context: &str) -> Option<Zeroizing<String>> {
        let raw = B64.decode(sealed).ok()?;
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
        let mut tampered = B64.decode(&sealed).unwrap();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(k.open(&B64.encode(tampered), "row-1").is_none());
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
