//! OAuth2 scopes (RFC 6749 §3.3).

use std::collections::BTreeSet;

/// Every scope Gatehouse grants.
pub const KNOWN: &[&str] = &[PROFILE];
/// Read the caller's own account and sessions.
pub const PROFILE: &str = "profile";
/// Granted when a request names no scope (Swagger UI sends `scope=`).
pub const DEFAULT: &str = PROFILE;

/// The request named a scope Gatehouse does not know, or more than was granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidScope(pub String);

/// The scope to grant for a new session: the default for an empty or absent
/// request, otherwise the requested known scopes in canonical order.
pub fn for_new_session(requested: Option<&str>) -> Result<String, InvalidScope> {
    match parse(requested)? {
        Some(set) => Ok(join(&set)),
        None => Ok(DEFAULT.to_owned()),
    }
}

/// The scope of a refresh: what was granted when absent; otherwise a subset
/// of it (a refresh may narrow, never widen; RFC 6749 §6).
pub fn for_refresh(requested: Option<&str>, granted: &str) -> Result<String, InvalidScope> {
    let Some(requested) = parse(requested)? else {
        return Ok(granted.to_owned());
    };
    let granted: BTreeSet<&str> = granted.split(' ').filter(|s| !s.is_empty()).collect();
    if let Some(extra) = requested.iter().find(|s| !granted.contains(*s)) {
        return Err(InvalidScope(format!(
            "scope `{extra}` exceeds the scope originally granted"
        )));
    }
    Ok(join(&requested))
}

/// Whether a space-separated scope string contains `scope`.
pub fn contains(scopes: &str, scope: &str) -> bool {
    scopes.split(' ').any(|s| s == scope)
}

fn parse(requested: Option<&str>) -> Result<Option<BTreeSet<&str>>, InvalidScope> {
    let Some(requested) = requested.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let mut set = BTreeSet::new();
    for scope in requested.split(' ').filter(|s| !s.is_empty()) {
        match KNOWN.iter().find(|known| **known == scope) {
            Some(known) => set.insert(*known),
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

    #[test]
    fn an_empty_or_absent_scope_gets_the_default() {
        assert_eq!(for_new_session(None).unwrap(), "profile");
        assert_eq!(for_new_session(Some("")).unwrap(), "profile");
        assert_eq!(for_new_session(Some("  ")).unwrap(), "profile");
        assert_eq!(for_new_session(Some("profile profile")).unwrap(), "profile");
    }

    #[test]
    fn an_unknown_scope_is_refused() {
        assert!(for_new_session(Some("profile admin")).is_err());
        assert!(for_new_session(Some("PROFILE")).is_err());
    }

    #[test]
    fn a_refresh_keeps_or_narrows_but_never_widens() {
        assert_eq!(for_refresh(None, "profile").unwrap(), "profile");
        assert_eq!(for_refresh(Some("profile"), "profile").unwrap(), "profile");
        assert!(for_refresh(Some("profile"), "").is_err());
        assert!(for_refresh(Some("admin"), "profile").is_err());
    }
}
