//! What each mail says, in plain text and HTML (askama templates in
//! `src/templates/mail/`, HTML-escaped where HTML), with no images, no
//! tracking and no third-party assets.

use std::time::Duration;

use askama::Template as _;
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};

use crate::store::MailKind;

/// A mail before it is addressed.
#[derive(Debug, Clone)]
pub struct Letter {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Who the mail is from and what it names.
#[derive(Debug, Clone)]
pub struct Sender {
    pub from: Mailbox,
    /// The product name in subjects and signatures.
    pub product: String,
    /// Where the product lives (the public URL's host), named in the footer.
    pub site: String,
}

#[derive(askama::Template)]
#[template(path = "mail/link.txt", config = "src/askama.toml")]
struct LinkText<'a> {
    username: &'a str,
    intro: &'a str,
    action: &'a str,
    link: &'a str,
    expires_in: &'a str,
    not_you: &'a str,
    product: &'a str,
    site: &'a str,
}

#[derive(askama::Template)]
#[template(path = "mail/link.html", config = "src/askama.toml")]
struct LinkHtml<'a> {
    subject: &'a str,
    username: &'a str,
    intro: &'a str,
    action: &'a str,
    button: &'a str,
    link: &'a str,
    expires_in: &'a str,
    not_you: &'a str,
    product: &'a str,
    site: &'a str,
}

#[derive(askama::Template)]
#[template(path = "mail/notice.txt", config = "src/askama.toml")]
struct NoticeText<'a> {
    username: &'a str,
    body: &'a str,
    not_you: &'a str,
    product: &'a str,
    site: &'a str,
}

#[derive(askama::Template)]
#[template(path = "mail/notice.html", config = "src/askama.toml")]
struct NoticeHtml<'a> {
    subject: &'a str,
    username: &'a str,
    body: &'a str,
    not_you: &'a str,
    product: &'a str,
    site: &'a str,
}

/// The mail of `kind` for `username`, carrying `link` (valid for
/// `expires_in`); for the notice of an address change, `link` is unused
/// and `new_address` names where the account's mail goes now.
pub fn letter(
    kind: MailKind,
    sender: &Sender,
    username: &str,
    link: &str,
    expires_in: Duration,
    new_address: Option<&str>,
) -> Letter {
    let product = sender.product.as_str();
    let site = sender.site.as_str();
    let expires_in = spoken_duration(expires_in);
    let (subject, intro, action, button, not_you) = match kind {
        MailKind::PasswordReset => (
            format!("Reset your {product} password"),
            format!(
                "Someone, hopefully you, asked to reset the password of your {product} \
                 account \"{username}\"."
            ),
            "To choose a new password".to_owned(),
            "Choose a new password",
            "If you did not ask for this, you can ignore this mail: your password stays as it \
             is, and the link is useless to anyone without access to your mailbox."
                .to_owned(),
        ),
        MailKind::EmailVerification => (
            format!("Confirm your email address for {product}"),
            format!(
                "This address was given for the {product} account \"{username}\". Confirming \
                 it lets you reset your password by mail if you ever forget it."
            ),
            "To confirm that this address is yours".to_owned(),
            "Confirm my address",
            format!(
                "If you did not create a {product} account, ignore this mail: the address stays \
                 unconfirmed."
            ),
        ),
        MailKind::EmailChange => (
            format!("Confirm your new email address for {product}"),
            format!(
                "The {product} account \"{username}\" asked to use this address from now on. \
                 The change happens only once you confirm it."
            ),
            "To make this the account's address".to_owned(),
            "Confirm my new address",
            "If you did not ask for this, ignore this mail: the account keeps its current \
             address."
                .to_owned(),
        ),
        MailKind::EmailChanged => {
            let subject = format!("Your {product} email address was changed");
            let body = format!(
                "The email address of your {product} account \"{username}\" was changed to {}. \
                 Mail about the account, password resets included, now goes there.",
                new_address.map_or_else(|| "another address".to_owned(), mask_address)
            );
            let not_you = "If you did not make this change, someone else may have your \
                           password: reset it from the sign-in page at once, or contact the \
                           service's administrators."
                .to_owned();
            let text = NoticeText {
                username,
                body: &body,
                not_you: &not_you,
                product,
                site,
            }
            .render()
            .expect("a template of strings renders");
            let html = NoticeHtml {
                subject: &subject,
                username,
                body: &body,
                not_you: &not_you,
                product,
                site,
            }
            .render()
            .expect("a template of strings renders");
            return Letter {
                subject,
                text,
                html,
            };
        }
    };
    let text = LinkText {
        username,
        intro: &intro,
        action: &action,
        link,
        expires_in: &expires_in,
        not_you: &not_you,
        product,
        site,
    }
    .render()
    .expect("a template of strings renders");
    let html = LinkHtml {
        subject: &subject,
        username,
        intro: &intro,
        action: &action,
        button,
        link,
        expires_in: &expires_in,
        not_you: &not_you,
        product,
        site,
    }
    .render()
    .expect("a template of strings renders");
    Letter {
        subject,
        text,
        html,
    }
}

