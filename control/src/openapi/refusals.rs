//! Every operation's `4XX` answer, said once: an `ErrorBody` whose description is derived from
//! the operation itself (who may call it, whether it takes a body or a query, which things its
//! path names), so the handlers' annotations list only the refusals peculiar to them (`409
//! KEY_ALREADY_REVOKED`, `403 WORKSPACE_BOUND_KEY`, ...) and the document says the common ones
//! the same way everywhere. An operation that describes its own `4XX` keeps it.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, ToSchema};

use crate::api::ErrorBody;

/// Gives each operation that has none a `4XX` [`ErrorBody`] answer.
pub struct CommonRefusals;

impl Modify for CommonRefusals {
    fn modify(&self, doc: &mut OpenApi) {
        for item in doc.paths.paths.values_mut() {
            let operations = [
                (false, &mut item.get),
                (true, &mut item.put),
                (true, &mut item.post),
                (true, &mut item.delete),
                (true, &mut item.patch),
            ];
            for (writes, op) in operations {
                if let Some(op) = op {
                    add_refusal(op, writes);
                }
            }
        }
    }
}

/// Adds the `4XX` answer to `op` (`writes`: its method changes something) unless it has one
/// or cannot be refused.
fn add_refusal(op: &mut Operation, writes: bool) {
    if op.responses.responses.contains_key("4XX") {
        return;
    }
    let reasons = refusals(op, writes);
    if reasons.is_empty() {
        return;
    }
    let error_body = Ref::from_schema_name(ErrorBody::name());
    let answer = ResponseBuilder::new()
        .description(sentence(&reasons))
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(error_body)).build(),
        )
        .build();
    op.responses
        .responses
        .insert("4XX".to_owned(), RefOr::T(answer));
}

/// Why `op` may be refused, in the order a request meets them: its credentials, its input,
/// then the things its path names. A refusal the operation already answers with its own
/// status (`401`, `400`, `404`) is left to that answer.
fn refusals(op: &Operation, writes: bool) -> Vec<String> {
    let answers = |status: &str| op.responses.responses.contains_key(status);
    let mut reasons = Vec::new();
    if !answers("401") {
        reasons.extend(credential_refusals(&schemes(op), writes));
    }
    if op.request_body.is_some() && !answers("400") {
        reasons.push("an invalid body (`INVALID_BODY`, `MALFORMED_JSON`)".to_owned());
    }
    if parameters(op, ParameterIn::Query).next().is_some() && !answers("400") {
        reasons.push("an invalid query (`INVALID_QUERY`)".to_owned());
    }
    let things: Vec<&str> = parameters(op, ParameterIn::Path)
        .map(|description| description.trim_start_matches("The "))
        .collect();
    if !things.is_empty() && !answers("404") {
        reasons.push(format!("no such {}", things.join(" or ")));
    }
    reasons
}

/// The refusals the ways of calling `op` bring (`schemes`: the names of its security
/// schemes; `writes`: a session must also send its CSRF token and may need a step-up).
fn credential_refusals(schemes: &[String], writes: bool) -> Vec<String> {
    let has = |name: &str| schemes.iter().any(|s| s == name);
    let session_refusals = if writes {
        "`CSRF_TOKEN_INVALID`, `ROLE_REQUIRED`, `STEP_UP_REQUIRED`"
    } else {
        "`ROLE_REQUIRED`"
    };
    let mut reasons = Vec::new();
    if has("session") && has("sdkKey") {
        reasons.push("no credentials (`MISSING_CREDENTIALS`)".to_owned());
    } else if has("session") {
        reasons.push("not signed in (`NOT_SIGNED_IN`)".to_owned());
    }
    if has("session") {
        reasons.push(format!("a session that may not ({session_refusals})"));
    }
    if has("sdkKey") {
        reasons.push(
            "an unknown SDK key or one without the scope (`INVALID_SDK_KEY`, `MISSING_SCOPE`)"
                .to_owned(),
        );
    }
    if has("linkToken") {
        reasons.push("no valid link token (`INVALID_LINK_TOKEN`, `LINK_TOKEN_EXPIRED`)".to_owned());
    }
    if has("edgeSignature") {
        reasons.push("no valid edge signature".to_owned());
    }
    reasons
}

/// The names of the security schemes `op` accepts.
fn schemes(op: &Operation) -> Vec<String> {
    let requirements = serde_json::to_value(&op.security).unwrap_or_default();
    let Some(requirements) = requirements.as_array() else {
        return Vec::new();
    };
    requirements
        .iter()
        .filter_map(|r| r.as_object())
        .flat_map(|r| r.keys().cloned())
        .collect()
}

/// The descriptions of `op`'s parameters found `place`.
fn parameters(op: &Operation, place: ParameterIn) -> impl Iterator<Item = &str> {
    op.parameters
        .iter()
        .flatten()
        .filter_map(|p| match p {
            RefOr::T(p) => Some(p),
            RefOr::Ref(_) => None,
        })
        .filter(move |p| p.parameter_in == place)
        .map(|p| p.description.as_deref().unwrap_or(&p.name))
}

/// `a`, `a; or b`, `a; b; or c`, with a capital first letter (the reasons have commas and
/// "or"s of their own).
fn sentence(reasons: &[String]) -> String {
    let text = match reasons {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{}; or {last}", rest.join("; ")),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_one_sentence() {
        assert_eq!(sentence(&["not signed in".to_owned()]), "Not signed in");
        let reasons = ["a".to_owned(), "b".to_owned(), "no such c".to_owned()];
        assert_eq!(sentence(&reasons), "A; b; or no such c");
        assert_eq!(sentence(&reasons[1..]), "B; or no such c");
    }

    #[test]
    fn a_backend_route_names_both_credentials() {
        let both = credential_refusals(&["sdkKey".to_owned(), "session".to_owned()], false);
        assert!(both[0].contains("`MISSING_CREDENTIALS`"));
        assert!(both[2].contains("`MISSING_SCOPE`"));
        assert_eq!(both.len(), 3);
        let session = credential_refusals(&["session".to_owned()], true);
        assert!(session[0].contains("`NOT_SIGNED_IN`"));
        assert!(session[1].contains("`CSRF_TOKEN_INVALID`"));
        assert!(credential_refusals(&[], true).is_empty());
    }
}
