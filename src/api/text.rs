//! String fields of request bodies: only ever a JSON string, and with their
//! rules in the spec.
//!
//! poem-openapi's `String` also accepts numbers and booleans (`5` becomes
//! `"5"`), which contradicts the `type: string` the spec declares, so bodies
//! use [`Text`]. Its [`Rules`] put a field's length and pattern into the
//! spec, so that generated clients and schema fuzzers know them; the server
//! enforces the same rules in its services, where each refusal gets a
//! specific error code (`invalid_password` says why, not just "bad request").

use std::borrow::Cow;
use std::marker::PhantomData;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

/// What the spec says about a string field.
pub trait Rules: Send + Sync + 'static {
    const MIN_LENGTH: Option<usize> = None;
    const MAX_LENGTH: Option<usize> = None;
    const PATTERN: Option<&'static str> = None;
    const FORMAT: Option<&'static str> = None;
    /// The only values the spec lists (the server may still parse others).
    const ENUM: Option<&'static [&'static str]> = None;
}

/// Any string.
pub struct Any;
impl Rules for Any {}

/// Control characters (Unicode `Cc`), as `char::is_control` sees them,
/// for a regex character class. Escaped (`\uHHHH`, which ECMA-262, Python
/// and Rust regexes all read) so that the spec holds no raw control bytes.
macro_rules! control {
    () => {
        r"\u0000-\u001F\u007F-\u009F"
    };
}
/// White space, as `char::is_whitespace` sees it, for a character class.
macro_rules! space {
    () => {
        r"\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
    };
}

/// A client's id (see `auth::client::valid_client_id`).
pub struct ClientId;
impl Rules for ClientId {
    const MAX_LENGTH: Option<usize> = Some(crate::auth::client::MAX_CLIENT_ID_CHARS);
    const PATTERN: Option<&'static str> = Some(concat!("^[^", control!(), "]*$"));
}

/// A username (see `auth::username::check_username`).
pub struct Username;
impl Rules for Username {
    const MIN_LENGTH: Option<usize> = Some(1);
    const MAX_LENGTH: Option<usize> = Some(crate::auth::username::MAX_USERNAME_CHARS);
    const PATTERN: Option<&'static str> = Some("^[A-Za-z0-9._@+-]+$");
}

/// A new password (see `auth::password::check_policy`). The minimum is the
/// default of `--min-password-length`; the maximum is 1024 *bytes* of UTF-8,
/// which only equals 1024 characters for ASCII.
pub struct NewPassword;
impl Rules for NewPassword {
    const MIN_LENGTH: Option<usize> = Some(8);
    const MAX_LENGTH: Option<usize> = Some(crate::auth::password::MAX_PASSWORD_BYTES);
    const PATTERN: Option<&'static str> = Some(concat!("^[^", control!(), "]*$"));
    const FORMAT: Option<&'static str> = Some("password");
}

/// A password presented at login: no account has a longer one, so a longer
/// one is refused like a wrong one.
pub struct Password;
impl Rules for Password {
    const MIN_LENGTH: Option<usize> = Some(1);
    const MAX_LENGTH: Option<usize> = Some(crate::auth::password::MAX_PASSWORD_BYTES);
    const FORMAT: Option<&'static str> = Some("password");
}

/// A username presented at login (no account has a longer one).
pub struct LoginName;
impl Rules for LoginName {
    const MIN_LENGTH: Option<usize> = Some(1);
    const MAX_LENGTH: Option<usize> = Some(crate::auth::username::MAX_USERNAME_CHARS);
}

/// A refresh token: no token Gatehouse issued is longer. (Logout and
/// revocation answer any token they do not know alike, however it looks.)
pub struct RefreshToken;
impl Rules for RefreshToken {
    const MIN_LENGTH: Option<usize> = Some(1);
    const MAX_LENGTH: Option<usize> = Some(crate::auth::client::MAX_REFRESH_TOKEN_BYTES);
}

/// An authorization code (RFC 6749 §4.1.3): none Gatehouse issues is
/// longer.
pub struct AuthorizationCode;
impl Rules for AuthorizationCode {
    const MIN_LENGTH: Option<usize> = Some(1);
    const MAX_LENGTH: Option<usize> = Some(128);
}

/// A redirect URI, repeated at the token endpoint (RFC 6749 §4.1.3).
pub struct RedirectUri;
impl Rules for RedirectUri {
    const MAX_LENGTH: Option<usize> = Some(crate::auth::authorize::MAX_PARAM_CHARS);
}

/// A PKCE code verifier (RFC 7636 §4.1).
pub struct CodeVerifier;
impl Rules for CodeVerifier {
    const MIN_LENGTH: Option<usize> = Some(43);
    const MAX_LENGTH: Option<usize> = Some(128);
    const PATTERN: Option<&'static str> = Some(r"^[A-Za-z0-9._~-]*$");
}

/// A token to revoke: a refresh token or an access token (a JWT); none
/// Gatehouse issues is longer (RFC 7009 §2.2: others get 200 all the same).
pub struct AnyToken;
impl Rules for AnyToken {
    const MIN_LENGTH: Option<usize> = Some(1);
    const MAX_LENGTH: Option<usize> = Some(crate::auth::client::MAX_ACCESS_TOKEN_BYTES);
}

/// The longest `scope` worth reading: every known scope fits many times.
pub const MAX_SCOPE_CHARS: usize = 1024;

/// Space-separated scopes (RFC 6749 §3.3).
pub struct Scope;
impl Rules for Scope {
    const MAX_LENGTH: Option<usize> = Some(MAX_SCOPE_CHARS);
    const PATTERN: Option<&'static str> = Some(r"^[\x21\x23-\x5B\x5D-\x7E ]*$");
}

