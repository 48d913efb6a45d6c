//! `GET /api/v1/audit-events`: the organisation's audit log, newest first.

use serde_json::Value;

/// Routes: `GET /audit-events?workspaceId=&action=&before=&limit=` (newest first). Paging:
/// pass the answer's `nextBefore` (`<ms>.<event id>`) as `before`; the cursor is on
/// (time, id), so events sharing a millisecond are never skipped. A bare `<ms>` is still
/// accepted (everything strictly older).
pub fn router() -> axum::Router<crate::http::AppState> {
    axum::Router::new().route("/audit-events", axum::routing::get(list))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListQuery {
    workspace_id: Option<String>,
    action: Option<String>,
    /// Only events before this cursor (`<ms>.<id>` from `nextBefore`, or a bare `<ms>`).
    before: Option<String>,
    limit: Option<i64>,
}

type EventRow = (
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
);

async fn list(
    axum::extract::State(state): axum::extract::State<crate::http::AppState>,
    user: crate::auth::CurrentUser,
    query: Result<axum::extract::Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> crate::error::ApiResult<axum::Json<Value>> {
    use crate::error::ApiError;
    let axum::extract::Query(q) = query.map_err(|e| {
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
    let (before, before_id) = match q.before.as_deref() {
        None => (i64::MAX, String::new()),
        Some(cursor) => parse_cursor(cursor).ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_QUERY",
                "before must be the nextBefore of a previous page",
            )
        })?,
    };
    user.authorize(keygate_shared::authz::Action::ReadDashboard)?;
    let rows: Vec<EventRow> = crate::with_db!(&state.db, |pool| {
        sqlx::query_as(
            "SELECT id, workspace_id, actor, action, target, outcome, ip, user_agent, detail, created_at
               FROM audit_events
              WHERE org_id = $1
                AND ($2 IS NULL OR workspace_id = $2)
                AND ($3 IS NULL OR action = $3)
                AND (created_at < $4 OR (created_at = $4 AND id < $6))
              ORDER BY created_at DESC, id DESC
              LIMIT $5",
        )
        .bind(&user.org_id)
        .bind(q.workspace_id.as_deref())
        .bind(q.action.as_deref())
        .bind(before)
        .bind(limit)
        .bind(&before_id)
        .fetch_all(pool)
        .await
    })?;
    let next_before = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| format!("{}.{}", r.9, r.0)))
        .flatten();
    let events: Vec<Value> = rows
        .into_iter()
        .map(
            |(
                id,
                workspace_id,
                actor,
                action,
                target,
                outcome,
                ip,
                user_agent,
                detail,
                created_at,
            )| {
                serde_json::json!({
                    "id": id,
                    "workspaceId": workspace_id,
                    "actor": actor,
                    "action": action,
                    "target": target,
                    "outcome": outcome,
                    "ip": ip,
                    "userAgent": user_agent,
                    "detail": serde_json::from_str::<Value>(&detail).unwrap_or(Value::Null),
                    "createdAt": crate::ids::rfc3339(created_at),
                })
            },
        )
        .collect();
    Ok(axum::Json(
        serde_json::json!({"events": events, "nextBefore": next_before}),
    ))
}

/// Parses a paging cursor: `<ms>.<id>` or a bare `<ms>` (then the id bound is empty, which
/// no id sorts below, so only strictly older events follow).
fn parse_cursor(cursor: &str) -> Option<(i64, String)> {
    let (ms, id) = cursor.split_once('.').unwrap_or((cursor, ""));
    let ms: i64 = ms.parse().ok()?;
    (id.is_empty() || crate::ids::is_valid_id(id)).then(|| (ms, id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{CurrentUser, Principal, Role};
    use crate::store::audit::AuditEntry;

    #[test]
    fn cursors_name_a_time_and_an_id() {
        let id = crate::ids::new_id();
        assert_eq!(parse_cursor(&format!("17.{id}")), Some((17, id)));
        assert_eq!(parse_cursor("17"), Some((17, String::new())));
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
