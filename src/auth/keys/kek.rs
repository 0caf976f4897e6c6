//! The key-encryption key, and sealing private keys with it.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac as _};
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret as _, SecretBox};
use sha2::Sha256;

use super::KeyError;
use crate::auth::random_bytes;

/// The additional data that binds a sealed key to its row.
const SEAL_LABEL: &[u8] = b"gatehouse signing key v1\0";

/// The key-encryption key: seals the private signing keys kept in the database.
pub struct Kek {
    key: SecretBox<[u8; 32]>,
    id: String,
}

/// A copy for another holder (the mailer seals with the ring's key), still
/// in a zeroizing box.
impl Clone for Kek {
    fn clone(&self) -> Self {
        Self {
            key: SecretBox::new(Box::new(*self.key.expose_secret())),
            id: self.id.clone(),
        }
    }
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Kek {
    /// A KEK from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&bytes)
            .expect("HMAC takes keys of any length");
        mac.update(b"gatehouse key-encryption key id");
        let id = URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..9]);
        Self {
            key: SecretBox::new(Box::new(bytes)),
            id,
        }
    }

    /// Reads the KEK in `path`: 32 bytes, base64 (standard or URL-safe).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| KeyError::Read {
                    path: path.to_owned(),
                    source,
                })?,
            );
        warn_if_readable_by_others(path);
        let text = text.trim();
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
                .unwrap_or_default(),
        );
        let bytes = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| KeyError::BadKek {
            path: path.to_owned(),
        })?;
        Ok(Self::from_bytes(bytes))
    }

    /// Reads the KEK in `path`, or creates it (mode 0600) if there is none.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        if path.exists() {
            return Self::load(path);
        }
        let contents = format!("{}\n", STANDARD.encode(random_bytes::<32>()));
        create_private_file(path, contents.as_bytes())?;
        Self::load(path)
    }

    /// Identifies the KEK without revealing it (stored beside what it sealed).
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&(*self.key.expose_secret()).into())
    }

    /// Encrypts `secret`, bound to `kid`: base64url(nonce ‖ ciphertext ‖ tag).
    pub(super) fn seal(&self, kid: &str, secret: &[u8]) -> String {
        let nonce = random_bytes::<24>();
        let aad = [SEAL_LABEL, kid.as_bytes()].concat();
        let sealed = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any message this short");
        URL_SAFE_NO_PAD.encode([nonce.as_slice(), &sealed].concat())
    }

    /// Decrypts what [`Kek::seal`] sealed for `kid`; `None` if it was altered,
    /// moved to another `kid`, or sealed with another KEK.
    pub(super) fn open(&self, kid: &str, sealed: &str) -> Option<SecretBox<[u8; 32]>> {
        let plain = self.open_bytes(kid, sealed)?;
        let seed = <[u8; 32]>::try_from(plain.as_slice()).ok()?;
        Some(SecretBox::new(Box::new(seed)))
    }

    /// Decrypts what [`Kek::seal`] sealed for `kid`, whatever its length.
    fn open_bytes(&self, kid: &str, sealed: &str) -> Option<Zeroizing<Vec<u8>>> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < 24 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let aad = [SEAL_LABEL, kid.as_bytes()].concat();
        let nonce = XNonce::try_from(nonce).ok()?;
        let plain = self
            .cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .ok()?;
        Some(Zeroizing::new(plain))
    }

    /// Seals the 32-byte server secret `name` (bound to its name, apart
    /// from any signing key's id, which never holds a colon).
    pub fn seal_secret(&self, name: &str, secret: &[u8; 32]) -> String {
        self.seal(&format!("secret:{name}"), secret)
    }

    /// Opens what [`Kek::seal_secret`] sealed as `name`.
    pub fn open_secret(&self, name: &str, sealed: &str) -> Option<SecretBox<[u8; 32]>> {
        self.open(&format!("secret:{name}"), sealed)
    }
}

