//! Secrets at rest (SPEC 5): app secrets are stored sealed with AES-256-GCM under a master key,
//! so that a copy of the database (or of its WAL) does not give away partners' signing secrets.
//!
//! A sealed value is `enc1:` and the base64 of a fresh 96-bit nonce followed by the ciphertext
//! and its tag. A value without the prefix was written before secrets were sealed: it is read
//! as it is, and `Store::seal_secrets` seals it.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::StoreError;

const PREFIX: &str = "enc1:";
const NONCE_LEN: usize = 12;

/// A 32-byte master key.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// A new random key.
    pub fn generate() -> MasterKey {
        MasterKey(Aes256Gcm::generate_key(&mut OsRng).into())
    }

    /// The key from its base64 text (as `LOANWIRE_MASTER_KEY` and the key file hold it).
    pub fn from_base64(text: &str) -> Result<MasterKey, String> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|e| format!("the master key is not base64: {e}"))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("the master key is {} bytes; it must be 32", b.len()))?;
        Ok(MasterKey(key))
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

/// Seals and opens stored secrets with one master key.
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl SecretBox {
    pub fn new(key: &MasterKey) -> SecretBox {
        SecretBox {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0)),
        }
    }

    pub fn seal(&self, secret: &str) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, secret.as_bytes())
            .expect("AES-GCM encrypts any length we store");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}", B64.encode(bytes))
    }

    /// The secret a stored value holds; a value from before sealing is returned as it is.
    pub fn open(&self, stored: &str) -> Result<String, StoreError> {
        let Some(sealed) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let bytes = B64
            .decode(sealed)
            .map_err(|e| StoreError::Unavailable(format!("a sealed secret is damaged: {e}")))?;
        if bytes.len() < NONCE_LEN {
            return Err(StoreError::Unavailable("a sealed secret is damaged".into()));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| {
                StoreError::Unavailable(
                    "a stored secret does not open with this master key: is it the key the secrets were sealed with?".into(),
                )
            })?;
        String::from_utf8(plain)
            .map_err(|_| StoreError::Unavailable("a sealed secret is not text".into()))
    }

    /// Whether a stored value is sealed.
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_its_key_only_and_never_shows_in_the_stored_text() {
        let key = MasterKey::generate();
        let b = SecretBox::new(&key);
        let sealed = b.seal("4f0c2d9e8a7b");
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("4f0c2d9e8a7b"));
        assert_ne!(sealed, b.seal("4f0c2d9e8a7b"), "a fresh nonce each time");
        assert_eq!(b.open(&sealed).unwrap(), "4f0c2d9e8a7b");
        let other = SecretBox::new(&MasterKey::generate());
        assert!(other
            .open(&sealed)
            .unwrap_err()
            .to_string()
            .contains("master key"));
        assert_eq!(b.open("plain-from-before").unwrap(), "plain-from-before");
        let again = MasterKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(
            SecretBox::new(&again).open(&sealed).unwrap(),
            "4f0c2d9e8a7b"
        );
        assert!(MasterKey::from_base64("c2hvcnQ=")
            .unwrap_err()
            .contains("32"));
    }
}
