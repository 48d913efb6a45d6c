//! The audit log: who did what, when, from where. Every sign-in, create, reveal (and failed
//! reveal), rotate, revoke and blacklist change writes one row, in the same transaction as
//! the change when there is one, so the log never claims a change that rolled back. [`list`] reads it back a page at a time.

use serde_json::Value;

use crate::api::audit::AuditEvent;
use crate::api::Timestamp;
use crate::ids::{new_id, now_ms};
use crate::store::{Db, StoreResult};
use crate::{impl_for_both_backends, with_db};

/// Who is on the other end, for the audit log: peer IP and (truncated) user agent. The HTTP
/// layer extracts it from each request.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    /// The client's IP: the peer's, or the one a trusted proxy forwarded.
    pub ip: Option<String>,
    /// `User-Agent`, at most 256 characters.
    pub user_agent: Option<String>,
}

/// One event to record.
///
/// Build it from the caller, so the row's organisation is always the caller's (the tenant
/// boundary), then add what applies:
///
/// ```ignore
/// AuditEntry::by_user(&user, "blacklist.add")   // or AuditEntry::by(&principal, ..)
///     .in_workspace(&workspace.id)
///     .on(&rule_id)
///     .with(json!({ "module": module }))
/// ```
///
/// Defaults: outcome `success` (`.failed()` for `failure`), no workspace, no target, detail
/// `{}`. Where the workspace is optional, set the field directly:
/// `AuditEntry { workspace_id: key.workspace_id.as_deref(), ..AuditEntry::by_user(..) }`.
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

impl<'a> AuditEntry<'a> {
    /// An event in `org_id` by `actor_id` (shown as `actor`). Only for callers that are not
    /// yet a [`CurrentUser`] or [`Principal`] (signing in); everything else uses
    /// [`AuditEntry::by_user`] or [`AuditEntry::by`].
    pub fn new(org_id: &'a str, actor_id: &'a str, actor: &'a str, action: &'a str) -> Self {
        AuditEntry {
            org_id,
            workspace_id: None,
            actor_id: Some(actor_id),
            actor,
            action,
            target: None,
            outcome: "success",
            detail: Value::Object(Default::default()),
        }
    }

    /// The event concerns this workspace.
    pub fn in_workspace(self, workspace_id: &'a str) -> Self {
        AuditEntry {
            workspace_id: Some(workspace_id),
            ..self
        }
    }

    /// The object acted on (an id, email or mask).
    pub fn on(self, target: &'a str) -> Self {
        AuditEntry {
            target: Some(target),
            ..self
        }
    }

    /// Extra structured detail (never secrets).
    pub fn with(self, detail: Value) -> Self {
        AuditEntry { detail, ..self }
    }

    /// The attempt failed (outcome `failure`).
    pub fn failed(self) -> Self {
        AuditEntry {
            outcome: "failure",
            ..self
        }
    }
}

/// Records an event on its own connection, outside any transaction: for attempts that change
/// nothing (failed sign-ins, reveal requests). Changes record inside their transaction with
/// [`AuditStore::record_audit`] instead.
pub async fn record_now(
    db: &Db,
    entry: &AuditEntry<'_>,
    client: &ClientInfo,
) -> super::StoreResult<()> {
    with_db!(db, |pool| {
        let mut conn = pool.acquire().await?;
        conn.record_audit(entry, client).await?;
        Ok(())
    })
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

/// Which events a page lists.
#[derive(Clone, Copy, Debug)]
pub struct AuditFilter<'a> {
    /// The organisation (the caller's: the tenant boundary).
    pub org_id: &'a str,
    /// Only events in this workspace.
    pub workspace_id: Option<&'a str>,
    /// Only events with this action.
    pub action: Option<&'a str>,
    /// Only events before (time, id) (Unix ms; an empty id: strictly before the time).
    pub before: (i64, &'a str),
    /// At most this many.
    pub limit: i64,
}

/// One page of organisation `filter.org_id`'s events, newest first, and the cursor of the
/// next page (`<ms>.<id>` of the last event) when the page is full. The cursor is on (time,
/// id), so events sharing a millisecond are never skipped.
pub async fn list(
    db: &Db,
    filter: &AuditFilter<'_>,
) -> StoreResult<(Vec<AuditEvent>, Option<String>)> {
    let rows: Vec<EventRow> = with_db!(db, |pool| {
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
        .bind(filter.org_id)
        .bind(filter.workspace_id)
        .bind(filter.action)
        .bind(filter.before.0)
        .bind(filter.limit)
        .bind(filter.before.1)
        .fetch_all(pool)
        .await
    })?;
    let next_before = (rows.len() as i64 == filter.limit)
        .then(|| rows.last().map(|r| format!("{}.{}", r.created_at, r.id)))
        .flatten();
    let events = rows.into_iter().map(EventRow::into_event).collect();
    Ok((events, next_before))
}

/// An `audit_events` row as listing reads it.
#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    workspace_id: Option<String>,
    actor: String,
    action: String,
    target: Option<String>,
    outcome: String,
    ip: Option<String>,
    user_agent: Option<String>,
    detail: String,
    created_at: i64,
}

impl EventRow {
    fn into_event(self) -> AuditEvent {
        AuditEvent {
            detail: serde_json::from_str(&self.detail).unwrap_or(Value::Null),
            created_at: Timestamp(self.created_at),
            id: self.id,
            workspace_id: self.workspace_id,
            actor: self.actor,
            action: self.action,
            target: self.target,
            outcome: self.outcome,
            ip: self.ip,
            user_agent: self.user_agent,
        }
    }
}
