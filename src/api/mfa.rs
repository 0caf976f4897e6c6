//! The caller's second factor: enrol a TOTP app (behind the password),
//! confirm it with a code (and get recovery codes), remove it.

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
use super::text::{Otp, Password, SecondFactorCode, Text};
use super::{ApiTags, BearerAuth, Scopes};
use crate::auth::mfa::EnrolError;
use crate::auth::scope;
use crate::state::AppState;

/// Start an enrolment: the current password.
#[derive(Object)]
#[oai(example)]
pub struct StartTotpRequest {
    pub current_password: Text<Password>,
}

/// What the authenticator app needs: scan `qr_svg`, open `otpauth_uri`, or
/// type `secret`.
#[derive(Object)]
#[oai(example)]
pub struct TotpEnrolment {
    /// The secret, base32 without padding (RFC 4648), for typing.
    pub secret: String,
    /// `otpauth://totp/…` (the Key URI format authenticator apps read).
    pub otpauth_uri: String,
    /// The URI as a QR code: an SVG document.
    pub qr_svg: String,
}

/// Confirm an enrolment: a code the app shows.
#[derive(Object)]
#[oai(example)]
pub struct ConfirmTotpRequest {
    /// The six-digit code the app shows now.
    pub code: Text<Otp>,
}

/// The recovery codes, shown this once.
#[derive(Object)]
#[oai(example)]
pub struct RecoveryCodes {
    /// Ten single-use codes (`xxxxx-xxxxx`), each a way in without the
    /// phone. Keep them somewhere safe: they are never shown again.
    pub recovery_codes: Vec<String>,
}

/// Remove the second factor: the current password and a code (from the
/// app, or a recovery code).
#[derive(Object)]
#[oai(example)]
pub struct RemoveTotpRequest {
    pub current_password: Text<Password>,
    pub code: Text<SecondFactorCode>,
}

impl Example for StartTotpRequest {
    fn example() -> Self {
        Self {
            current_password: Text::new("correct horse battery staple"),
        }
    }
}

impl Example for TotpEnrolment {
    fn example() -> Self {
        Self {
            secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into(),
            otpauth_uri: "otpauth://totp/Gatehouse:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Gatehouse".into(),
            qr_svg: "<?xml version=\"1.0\" standalone=\"yes\"?><svg xmlns=\"http://www.w3.org/2000/svg\" …</svg>".into(),
        }
    }
}

impl Example for ConfirmTotpRequest {
    fn example() -> Self {
        Self {
            code: Text::new("123456"),
        }
    }
}

impl Example for RecoveryCodes {
    fn example() -> Self {
        Self {
            recovery_codes: ["ybndr-fg8ej", "kmcpq-xot1u", "wisza-345h7"]
                .map(str::to_owned)
                .to_vec(),
        }
    }
}

impl Example for RemoveTotpRequest {
    fn example() -> Self {
        Self {
            current_password: Text::new("correct horse battery staple"),
            code: Text::new("123456"),
        }
    }
}

/// The answer of `startTotpEnrolment`.
#[derive(ApiResponse)]
pub enum EnrolmentStarted {
    /// Add the account to the app, then confirm with a code it shows
    /// (within 15 minutes). Nothing changes until then.
    #[oai(status = 200)]
    Ok(Json<TotpEnrolment>, #[oai(header = "Cache-Control")] String),
}

/// The answer of `confirmTotpEnrolment`.
#[derive(ApiResponse)]
pub enum EnrolmentConfirmed {
    /// Enabled: logins now need a second factor, and every other session
    /// of the user is revoked.
    #[oai(status = 200)]
    Ok(Json<RecoveryCodes>, #[oai(header = "Cache-Control")] String),
}

/// The answer of `removeTotp`.
#[derive(ApiResponse)]
pub enum TotpRemoved {
    /// Removed: logins need the password alone again.
    #[oai(status = 204)]
    Removed,
}

/// How starting an enrolment can fail.
pub enum StartFailures {}

impl Failures for StartFailures {
    const ANSWERS: &'static [Answer] = &[
        Answer::new(
            400,
            "The body does not parse, or the current password is wrong \
             (`invalid_current_password`).",
        ),
        UNAUTHORIZED,
        FORBIDDEN,
        Answer::new(
            409,
            "A second factor is already enabled (`mfa_already_enabled`): remove it first.",
        ),
        TOO_LARGE,
        NOT_JSON,
        TOO_MANY_ATTEMPTS,
        INTERNAL,
        BUSY,
    ];
}

/// How confirming can fail.
pub enum ConfirmFailures {}

impl Failures for ConfirmFailures {
    const ANSWERS: &'static [Answer] = &[
        Answer::new(
            400,
            "The body does not parse, or the code is wrong (`invalid_code`).",
        ),
        UNAUTHORIZED,
        FORBIDDEN,
        Answer::new(
            409,
            "No enrolment waits (`mfa_not_started`: none, or it expired), or a second \
             factor is already enabled (`mfa_already_enabled`).",
        ),
        TOO_LARGE,
        NOT_JSON,
        INTERNAL,
        UNAVAILABLE,
    ];
}

