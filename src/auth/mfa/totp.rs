//! TOTP (RFC 6238) as authenticator apps know it: HMAC-SHA1, six digits,
//! 30-second steps, one step of skew either way; the `otpauth://` URI (the
//! de-facto Key URI format) and its QR code as SVG.

use qrcode::QrCode;
use qrcode::render::svg;
use secrecy::{ExposeSecret as _, SecretBox};
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// Digits per code.
pub const DIGITS: u8 = 6;
/// Steps accepted either side of the current one (RFC 6238 §5.2).
pub const SKEW_STEPS: u16 = 1;

/// A TOTP secret: 160 bits, as RFC 4226 §4 recommends.
pub type TotpSecret = SecretBox<[u8; 20]>;

/// A new secret from the operating system's CSPRNG.
pub fn new_secret() -> TotpSecret {
    SecretBox::new(Box::new(crate::auth::random_bytes::<20>()))
}

/// The generator of `secret` for `account` at `issuer` (colons, which the
/// URI's label reserves, are left out of both).
fn generator(secret: &TotpSecret, issuer: &str, account: &str) -> Totp {
    let clean = |text: &str| text.replace(':', "");
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(SKEW_STEPS)
        .with_step_duration(STEP_SECONDS)
        .with_secret(Secret::new(
            secret.expose_secret().to_vec().into_boxed_slice(),
        ))
        .with_issuer(Some(clean(issuer)))
        .with_account_name(clean(account))
        .build()
        .expect("a 160-bit secret, six digits and 30-second steps are valid")
}

/// What an authenticator app needs to add the account.
pub struct Enrolment {
    /// The secret, base32 without padding (32 characters), for typing.
    pub secret: String,
    /// `otpauth://totp/Issuer:account?secret=…&issuer=…`.
    pub uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

/// The secret as an app takes it: typed, as a URI, or scanned.
pub fn enrolment(secret: &TotpSecret, issuer: &str, account: &str) -> Enrolment {
    let generator = generator(secret, issuer, account);
    let uri = generator.to_url().expect("the account name holds no colon");
    let qr_svg = QrCode::new(uri.as_bytes())
        .expect("an otpauth URI fits in a QR code")
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    Enrolment {
        secret: generator.secret().to_base32(),
        uri,
        qr_svg,
    }
}

/// The step whose code `code` is at `unix_seconds`, within the skew; `None`
/// if it is no code of any of them. Spaces between the digits are allowed.
pub fn step_of(secret: &TotpSecret, code: &str, unix_seconds: u64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != usize::from(DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let step = generator(secret, "", "-").check(&code, unix_seconds)?;
    i64::try_from(step).ok()
}

/// The code of `secret` at `unix_seconds` (tests, and the CLI's checks).
pub fn code_at(secret: &TotpSecret, unix_seconds: u64) -> String {
    generator(secret, "", "-")
        .generate(unix_seconds)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 secret.
    fn rfc_secret() -> TotpSecret {
        SecretBox::new(Box::new(*b"12345678901234567890"))
    }

    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        // Appendix B gives eight digits; six are their last six.
        for (time, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(code_at(&rfc_secret(), time), eight[2..], "at {time}");
            assert_eq!(
                step_of(&rfc_secret(), &eight[2..], time),
                Some((time / 30) as i64)
            );
        }
    }

    #[test]
    fn a_code_is_accepted_one_step_early_or_late_and_no_further() {
        let secret = new_secret();
        let now = 1_800_000_015;
        let step = (now / 30) as i64;
        for offset in [-1i64, 0, 1] {
            let at = (now as i64 + offset * 30) as u64;
            assert_eq!(
                step_of(&secret, &code_at(&secret, at), now),
                Some(step + offset)
            );
        }
        for offset in [-3i64, -2, 2, 3] {
            let code = code_at(&secret, (now as i64 + offset * 30) as u64);
            let accepted = step_of(&secret, &code, now);
            // Another step's code can collide with one in the window (one in
            // a million); it is then accepted as that step's, never as its own.
            assert_ne!(accepted, Some(step + offset));
        }
    }

    #[test]
    fn codes_that_are_not_six_digits_are_refused() {
        let secret = rfc_secret();
        let code = code_at(&secret, 59);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(step_of(&secret, &spaced, 59), Some(1));
        for bad in [
            "",
            "12345",
            "1234567",
            "abcdef",
            "１２３４５６",
            &format!("+{}", &code[1..]),
        ] {
            assert_eq!(step_of(&secret, bad, 59), None, "{bad:?}");
        }
    }

    #[test]
    fn the_enrolment_names_the_issuer_and_account_and_draws_the_uri() {
        let enrolment = enrolment(&rfc_secret(), "Gate:house", "alice@example.org");
        assert_eq!(enrolment.secret, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            enrolment.uri,
            "otpauth://totp/Gatehouse:alice%40example.org?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Gatehouse"
        );
        assert!(enrolment.qr_svg.contains("<svg"), "{}", enrolment.qr_svg);
    }
}
