//! `GET /api/v1/audit-events`: the organisation's audit log, newest first.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use keygate_shared::authz::Action;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::audit::{AuditPage, AuditQuery};
use crate::error::{ApiError, ApiResult};
use crate::http::auth::CurrentUser;
use crate::http::AppState;
use crate::store;
use crate::store::audit::AuditFilter;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events))
}

/// List audit events.
///
/// Newest first. Paging: pass the answer's `nextBefore` (`<ms>.<event id>`) as `before`;
/// the cursor is on (time, id), so events sharing a millisecond are never skipped. A bare
/// `<ms>` is still accepted (everything strictly older).
#[utoipa::path(
    get, path = "/audit-events", tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "One page of events, newest first", body = AuditPage),
    ),
    security(("session" = [])),
)]
async fn list_events(
    State(state): State<AppState>,
    user: CurrentUser,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<Json<AuditPage>> {
    let Query(q) = query.map_err(|e| {
        ApiError::bad_request(
            "INVALID_QUERY",
            format!("bad query string: {}", e.body_text()),
        )
    })?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "INVALID_QUERY",
            "limit must be between 1 and 500",
        ));
    }
    let before = match q.before.as_deref() {
        None => (i64::MAX, ""),
        Some(cursor) => parse_cursor(cursor).ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_QUERY",
                "before must be the nextBefore of a previous page",
            )
        })?,
    };
    user.authorize(Action::ReadDashboard)?;
    let filter = AuditFilter {
        org_id: &user.org_id,
        workspace_id: q.workspace_id.as_deref(),
        action: q.action.as_deref(),
        before,
        limit,
    };
    let (events, next_before) = store::audit::list(&state.db, &filter).await?;
    Ok(Json(AuditPage {
        events,
        next_before,
    }))
}

/// Parses a paging cursor: `<ms>.<id>` or a bare `<ms>` (then the id bound is empty, which
/// no id sorts below, so only strictly older events follow).
fn parse_cursor(cursor: &str) -> Option<(i64, &str)> {
    let (ms, id) = cursor.split_once('.').unwrap_or((cursor, ""));
    let ms: i64 = ms.parse().ok()?;
    (id.is_empty() || crate::ids::is_valid_id(id)).then_some((ms, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::auth::{Principal, Role};
    use crate::store::audit::AuditEntry;

    #[test]
    fn cursors_name_a_time_and_an_id() {
        let id = crate::ids::new_id();
        assert_eq!(parse_cursor(&format!("17.{id}")), Some((17, id.as_str())));
        assert_eq!(parse_cursor("17"), Some((17, "")));
        assert_eq!(parse_cursor("x.y"), None);
        assert_eq!(parse_cursor("17.not an id"), None);
    }

    fn user() -> CurrentUser {
        CurrentUser {
            user_id: "u1".into(),
            org_id: "o1".into(),
            email: "a@example.com".into(),
            role: Role::Admin,
            session_id: "s1".into(),
            step_up_until: None,
        }
    }

    #[test]
    fn entries_default_to_a_successful_event_in_the_callers_org_with_empty_detail() {
        let user = user();
        let e = AuditEntry::by_user(&user, "member.invite");
        assert_eq!(
            (e.org_id, e.actor_id, e.actor, e.action),
            ("o1", Some("u1"), "a@example.com", "member.invite")
        );
        assert_eq!(
            (e.workspace_id, e.target, e.outcome),
            (None, None, "success")
        );
        assert_eq!(e.detail.to_string(), "{}");

        let principal = Principal::User(user.clone());
        let p = AuditEntry::by(&principal, "member.invite");
        assert_eq!(
            (p.org_id, p.actor_id, p.actor, p.action),
            (e.org_id, e.actor_id, e.actor, e.action)
        );
    }

    #[test]
    fn the_builder_sets_each_field_it_names() {
        let user = user();
        let e = AuditEntry::by_user(&user, "sdk_key.reveal")
            .in_workspace("w1")
            .on("k1")
            .failed()
            .with(serde_json::json!({"reason": "EXPIRED"}));
        assert_eq!(
            (e.workspace_id, e.target, e.outcome),
            (Some("w1"), Some("k1"), "failure")
        );
        assert_eq!(e.detail.to_string(), r#"{"reason":"EXPIRED"}"#);
    }
}
