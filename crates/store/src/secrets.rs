//! Secrets at rest (SPEC 5): app secrets are stored sealed with AES-256-GCM under a master key,
//! so that a copy of the database (or of its WAL) does not give away partners' signing secrets.
//!
//! A sealed value is `enc1:` and the base64 of a fresh 96-bit nonce followed by the ciphertext
//! and its tag. A value without the prefix was written before secrets were sealed: it is read
//! as it is, and `Store::seal_secrets` seals it.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use std::sync::RwLock;

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

/// Parses a list of keys, one base64 key per line (or separated by commas or spaces), the key
/// that seals first; `#` starts a comment line.
pub fn parse_keys(text: &str) -> Result<Vec<MasterKey>, String> {
    let keys = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split([',', ' ', '\t']))
        .filter(|k| !k.trim().is_empty())
        .map(MasterKey::from_base64)
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err("no master key is given".into());
    }
    Ok(keys)
}

/// Where a box reads its keys again: a key file that `loanwire keys rotate` rewrites while
/// gateways run.
pub type KeyReload = Box<dyn Fn() -> Result<Vec<MasterKey>, String> + Send + Sync>;

/// Seals stored secrets with the first of its master keys and opens them with any of them, so
/// that secrets sealed before a rotation keep opening while they are sealed again.
pub struct SecretBox {
    ciphers: RwLock<Vec<Aes256Gcm>>,
    reload: Option<KeyReload>,
}

fn ciphers(keys: &[MasterKey]) -> Vec<Aes256Gcm> {
    keys.iter()
        .map(|k| Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&k.0)))
        .collect()
}

impl SecretBox {
    pub fn new(key: &MasterKey) -> SecretBox {
        SecretBox::with_keys(std::slice::from_ref(key), None)
    }

    /// A box over `keys` (the first seals; none is empty); with `reload`, a secret that none of
    /// them opens, and every seal, first read the keys again, so that a running gateway follows
    /// a rotation made by another process.
    pub fn with_keys(keys: &[MasterKey], reload: Option<KeyReload>) -> SecretBox {
        assert!(!keys.is_empty(), "a secret box needs a key");
        SecretBox {
            ciphers: RwLock::new(ciphers(keys)),
            reload,
        }
    }

    /// Reads the keys again; `false` when there is nothing to read them from or it failed
    /// (the keys held are kept).
    fn reload(&self) -> bool {
        let Some(reload) = &self.reload else {
            return false;
        };
        match reload() {
            Ok(keys) if !keys.is_empty() => {
                *self.ciphers.write().expect("secret box") = ciphers(&keys);
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the master keys again; keeping those held");
                false
            }
        }
    }

    pub fn seal(&self, secret: &str) -> String {
        self.reload();
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self.ciphers.read().expect("secret box")[0]
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
        let plain = match self.open_with_any(nonce, ciphertext) {
            Some(p) => p,
            None if self.reload() => self.open_with_any(nonce, ciphertext).ok_or_else(no_key)?,
            None => return Err(no_key()),
        };
        String::from_utf8(plain)
            .map_err(|_| StoreError::Unavailable("a sealed secret is not text".into()))
    }

    fn open_with_any(&self, nonce: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
        let ciphers = self.ciphers.read().expect("secret box");
        ciphers
            .iter()
            .find_map(|c| c.decrypt(Nonce::from_slice(nonce), ciphertext).ok())
    }

    /// Whether a stored value is sealed under the key that seals now (what `keys rotate`
    /// leaves every secret in).
    pub fn is_current(&self, stored: &str) -> bool {
        let Some(bytes) = stored
            .strip_prefix(PREFIX)
            .and_then(|s| B64.decode(s).ok())
            .filter(|b| b.len() >= NONCE_LEN)
        else {
            return false;
        };
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        self.ciphers.read().expect("secret box")[0]
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .is_ok()
    }

    /// Whether a secret and its previous one (during a rotation's grace) are both sealed under
    /// the key that seals now: what `Store::seal_secrets` leaves alone.
    pub fn pair_is_current(&self, secret: &str, previous: Option<&str>) -> bool {
        self.is_current(secret) && previous.is_none_or(|s| self.is_current(s))
    }

    /// Whether a stored value is sealed.
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }
}

fn no_key() -> StoreError {
    StoreError::Unavailable(
        "a stored secret does not open with the master keys held: are they the keys the secrets were sealed with?".into(),
    )
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
            .contains("master keys"));
        assert_eq!(b.open("plain-from-before").unwrap(), "plain-from-before");
        let again = MasterKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(
            SecretBox::new(&again).open(&sealed).unwrap(),
            "4f0c2d9e8a7b"
        );
        assert!(b.is_current(&sealed) && !b.is_current("plain"));
        assert!(MasterKey::from_base64("c2hvcnQ=")
            .unwrap_err()
            .contains("32"));
    }

    #[test]
    fn a_box_seals_with_its_first_key_and_opens_what_any_of_its_keys_sealed() {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let sealed_old = SecretBox::new(&old).seal("s3cret");
        let both = SecretBox::with_keys(&[new.clone(), old.clone()], None);
        assert_eq!(both.open(&sealed_old).unwrap(), "s3cret");
        assert!(!both.is_current(&sealed_old));
        let sealed_new = both.seal("s3cret");
        assert!(both.is_current(&sealed_new));
        assert!(SecretBox::new(&old).open(&sealed_new).is_err());
        let keys = parse_keys(&format!(
            "# rotated\n{}\n{}\n",
            new.to_base64(),
            old.to_base64()
        ));
        assert_eq!(keys.unwrap().len(), 2);
        assert!(parse_keys("# nothing\n").is_err());
    }

    #[test]
    fn a_box_with_a_reload_follows_a_rotation_made_elsewhere() {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let file = std::sync::Arc::new(std::sync::Mutex::new(vec![old.clone()]));
        let source = file.clone();
        let running = SecretBox::with_keys(
            std::slice::from_ref(&old),
            Some(Box::new(move || Ok(source.lock().unwrap().clone()))),
        );
        *file.lock().unwrap() = vec![new.clone(), old.clone()];
        let sealed_elsewhere = SecretBox::new(&new).seal("abc");
        assert_eq!(running.open(&sealed_elsewhere).unwrap(), "abc");
        assert!(SecretBox::new(&new).open(&running.seal("x")).is_ok());
    }
}