/// How removing can fail.
pub enum RemoveFailures {}

impl Failures for RemoveFailures {
    const ANSWERS: &'static [Answer] = &[
        Answer::new(
            400,
            "The body does not parse, the current password is wrong \
             (`invalid_current_password`), or the code is wrong or was used (`invalid_code`).",
        ),
        UNAUTHORIZED,
        FORBIDDEN,
        Answer::new(409, "No second factor is enabled (`mfa_not_enabled`)."),
        TOO_LARGE,
        NOT_JSON,
        TOO_MANY_ATTEMPTS,
        INTERNAL,
        BUSY,
    ];
}

impl<F: Failures> From<EnrolError> for Failure<F> {
    fn from(err: EnrolError) -> Self {
        let conflict = |code, message| Failure::new(StatusCode::CONFLICT, code, message);
        match err {
            EnrolError::CurrentPassword(err) => err.into(),
            EnrolError::BadCode => Failure::bad_request("invalid_code", err.to_string()),
            EnrolError::AlreadyEnabled => conflict("mfa_already_enabled", err.to_string()),
            EnrolError::NotStarted => conflict("mfa_not_started", err.to_string()),
            EnrolError::NotEnabled => conflict("mfa_not_enabled", err.to_string()),
            EnrolError::Throttled(retry_after) => Failure::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many wrong codes for this account; retry later",
            )
            .header(poem::http::header::RETRY_AFTER, retry_after.to_string()),
            EnrolError::Internal(err) => err.into(),
        }
    }
}

/// The caller's second factor.
#[derive(Default)]
pub struct MfaApi;

#[OpenApi(tag = "ApiTags::SecondFactor")]
impl MfaApi {
    /// Start enrolling an authenticator app
    ///
    /// Needs the current password. Answers a new TOTP secret (RFC 6238:
    /// SHA-1, six digits, 30 seconds) as text, as an `otpauth://` URI and as
    /// a QR code. Nothing changes until `confirmTotpEnrolment`; starting
    /// again replaces the secret.
    #[oai(
        path = "/users/me/mfa/totp",
        method = "post",
        operation_id = "startTotpEnrolment"
    )]
    async fn start(
        &self,
        state: Data<&AppState>,
        req: &Request,
        #[oai(scope = "Scopes::Profile")] auth: BearerAuth,
        body: Json<StartTotpRequest>,
    ) -> Result<EnrolmentStarted, Failure<StartFailures>> {
        let claims = auth.with_scope(scope::PROFILE)?.claims;
        let password = SecretString::from(body.0.current_password.0);
        let enrolment = state
            .mfa
            .start_enrolment(&claims.sub, &claims.sid, password, &client_info(req, None))
            .await?;
        Ok(EnrolmentStarted::Ok(
            Json(TotpEnrolment {
                secret: enrolment.secret,
                otpauth_uri: enrolment.uri,
                qr_svg: enrolment.qr_svg,
            }),
            "no-store".into(),
        ))
    }

    /// Confirm the authenticator app
    ///
    /// A code the app shows turns the second factor on: logins then answer
    /// 403 `mfa_required` after the password. Answers ten recovery codes,
    /// shown this once. Every other session of the user is revoked.
    #[oai(
        path = "/users/me/mfa/totp/confirm",
        method = "post",
        operation_id = "confirmTotpEnrolment"
    )]
    async fn confirm(
        &self,
        state: Data<&AppState>,
        req: &Request,
        #[oai(scope = "Scopes::Profile")] auth: BearerAuth,
        body: Json<ConfirmTotpRequest>,
    ) -> Result<EnrolmentConfirmed, Failure<ConfirmFailures>> {
        let claims = auth.with_scope(scope::PROFILE)?.claims;
        let recovery_codes = state
            .mfa
            .confirm_enrolment(
                &claims.sub,
                &claims.sid,
                &body.code,
                &client_info(req, None),
            )
            .await?;
        Ok(EnrolmentConfirmed::Ok(
            Json(RecoveryCodes { recovery_codes }),
            "no-store".into(),
        ))
    }

    /// Remove the second factor
    ///
    /// Needs the current password and a code: from the app, or a recovery
    /// code. Wrong codes are throttled like passwords.
    #[oai(
        path = "/users/me/mfa/totp",
        method = "delete",
        operation_id = "removeTotp"
    )]
    async fn remove(
        &self,
        state: Data<&AppState>,
        req: &Request,
        #[oai(scope = "Scopes::Profile")] auth: BearerAuth,
        body: Json<RemoveTotpRequest>,
    ) -> Result<TotpRemoved, Failure<RemoveFailures>> {
        let claims = auth.with_scope(scope::PROFILE)?.claims;
        let Json(request) = body;
        let password = SecretString::from(request.current_password.0);
        state
            .mfa
            .remove(
                &claims.sub,
                &claims.sid,
                password,
                &request.code,
                &client_info(req, None),
            )
            .await?;
        Ok(TotpRemoved::Removed)
    }
}
