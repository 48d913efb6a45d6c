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
