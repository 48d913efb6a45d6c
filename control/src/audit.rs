//! The audit log: who did what, when, from where. Every sign-in, create, reveal (and failed
//! reveal), rotate, revoke and blacklist change writes one row, in the same transaction as
//! the change when there is one, so the log never claims a change that rolled back.

use serde_json::Value;

use crate::http::ClientInfo;
use crate::ids::{new_id, now_ms};
use crate::impl_for_both_backends;

/// One event to record.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    /// The organisation it belongs to (tenant boundary for listing).
    pub org_id: &'a str,
    /// The workspace, when the event concerns one.
    pub workspace_id: Option<&'a str>,
    /// The acting user or SDK key id.
    pub actor_id: Option<&'a str>,
    /// A readable actor: an email, or an SDK key's mask. Never a secret.
    pub actor: &'a str,
    /// What happened: `publishable_key.revoke`, `sdk_key.reveal`, `session.create`, ...
    pub action: &'a str,
    /// The object acted on (an id or mask).
    pub target: Option<&'a str>,
    /// `success` or `failure`.
    pub outcome: &'a str,
    /// Extra structured detail (never secrets).
    pub detail: Value,
}

/// Writing audit rows on a connection or inside a transaction (`&mut *tx`).
#[allow(async_fn_in_trait)]
pub trait AuditStore {
    /// Inserts one event.
    async fn record_audit(
        &mut self,
        e: &AuditEntry<'_>,
        client: &ClientInfo,
    ) -> Result<(), sqlx::Error>;
}

impl_for_both_backends!(AuditStore {
    async fn record_audit(&mut self, e: &AuditEntry<'_>, client: &ClientInfo) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO audit_events
                 (id, org_id, workspace_id, actor_id, actor, action, target, outcome, ip, user_agent, detail, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(new_id())
        .bind(e.org_id)
        .bind(e.workspace_id)
        .bind(e.actor_id)
        .bind(e.actor)
        .bind(e.action)
        .bind(e.target)
        .bind(e.outcome)
        .bind(client.ip.as_deref())
        .bind(client.user_agent.as_deref())
        .bind(e.detail.to_string())
        .bind(now_ms())
        .execute(&mut *self)
        .await?;
        Ok(())
    }
});

/// Routes: `GET /audit-events?workspaceId=&action=&actor=&before=&limit=` (newest first).
pub fn router() -> axum::Router<crate::http::AppState> {
    axum::Router::new().route("/audit-events", axum::routing::get(list))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListQuery {
    workspace_id: Option<String>,
    action: Option<String>,
    /// Only events older than this event id's time (paging).
    before: Option<i64>,
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
    let before = q.before.unwrap_or(i64::MAX);
    let rows: Vec<EventRow> = crate::with_db!(&state.db, |pool| {
        sqlx::query_as(
            "SELECT id, workspace_id, actor, action, target, outcome, ip, user_agent, detail, created_at
               FROM audit_events
              WHERE org_id = $1
                AND ($2 IS NULL OR workspace_id = $2)
                AND ($3 IS NULL OR action = $3)
                AND created_at < $4
              ORDER BY created_at DESC, id DESC
              LIMIT $5",
        )
        .bind(&user.org_id)
        .bind(q.workspace_id.as_deref())
        .bind(q.action.as_deref())
        .bind(before)
        .bind(limit)
        .fetch_all(pool)
        .await
    })?;
    let next_before = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.9))
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
