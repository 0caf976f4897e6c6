//! The identifiers the services and the store pass between them, as types:
//! a user id is never a session id, a token hash never a token. Each is
//! text on the wire and in the database (serde and sqlx see the string),
//! and nowhere else.

/// Declares a string newtype that serde, sqlx and `Display` see through.
macro_rules! text_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            /// The text, for the wire and the database.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// An account's id: a UUID, assigned at registration.
    UserId
);
text_id!(
    /// A session's id (the refresh-token family): a UUID, assigned at login.
    SessionId
);
text_id!(
    /// The hex SHA-256 of a refresh token: the only form the store sees.
    TokenHash
);
text_id!(
    /// The case-insensitive key of a username (see `auth::username`).
    UsernameKey
);

impl UserId {
    /// A new random id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

impl SessionId {
    /// A new random id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

/// Ids arrive as text: in an access token's claims, a path, a test.
impl From<&str> for UserId {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl From<&str> for SessionId {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl From<uuid::Uuid> for SessionId {
    fn from(id: uuid::Uuid) -> Self {
        Self(id.to_string())
    }
}

impl TokenHash {
    /// The hash of `token`.
    pub fn of(token: &str) -> Self {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(token.as_bytes());
        Self(digest.iter().map(|b| format!("{b:02x}")).collect())
    }
}

impl UsernameKey {
    /// The key of `username`: its NFKC form, lower-cased. Two names with the
    /// same key are the same account, so `Alice`, `alice` and the
    /// full-width `ａｌｉｃｅ` all log in as one user.
    pub fn of(username: &str) -> Self {
        use unicode_normalization::UnicodeNormalization as _;
        Self(username.nfkc().collect::<String>().to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_hash_is_hex_sha256() {
        assert_eq!(
            TokenHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_username_key_folds_case_and_width() {
        assert_eq!(UsernameKey::of("Alice"), UsernameKey::of("ａｌｉｃｅ"));
        assert_eq!(UsernameKey::of("Alice").as_str(), "alice");
    }
}
