//! Getting back into an account and proving its address: password reset,
//! email verification and email change (the JSON operations; the pages
//! that default links open are in `pages.rs`).

use poem::Request;
use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use secrecy::SecretString;

use super::failure::{
    Answer, BUSY, FORBIDDEN, Failure, Failures, INTERNAL, NOT_JSON, TOO_LARGE, TOO_MANY_ATTEMPTS,
    UNAUTHORIZED, UNAVAILABLE,
};
use super::oauth::client_info;
use super::text::{Email, LinkToken, NewPassword, Password, Text, Username};
use super::{ApiTags, BearerAuth, Scopes};
use crate::auth::recovery::{
    ChangeEmailError, MailRequestError, ResetFor, TokenError, VerificationError,
};
use crate::auth::scope;
use crate::state::AppState;

/// Who forgot their password: exactly one of `username` or `email`.
#[derive(Object)]
#[oai(example)]
pub struct PasswordResetRequest {
    /// Absent or `null` when `email` names the account.
    #[oai(nullable, skip_serializing_if_is_none)]
    pub username: Option<Text<Username>>,
    /// Absent or `null` when `username` names the account.
    #[oai(nullable, skip_serializing_if_is_none)]
    pub email: Option<Text<Email>>,
}

impl Example for PasswordResetRequest {
    fn example() -> Self {
        Self {
            username: None,
            email: Some(Text::new("alice@example.org")),
        }
    }
}

/// A new password, with the token of a reset link.
#[derive(Object)]
#[oai(example)]
pub struct PasswordResetConfirmation {
    /// The `token` query parameter of the link.
    pub token: Text<LinkToken>,
    /// Subject to the same policy as at registration.
    pub new_password: Text<NewPassword>,
}

impl Example for PasswordResetConfirmation {
    fn example() -> Self {
        Self {
            token: Text::new("q8Vd2x0n6h1Zy3kTn1pGfQeWmJcL5s9aR4bU7oYtE2w"),
            new_password: Text::new("a new correct horse battery staple"),
        }
    }
}

/// The token of a verification or email-change link.
#[derive(Object)]
#[oai(example)]
pub struct EmailVerification {
    /// The `token` query parameter of the link.
    pub token: Text<LinkToken>,
}

impl Example for EmailVerification {
    fn example() -> Self {
        Self {
            token: Text::new("q8Vd2x0n6h1Zy3kTn1pGfQeWmJcL5s9aR4bU7oYtE2w"),
        }
    }
}

/// A new address for the caller's account.
#[derive(Object)]
#[oai(example)]
pub struct ChangeEmailRequest {
    pub email: Text<Email>,
    /// The account's password (not `write_only`, which would leave it out
    /// of the example).
    pub current_password: Text<Password>,
}

impl Example for ChangeEmailRequest {
    fn example() -> Self {
        Self {
            email: Text::new("alice@example.net"),
            current_password: Text::new("correct horse battery staple"),
        }
    }
}

/// A mail was asked for.
#[derive(ApiResponse)]
pub enum MailRequested {
    /// Accepted. A mail goes out if there is someone to send it to and the
    /// account's hourly allowance is not spent; the answer never says which.
    #[oai(status = 202)]
    Accepted,
}

/// A link's token was used.
#[derive(ApiResponse)]
pub enum LinkUsed {
    /// Done.
    #[oai(status = 204)]
    Done,
}

const TOO_MANY_REQUESTS: Answer = Answer::new(
    429,
    "Too many requests from this client address (`too_many_requests`); retry after \
     `Retry-After` seconds.",
)
.with(&[super::failure::RETRY_AFTER]);

/// How a password reset request can fail.
pub enum ResetRequestFailures {}

impl Failures for ResetRequestFailures {
    const ANSWERS: &'static [Answer] = &[
        Answer::new(
            400,
            "The body does not parse, does not name exactly one of `username` and `email` \
             (`invalid_request`), or the address cannot be one (`invalid_email`).",
        ),
        TOO_LARGE,
        NOT_JSON,
        TOO_MANY_REQUESTS,
        INTERNAL,
        UNAVAILABLE,
    ];
}

