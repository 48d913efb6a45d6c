//! Checking what callers send: names, free text and bounded lists, each a 400 with a stable
//! reason and a sentence naming the field. Every handler validates through here, so the same
//! field is held to the same rule everywhere. (Key strings, actions, scopes, origins and
//! routes are parsed by `keygate_shared`, which owns their formats.)

use crate::error::{ApiError, ApiResult};

/// Longest name of a workspace, SDK key, token, scope or API key, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest free-text description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;

/// An id from a path or body: a malformed one is `404` for `what` ("token", "member", ...),
/// the same answer as an unknown id, so its shape tells the caller nothing.
pub fn id(raw: &str, what: &str) -> ApiResult<()> {
    if crate::ids::is_valid_id(raw) {
        Ok(())
    } else {
        Err(ApiError::not_found(what))
    }
}

/// A user-given name: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control characters.
/// `400 INVALID_NAME` names `what` ("workspace", "SDK key", ...).
pub fn name(raw: &str, what: &str) -> ApiResult<String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(ApiError::bad_request(
            "INVALID_NAME",
            format!("the {what} needs a name"),
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_request(
            "INVALID_NAME",
            format!("a {what} name is at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "INVALID_NAME",
            format!("a {what} name cannot contain control characters such as newlines or tabs"),
        ));
    }
    Ok(name.to_owned())
}

/// Optional free text: trimmed, blank means none, at most `max` characters.
/// `400 <reason>` names `field`.
pub fn optional_text(
    raw: Option<&str>,
    field: &str,
    max: usize,
    reason: &'static str,
) -> ApiResult<Option<String>> {
    let Some(text) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > max {
        return Err(ApiError::bad_request(
            reason,
            format!("{field} is at most {max} characters"),
        ));
    }
    Ok(Some(text.to_owned()))
}

/// An email address: trimmed and lower-cased; `400 INVALID_EMAIL` unless it is one local
/// part (1 to 64 characters), one `@` and a dotted domain, at most 254 printable ASCII
/// characters in all.
pub fn email(raw: &str) -> ApiResult<String> {
    let email = raw.trim().to_ascii_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.len() <= 64
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && email.matches('@').count() == 1
        && email.chars().all(|c| c.is_ascii_graphic());
    if valid {
        Ok(email)
    } else {
        Err(ApiError::bad_request(
            "INVALID_EMAIL",
            "that is not an email address",
        ))
    }
}

/// A list of at most `max` items: `400 <reason>` naming `field` beyond.
pub fn bounded<T>(items: &[T], field: &str, max: usize, reason: &'static str) -> ApiResult<()> {
    if items.len() > max {
        return Err(ApiError::bad_request(
            reason,
            format!(
                "{field} has {} items; at most {max} are allowed",
                items.len()
            ),
        ));
    }
    Ok(())
}

/// API-key scopes: at most [`MAX_SCOPES`] (`400 TOO_MANY_SCOPES`), each representation well
/// formed (`400 INVALID_REPRESENTATION`). Whether the workspace defines them is the caller's
/// question (it needs the database).
///
/// [`MAX_SCOPES`]: crate::http::api_keys::MAX_SCOPES
pub fn api_key_scopes(scopes: &[keygate_shared::scope::ApiKeyScope]) -> ApiResult<()> {
    use crate::http::api_keys::MAX_SCOPES;
    if scopes.len() > MAX_SCOPES {
        return Err(ApiError::bad_request(
            "TOO_MANY_SCOPES",
            format!("a key grants at most {MAX_SCOPES} scopes"),
        ));
    }
    if scopes
        .iter()
        .any(|s| !keygate_shared::scope::is_valid_representation(&s.representation))
    {
        return Err(ApiError::bad_request(
            "INVALID_REPRESENTATION",
            "a scope representation is 1 to 64 characters of letters, digits, `_`, `-`, `.`, `:` and `/`",
        ));
    }
    Ok(())
}

/// For PATCH bodies: "absent" versus "null" (defined with the contract types).
pub use crate::api::present;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_bounded_and_printable() {
        assert_eq!(name("  Prod  ", "workspace").unwrap(), "Prod");
        assert!(name("   ", "workspace").is_err());
        assert!(name(&"é".repeat(100), "workspace").is_ok());
        assert!(name(&"é".repeat(101), "workspace").is_err());
        assert!(name("a\nb", "workspace").is_err());
        assert!(name("a\u{7f}b", "workspace").is_err());
    }

    #[test]
    fn optional_text_is_none_when_blank_and_bounded() {
        assert_eq!(
            optional_text(Some("  "), "description", 5, "X").unwrap(),
            None
        );
        assert_eq!(optional_text(None, "description", 5, "X").unwrap(), None);
        assert_eq!(
            optional_text(Some(" ab "), "description", 5, "X").unwrap(),
            Some("ab".into())
        );
        assert_eq!(
            optional_text(Some("abcdef"), "description", 5, "X")
                .unwrap_err()
                .reason,
            "X"
        );
    }

    #[test]
    fn emails_are_validated_and_lowercased() {
        assert_eq!(email(" Ada@Example.COM ").unwrap(), "ada@example.com");
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "a@b",
            "a b@example.com",
            "a@@example.com",
            "a@exa\tmple.com",
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lists_are_bounded() {
        assert!(bounded(&[1, 2], "origins", 2, "TOO_MANY").is_ok());
        assert_eq!(
            bounded(&[1, 2, 3], "origins", 2, "TOO_MANY")
                .unwrap_err()
                .reason,
            "TOO_MANY"
        );
    }
}
