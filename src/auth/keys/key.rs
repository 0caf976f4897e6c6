//! A signing key: an Ed25519 key pair (its `kid` the RFC 7638 thumbprint)
//! or an HS256 shared secret, and reading them from files.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use hmac::{Hmac, KeyInit, Mac as _};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::{Digest as _, Sha256};

/// Why a signing key could not be loaded or stored.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the signing key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the signing key {path} is not a PKCS#8 PEM Ed25519 private key")]
    Parse { path: PathBuf },
    #[error("cannot write the signing key {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the key-encryption key in {path} must be 32 random bytes, base64-encoded \
         (as `openssl rand -base64 32` prints)"
    )]
    BadKek { path: PathBuf },
    #[error(
        "the HS256 secret in {path} is {len} bytes; \
         at least {MIN_HMAC_SECRET_BYTES} random bytes are required"
    )]
    ShortSecret { path: PathBuf, len: usize },
}

/// Reads a PKCS#8 PEM Ed25519 private key.
pub fn read_ed25519_pem(path: &Path) -> Result<SigningKey, KeyError> {
    let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|_| KeyError::Parse {
        path: path.to_owned(),
    })
}

/// The shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// The key access tokens are signed and verified with.
pub struct TokenKey {
    algorithm: Algorithm,
    kid: String,
    /// The Ed25519 public key; `None` for an HMAC secret, which has no
    /// public part and must never be published.
    public_key: Option<[u8; 32]>,
    signer: Signer,
    pub(in crate::auth) decoding: DecodingKey,
}

/// How a key signs. An Ed25519 key is kept expanded: jsonwebtoken's
/// `encode` rebuilds it from PKCS#8 on every call, which derives the public
/// key again and doubles the cost of a signature.
enum Signer {
    Ed25519(SigningKey),
    Hs256(EncodingKey),
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TokenKey {
    /// Wraps an Ed25519 key; its `kid` is the RFC 7638 JWK thumbprint.
    pub fn new(key: &SigningKey) -> Self {
        let public_key = key.verifying_key().to_bytes();
        let x = URL_SAFE_NO_PAD.encode(public_key);
        let thumbprint_input = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint_input.as_bytes()));
        Self {
            algorithm: Algorithm::EdDSA,
            kid,
            public_key: Some(public_key),
            signer: Signer::Ed25519(key.clone()),
            decoding: DecodingKey::from_ed_der(&public_key),
        }
    }

    /// An HS256 key from the shared secret in the file at `path` (one
    /// trailing newline is ignored). Its `kid` is an HMAC of a fixed label
    /// under the secret, so it identifies the key without revealing it.
    pub fn load_hs256(path: &Path) -> Result<Self, KeyError> {
        let mut secret = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        for end in [b'\n', b'\r'] {
            if secret.last() == Some(&end) {
                secret.pop();
            }
        }
        if secret.len() < MIN_HMAC_SECRET_BYTES {
            return Err(KeyError::ShortSecret {
                path: path.to_owned(),
                len: secret.len(),
            });
        }
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret)
            .expect("HMAC takes keys of any length");
        mac.update(b"gatehouse hs256 key id");
        let kid = URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..16]);
        Ok(Self {
            algorithm: Algorithm::HS256,
            kid,
            public_key: None,
            signer: Signer::Hs256(
                EncodingKey::from_secret(&secret).expect("the secret is not empty"),
            ),
            decoding: DecodingKey::from_secret(&secret).expect("the secret is not empty"),
        })
    }

    /// A new random key.
    pub fn generate() -> Self {
        Self::new(&SigningKey::from_bytes(&crate::auth::random_bytes::<32>()))
    }

    /// Reads a PKCS#8 PEM Ed25519 key (as `openssl genpkey -algorithm ed25519` writes).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        read_ed25519_pem(path).map(|key| Self::new(&key))
    }

    /// The key id, as in the `kid` header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signing algorithm, the only one tokens verify with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The compact JWS of `claims` under `header` (whose `alg` is this
    /// key's), as `jsonwebtoken::encode` writes it.
    pub fn sign(
        &self,
        header: &jsonwebtoken::Header,
        claims: &impl serde::Serialize,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let key = match &self.signer {
            Signer::Hs256(key) => return jsonwebtoken::encode(header, claims, key),
            Signer::Ed25519(key) => key,
        };
        if header.alg != Algorithm::EdDSA {
            return Err(jsonwebtoken::errors::ErrorKind::InvalidAlgorithm.into());
        }
        let mut message = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header)?);
        message.push('.');
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(claims)?, &mut message);
        let signature = ed25519_dalek::Signer::sign(key, message.as_bytes());
        message.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut message);
        Ok(message)
    }

    /// The raw 32-byte Ed25519 public key; `None` for an HMAC secret.
    pub fn public_key(&self) -> Option<&[u8; 32]> {
        self.public_key.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;

    #[test]
    fn an_hs256_secret_must_be_at_least_32_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, format!("{}\n", "s".repeat(31))).unwrap();
        assert!(matches!(
            TokenKey::load_hs256(&path),
            Err(KeyError::ShortSecret { len: 31, .. })
        ));
        std::fs::write(&path, "s".repeat(32)).unwrap();
        let keys = TokenKey::load_hs256(&path).unwrap();
        assert_eq!(keys.algorithm(), Algorithm::HS256);
        assert!(keys.public_key().is_none());
        assert!(!keys.kid().contains("ssss"));
    }

    #[test]
    fn an_unreadable_key_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.pem");
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(TokenKey::load(&path), Err(KeyError::Parse { .. })));
    }

    #[test]
    fn an_ed25519_signature_is_the_one_jsonwebtoken_writes() {
        let signing = SigningKey::from_bytes(&[7; 32]);
        let key = TokenKey::new(&signing);
        let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
        header.typ = Some("at+jwt".into());
        header.kid = Some(key.kid().to_owned());
        let claims = serde_json::json!({"sub": "alice", "scope": "profile", "exp": 1});
        let der = signing.to_pkcs8_der().unwrap();
        let expected =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(der.as_bytes()))
                .unwrap();
        // Ed25519 is deterministic: the same bytes, signature included.
        assert_eq!(key.sign(&header, &claims).unwrap(), expected);

        let hs256 = jsonwebtoken::Header::new(Algorithm::HS256);
        assert!(
            key.sign(&hs256, &claims).is_err(),
            "the header names this key's algorithm"
        );
    }
}