/// The label a TOTP secret is sealed under: bound to its account, apart
/// from signing keys' ids and server secrets' names.
fn totp_label(user_id: &str) -> String {
    format!("totp:{user_id}")
}

impl Kek {
    /// Seals the TOTP secret of the account `user_id`.
    pub fn seal_totp(&self, user_id: &str, secret: &[u8; 20]) -> String {
        self.seal(&totp_label(user_id), secret)
    }

    /// Opens what [`Kek::seal_totp`] sealed for `user_id`; `None` if it
    /// was altered, moved to another account or sealed with another KEK.
    pub fn open_totp(&self, user_id: &str, sealed: &str) -> Option<SecretBox<[u8; 20]>> {
        let plain = self.open_bytes(&totp_label(user_id), sealed)?;
        let secret = <[u8; 20]>::try_from(plain.as_slice()).ok()?;
        Some(SecretBox::new(Box::new(secret)))
    }
}

/// A key file others can read is worth a warning, not a refusal: the
/// operator may have reasons (a group-readable secret mount).
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(metadata) = std::fs::metadata(path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "the key-encryption key file is readable by others than its owner; chmod 600 it"
            );
        }
    }
}

/// Writes a new file readable by its owner only (0600), complete or not at
/// all: written aside, then hard-linked into place. When another process
/// wins the race, its file is kept.
fn create_private_file(path: &Path, contents: &[u8]) -> Result<(), KeyError> {
    let write_err = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        crate::store::create_private_dir(dir).map_err(write_err)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let written =
        write_new_private_file(&tmp, contents).and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(write_err(err)),
    }
}

fn write_new_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_with_its_kek_and_for_its_kid() {
        let kek = Kek::from_bytes(super::random_bytes());
        let sealed = kek.seal("kid-1", &[7; 32]);
        assert_eq!(
            kek.open("kid-1", &sealed).unwrap().expose_secret(),
            &[7; 32]
        );
        assert!(kek.open("kid-2", &sealed).is_none());
        let other = Kek::from_bytes(super::random_bytes());
        assert!(other.open("kid-1", &sealed).is_none());
        assert_ne!(kek.id(), other.id());
        let mut tampered = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        tampered[30] ^= 1;
        assert!(
            kek.open("kid-1", &URL_SAFE_NO_PAD.encode(tampered))
                .is_none()
        );
        assert!(!format!("{kek:?}").contains("key:"));
    }

    #[test]
    fn a_sealed_totp_secret_opens_only_for_its_account() {
        let kek = Kek::from_bytes(super::random_bytes());
        let sealed = kek.seal_totp("user-1", &[9; 20]);
        assert_eq!(
            kek.open_totp("user-1", &sealed).unwrap().expose_secret(),
            &[9; 20]
        );
        assert!(kek.open_totp("user-2", &sealed).is_none());
        assert!(kek.open_secret("user-1", &sealed).is_none());
        let other = Kek::from_bytes(super::random_bytes());
        assert!(other.open_totp("user-1", &sealed).is_none());
    }

    #[test]
    fn a_kek_file_is_created_once_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/key-encryption-key");
        let first = Kek::load_or_create(&path).unwrap();
        let again = Kek::load_or_create(&path).unwrap();
        assert_eq!(first.id(), again.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn a_kek_file_must_hold_32_base64_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        for bad in ["", "not base64!", &STANDARD.encode([1u8; 31])] {
            std::fs::write(&path, bad).unwrap();
            assert!(matches!(Kek::load(&path), Err(KeyError::BadKek { .. })));
        }
        std::fs::write(&path, format!("{}\n", STANDARD.encode([1u8; 32]))).unwrap();
        let standard = Kek::load(&path).unwrap();
        std::fs::write(&path, URL_SAFE_NO_PAD.encode([1u8; 32])).unwrap();
        assert_eq!(Kek::load(&path).unwrap().id(), standard.id());
    }
}