/// `letter` from `sender` to `recipient`; why not, if the address cannot
/// be a mailbox.
pub fn message(sender: &Sender, recipient: &str, letter: Letter) -> Result<Message, String> {
    let to: Mailbox = recipient
        .parse()
        .map_err(|err| format!("the recipient cannot receive mail: {err}"))?;
    Message::builder()
        .from(sender.from.clone())
        .to(to)
        .subject(letter.subject)
        .multipart(MultiPart::alternative_plain_html(letter.text, letter.html))
        .map_err(|err| format!("the mail cannot be built: {err}"))
}

/// `d` as a person says it: "30 minutes", "24 hours", "2 days".
pub fn spoken_duration(d: Duration) -> String {
    let minutes = d.as_secs().div_ceil(60).max(1);
    let (count, unit) = if minutes >= 2 * 24 * 60 && minutes.is_multiple_of(24 * 60) {
        (minutes / (24 * 60), "day")
    } else if minutes.is_multiple_of(60) {
        (minutes / 60, "hour")
    } else {
        (minutes, "minute")
    };
    if count == 1 {
        format!("1 {unit}")
    } else {
        format!("{count} {unit}s")
    }
}

/// An address shown to whoever reads the old mailbox: enough for its owner
/// to recognise it, not enough to harvest it (`j***@example.org`).
fn mask_address(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "another address".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender() -> Sender {
        Sender {
            from: "Gatehouse <no-reply@example.org>".parse().unwrap(),
            product: "Gatehouse".into(),
            site: "auth.example.org".into(),
        }
    }

    #[test]
    fn durations_are_spoken_in_their_largest_whole_unit() {
        assert_eq!(spoken_duration(Duration::from_secs(30 * 60)), "30 minutes");
        assert_eq!(spoken_duration(Duration::from_secs(3600)), "1 hour");
        assert_eq!(spoken_duration(Duration::from_secs(24 * 3600)), "24 hours");
        assert_eq!(spoken_duration(Duration::from_secs(72 * 3600)), "3 days");
        assert_eq!(spoken_duration(Duration::from_secs(90)), "2 minutes");
    }

    #[test]
    fn a_reset_mail_names_the_account_the_link_and_its_expiry_in_both_parts() {
        let link = "https://auth.example.org/account/reset-password?token=abc";
        let letter = letter(
            MailKind::PasswordReset,
            &sender(),
            "alice",
            link,
            Duration::from_secs(1800),
            None,
        );
        assert_eq!(letter.subject, "Reset your Gatehouse password");
        for part in [&letter.text, &letter.html] {
            assert!(part.contains("alice"), "{part}");
            assert!(part.contains(link), "{part}");
            assert!(part.contains("30 minutes"), "{part}");
            assert!(part.contains("did not ask for this"), "{part}");
        }
        assert!(!letter.html.contains("<img"), "no tracking pixel");
    }

    #[test]
    fn what_a_user_chose_is_escaped_in_the_html_part() {
        let letter = letter(
            MailKind::EmailVerification,
            &sender(),
            "<b>mallory</b>",
            "https://x/?token=a&b",
            Duration::from_secs(3600),
            None,
        );
        assert!(!letter.html.contains("<b>"), "{}", letter.html);
        assert!(
            letter.html.contains("&#60;b&#62;mallory"),
            "{}",
            letter.html
        );
        assert!(letter.text.contains("<b>mallory</b>"));
    }

    #[test]
    fn the_change_notice_masks_the_new_address() {
        let letter = letter(
            MailKind::EmailChanged,
            &sender(),
            "alice",
            "",
            Duration::ZERO,
            Some("jane@example.net"),
        );
        assert!(letter.text.contains("j***@example.net"), "{}", letter.text);
        assert!(!letter.text.contains("jane@"), "{}", letter.text);
    }
}