/// An RFC 7009 `token_type_hint`: `refresh_token` or `access_token`; any
/// other is ignored, as §2.1 asks, so the spec bounds it without listing.
pub struct TokenTypeHint;
impl Rules for TokenTypeHint {
    const MAX_LENGTH: Option<usize> = Some(64);
}

/// The `mfa_token` of a password step waiting for a second factor; none
/// Gatehouse issues is longer.
pub struct MfaToken;
impl Rules for MfaToken {
    const MIN_LENGTH: Option<usize> = Some(1);
    const MAX_LENGTH: Option<usize> = Some(128);
}

/// A six-digit TOTP code (spaces between the digits are allowed).
pub struct Otp;
impl Rules for Otp {
    const MIN_LENGTH: Option<usize> = Some(1);
    const MAX_LENGTH: Option<usize> = Some(16);
}

/// A recovery code, `xxxxx-xxxxx` (any case; the dash is optional).
pub struct RecoveryCode;
impl Rules for RecoveryCode {
    const MIN_LENGTH: Option<usize> = Some(1);
    const MAX_LENGTH: Option<usize> = Some(32);
}

/// A TOTP code or a recovery code.
pub struct SecondFactorCode;
impl Rules for SecondFactorCode {
    const MIN_LENGTH: Option<usize> = Some(1);
    const MAX_LENGTH: Option<usize> = Some(32);
}

/// The token of a mailed link (`?token=` of a reset or verification link).
pub struct LinkToken;
impl Rules for LinkToken {
    const MAX_LENGTH: Option<usize> = Some(128);
}

/// A `client_secret`: accepted and ignored (clients are public).
pub struct ClientSecret;
impl Rules for ClientSecret {
    const MAX_LENGTH: Option<usize> = Some(1024);
    const FORMAT: Option<&'static str> = Some("password");
}

/// An email address: one `@` between non-empty parts, no spaces or control
/// characters (see `auth::email::Email`).
pub struct Email;
impl Rules for Email {
    const MAX_LENGTH: Option<usize> = Some(crate::auth::email::MAX_EMAIL_BYTES);
    const PATTERN: Option<&'static str> = Some(concat!(
        "^[^@",
        space!(),
        control!(),
        "]+@[^@",
        space!(),
        control!(),
        "]+$"
    ));
}

/// A string that parses only from a JSON string, documented by `R`.
pub struct Text<R = Any>(pub String, PhantomData<R>);

impl<R> Text<R> {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into(), PhantomData)
    }
}

impl<R: Rules> Text<R> {
    /// Whether the text is longer, in characters, than the spec's
    /// `maxLength`: for fields the services would otherwise ignore.
    pub fn too_long(&self) -> bool {
        R::MAX_LENGTH.is_some_and(|max| self.0.chars().count() > max)
    }
}

impl<R> std::ops::Deref for Text<R> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

// Form bodies are read with serde: any form value is a string.
impl<'de, R> serde::Deserialize<'de> for Text<R> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

impl<R: Rules> Type for Text<R> {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        String::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new("string");
        schema.min_length = R::MIN_LENGTH;
        schema.max_length = R::MAX_LENGTH;
        schema.pattern = R::PATTERN.map(str::to_owned);
        schema.format = R::FORMAT;
        schema.enum_items = R::ENUM
            .unwrap_or_default()
            .iter()
            .map(|value| Value::from(*value))
            .collect();
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn register(registry: &mut Registry) {
        String::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl<R: Rules> ParseFromJSON for Text<R> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(text) => Ok(Self::new(text)),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl<R: Rules> ToJSON for Text<R> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// The `grant_type` of a token request. The spec lists the supported values
/// (so SDKs get a union type), but any string parses: an unsupported one is
/// answered `unsupported_grant_type` as RFC 6749 §5.2 asks, not as a
/// malformed request.
pub struct GrantTypes;
impl Rules for GrantTypes {
    const ENUM: Option<&'static [&'static str]> = Some(&crate::auth::grant::GrantType::NAMES);
}

/// A `grant_type` form field.
pub type GrantType = Text<GrantTypes>;

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        regex::Regex::new(pattern).unwrap().is_match(text)
    }

    #[test]
    fn the_documented_patterns_agree_with_the_server_rules() {
        let check_email = |email: &str| crate::auth::email::Email::parse(email).map(drop);
        use crate::auth::password::check_policy;
        use crate::auth::username::Username as Registered;
        let check_username = |name: &str| Registered::parse(name).map(drop);
        let usernames = [
            "alice",
            "a.b_c-d@e+f",
            "élodie",
            "a b",
            "x\0",
            "",
            "Ω",
            "semi;colon",
        ];
        for name in usernames {
            let documented = !name.is_empty() && matches(Username::PATTERN.unwrap(), name);
            assert_eq!(documented, check_username(name).is_ok(), "{name:?}");
        }
        let emails = [
            "a@b",
            "a@b@c",
            "@b",
            "a@",
            "a b@c",
            "a\u{a0}b@c",
            "a\u{1}@c",
            "ü@ß.de",
        ];
        for email in emails {
            assert_eq!(
                matches(Email::PATTERN.unwrap(), email),
                check_email(email).is_ok(),
                "{email:?}"
            );
        }
        for password in [
            "correct horse",
            "tab\there1",
            "nul\0byte1",
            "del\u{7f}eted1",
            "ünïcødé pass",
        ] {
            let documented = matches(NewPassword::PATTERN.unwrap(), password);
            assert_eq!(
                documented,
                check_policy(password, "someone", 8).is_ok(),
                "{password:?}"
            );
        }
    }
}