impl From<MailRequestError> for Failure<ResetRequestFailures> {
    fn from(err: MailRequestError) -> Self {
        match err {
            MailRequestError::Throttled(retry_after) => Failure::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "too many requests from this address; retry later",
            )
            .header(poem::http::header::RETRY_AFTER, retry_after.to_string()),
            MailRequestError::Internal(err) => err.into(),
        }
    }
}

/// How confirming a password reset can fail.
pub enum ResetConfirmFailures {}

impl Failures for ResetConfirmFailures {
    const ANSWERS: &'static [Answer] = &[
        Answer::new(
            400,
            "The body does not parse, the link is unknown, used or expired (`invalid_token`), \
             or the new password is refused (`invalid_password`; the link stays usable).",
        ),
        TOO_LARGE,
        NOT_JSON,
        INTERNAL,
        BUSY,
    ];
}

/// How verifying an address can fail.
pub enum VerifyFailures {}

impl Failures for VerifyFailures {
    const ANSWERS: &'static [Answer] = &[
        Answer::new(
            400,
            "The body does not parse, or the link is unknown, used or expired \
             (`invalid_token`).",
        ),
        TOO_LARGE,
        NOT_JSON,
        INTERNAL,
        UNAVAILABLE,
    ];
}

impl<F: Failures> From<TokenError> for Failure<F> {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::InvalidToken => {
                Failure::bad_request("invalid_token", "the link is invalid or has expired")
            }
            TokenError::WeakPassword(why) => {
                Failure::bad_request("invalid_password", why.to_string())
            }
            TokenError::Internal(err) => err.into(),
        }
    }
}

/// How asking for a verification mail can fail.
pub enum VerificationRequestFailures {}

impl Failures for VerificationRequestFailures {
    const ANSWERS: &'static [Answer] = &[
        Answer::new(400, "The account has no email address (`no_email`)."),
        UNAUTHORIZED,
        FORBIDDEN,
        Answer::new(409, "The address is already verified (`already_verified`)."),
        INTERNAL,
        UNAVAILABLE,
    ];
}

impl From<VerificationError> for Failure<VerificationRequestFailures> {
    fn from(err: VerificationError) -> Self {
        match err {
            VerificationError::NoEmail => {
                Failure::bad_request("no_email", "the account has no email address")
            }
            VerificationError::AlreadyVerified => Failure::new(
                StatusCode::CONFLICT,
                "already_verified",
                "the address is already verified",
            ),
            VerificationError::UnknownUser => Failure::invalid_token(),
            VerificationError::Internal(err) => err.into(),
        }
    }
}

/// How an email change can fail.
pub enum ChangeEmailFailures {}

impl Failures for ChangeEmailFailures {
    const ANSWERS: &'static [Answer] = &[
        Answer::new(
            400,
            "The body does not parse, the address is refused (`invalid_email`) or the \
             password is wrong (`invalid_current_password`).",
        ),
        UNAUTHORIZED,
        FORBIDDEN,
        TOO_LARGE,
        NOT_JSON,
        TOO_MANY_ATTEMPTS,
        INTERNAL,
        BUSY,
    ];
}

impl From<ChangeEmailError> for Failure<ChangeEmailFailures> {
    fn from(err: ChangeEmailError) -> Self {
        match err {
            ChangeEmailError::InvalidEmail(why) => Failure::bad_request("invalid_email", why),
            ChangeEmailError::CurrentPassword(err) => err.into(),
            ChangeEmailError::Internal(err) => err.into(),
        }
    }
}

/// Password reset and email verification.
#[derive(Default)]
pub struct AccountApi;

