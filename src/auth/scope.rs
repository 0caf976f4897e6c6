//! OAuth2 scopes (RFC 6749 §3.3).

use std::collections::BTreeSet;

/// Read the caller's own account and sessions.
pub const PROFILE: &str = "profile";
/// Granted when a request names no scope (Swagger UI sends `scope=`).
pub const DEFAULT: &str = PROFILE;

/// The request named a scope Gatehouse does not know, or more than was granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidScope(pub String);

/// The scope a grant gets: `default` for an empty or absent request,
/// otherwise the requested scopes, each one of `allowed` (the client's),
/// in canonical order.
pub fn for_grant(
    requested: Option<&str>,
    allowed: &[String],
    default: &str,
) -> Result<String, InvalidScope> {
    let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
    match parse(requested, &allowed)? {
        Some(set) => Ok(join(&set)),
        None => Ok(default.to_owned()),
    }
}

/// The scope of a refresh: what was granted when absent; otherwise a subset
/// of it (a refresh may narrow, never widen; RFC 6749 §6).
pub fn for_refresh(requested: Option<&str>, granted: &str) -> Result<String, InvalidScope> {
    let granted: Vec<&str> = granted.split(' ').filter(|s| !s.is_empty()).collect();
    let Some(requested) = requested.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(granted.join(" "));
    };
    let mut set = BTreeSet::new();
    for scope in requested.split(' ').filter(|s| !s.is_empty()) {
        if !granted.contains(&scope) {
            let shown: String = scope.chars().take(64).collect();
            return Err(InvalidScope(format!(
                "scope `{}` exceeds the scope originally granted",
                shown.escape_default()
            )));
        }
        set.insert(scope);
    }
    Ok(join(&set))
}

/// Whether a space-separated scope string contains `scope`.
pub fn contains(scopes: &str, scope: &str) -> bool {
    scopes.split(' ').any(|s| s == scope)
}

fn parse<'a>(
    requested: Option<&'a str>,
    known: &[&str],
) -> Result<Option<BTreeSet<&'a str>>, InvalidScope> {
    let Some(requested) = requested.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let mut set = BTreeSet::new();
    for scope in requested.split(' ').filter(|s| !s.is_empty()) {
        match known.iter().find(|known| **known == scope) {
            Some(_) => set.insert(scope),
            None => {
                let shown: String = scope.chars().take(64).collect();
                return Err(InvalidScope(format!(
                    "unknown scope `{}`",
                    shown.escape_default()
                )));
            }
        };
    }
    Ok(Some(set))
}

fn join(set: &BTreeSet<&str>) -> String {
    set.iter().copied().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec!["profile".into(), "invoices:read".into()]
    }

    #[test]
    fn an_empty_or_absent_scope_gets_the_default() {
        assert_eq!(for_grant(None, &allowed(), "profile").unwrap(), "profile");
        assert_eq!(
            for_grant(Some(""), &allowed(), "profile").unwrap(),
            "profile"
        );
        assert_eq!(
            for_grant(Some("  "), &allowed(), "profile").unwrap(),
            "profile"
        );
        assert_eq!(
            for_grant(Some("profile profile"), &allowed(), "").unwrap(),
            "profile"
        );
    }

    #[test]
    fn a_scope_the_client_was_not_given_is_refused() {
        assert_eq!(
            for_grant(Some("profile invoices:read"), &allowed(), "").unwrap(),
            "invoices:read profile"
        );
        assert!(for_grant(Some("profile admin"), &allowed(), "").is_err());
        assert!(for_grant(Some("PROFILE"), &allowed(), "").is_err());
        assert!(for_grant(Some("invoices:read"), &["profile".into()], "").is_err());
    }

    #[test]
    fn a_refresh_keeps_or_narrows_but_never_widens() {
        assert_eq!(for_refresh(None, "profile").unwrap(), "profile");
        assert_eq!(for_refresh(Some("profile"), "profile").unwrap(), "profile");
        assert!(for_refresh(Some("profile"), "").is_err());
        assert!(for_refresh(Some("admin"), "profile").is_err());
    }
}