#[OpenApi(tag = "ApiTags::Recovery")]
impl AccountApi {
    /// Ask for a password reset link
    ///
    /// Names the account by exactly one of `username` or `email`. The
    /// answer is 202, with the same body and in the same time, whether or
    /// not the account exists or has an address: the mail goes to the
    /// account's address, with a link that works once within 30 minutes
    /// (configurable). Throttled per client address (429).
    #[oai(
        path = "/auth/password-reset",
        method = "post",
        operation_id = "requestPasswordReset"
    )]
    async fn request_password_reset(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<PasswordResetRequest>,
    ) -> Result<MailRequested, Failure<ResetRequestFailures>> {
        let Json(request) = body;
        let who = match (request.username, request.email) {
            // Longer than any username: it names no account.
            (Some(username), None) if username.too_long() => {
                return Err(Failure::bad_request(
                    "invalid_request",
                    "`username` is too long",
                ));
            }
            (Some(username), None) => ResetFor::Username(username.0),
            (None, Some(email)) => {
                let email = crate::auth::email::Email::parse(&email)
                    .map_err(|why| Failure::bad_request("invalid_email", why))?;
                ResetFor::Email(email.into_string())
            }
            _ => {
                return Err(Failure::bad_request(
                    "invalid_request",
                    "give exactly one of `username` and `email`",
                ));
            }
        };
        state
            .accounts
            .request_password_reset(who, &client_info(req, None))
            .await?;
        Ok(MailRequested::Accepted)
    }

    /// Set a new password with a reset link
    ///
    /// `token` is the link's `token` parameter. Every session of the
    /// account ends, the account's failed-login counters are cleared, and
    /// the address that received the link counts as verified. An unknown,
    /// used or expired link is 400 `invalid_token`; a refused password is
    /// 400 `invalid_password`, and the link stays usable.
    #[oai(
        path = "/auth/password-reset/confirm",
        method = "post",
        operation_id = "confirmPasswordReset"
    )]
    async fn confirm_password_reset(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<PasswordResetConfirmation>,
    ) -> Result<LinkUsed, Failure<ResetConfirmFailures>> {
        let Json(request) = body;
        state
            .accounts
            .confirm_password_reset(
                &request.token,
                SecretString::from(request.new_password.0),
                &client_info(req, None),
            )
            .await?;
        Ok(LinkUsed::Done)
    }

    /// Verify an email address with a link
    ///
    /// `token` is the `token` parameter of a verification or email-change
    /// link: the address it was sent to becomes the account's, verified.
    #[oai(
        path = "/auth/email/verify",
        method = "post",
        operation_id = "verifyEmail"
    )]
    async fn verify_email(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<EmailVerification>,
    ) -> Result<LinkUsed, Failure<VerifyFailures>> {
        let Json(request) = body;
        state
            .accounts
            .confirm_email(&request.token, &client_info(req, None))
            .await?;
        Ok(LinkUsed::Done)
    }

    /// Send a verification link to your address
    ///
    /// Registration with an address sends one by itself; this sends
    /// another. 400 `no_email` without an address, 409 `already_verified`.
    #[oai(
        path = "/users/me/email/verification",
        method = "post",
        operation_id = "requestEmailVerification"
    )]
    async fn request_verification(
        &self,
        state: Data<&AppState>,
        req: &Request,
        #[oai(scope = "Scopes::Profile")] auth: BearerAuth,
    ) -> Result<MailRequested, Failure<VerificationRequestFailures>> {
        let claims = auth.with_scope(scope::PROFILE)?.claims;
        state
            .accounts
            .request_verification(&claims.sub, &claims.sid, &client_info(req, None))
            .await?;
        Ok(MailRequested::Accepted)
    }

    /// Change your email address
    ///
    /// Needs the current password. A link goes to the new address; the
    /// change happens when it is confirmed (`verifyEmail`), and a verified
    /// old address is told.
    #[oai(path = "/users/me/email", method = "put", operation_id = "changeEmail")]
    async fn change_email(
        &self,
        state: Data<&AppState>,
        req: &Request,
        #[oai(scope = "Scopes::Profile")] auth: BearerAuth,
        body: Json<ChangeEmailRequest>,
    ) -> Result<MailRequested, Failure<ChangeEmailFailures>> {
        let claims = auth.with_scope(scope::PROFILE)?.claims;
        let Json(request) = body;
        state
            .accounts
            .change_email(
                &claims.sub,
                &claims.sid,
                &request.email,
                SecretString::from(request.current_password.0),
                &client_info(req, None),
            )
            .await?;
        Ok(MailRequested::Accepted)
    }
}
