//! The audit trail.

use sqlx::AnyConnection;
use sqlx::FromRow as _;

use super::Store;
use super::script::Statement;
use crate::clock::UnixMillis;
use crate::ids::{SessionId, UserId};

/// One audited event.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditEvent {
    pub occurred_at: UnixMillis,
    /// What happened, e.g. `login_succeeded`, `refresh_reuse_detected`.
    pub event: String,
    pub user_id: Option<UserId>,
    pub session_id: Option<SessionId>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// What the event was about when that is not a user or session, such as
    /// a key id. Never a secret.
    pub detail: Option<String>,
}

impl Store {
    /// Appends an event to the trail.
    pub async fn insert_audit_event(&self, event: &AuditEvent) -> Result<(), sqlx::Error> {
        self.run(async |conn| insert_audit_event(conn, event).await)
            .await
    }

    /// Appends `events` to the trail, in one statement.
    pub async fn insert_audit_events(&self, events: &[AuditEvent]) -> Result<(), sqlx::Error> {
        if events.is_empty() {
            return Ok(());
        }
        let rows = vec!["(?, ?, ?, ?, ?, ?, ?)"; events.len()].join(", ");
        let sql = format!(
            "INSERT INTO audit_events \
             (occurred_at, event, user_id, session_id, ip, user_agent, detail) VALUES {rows}"
        );
        self.run(async |conn| {
            let mut insert = sqlx::query(&sql);
            for event in events {
                insert = insert
                    .bind(event.occurred_at)
                    .bind(&event.event)
                    .bind(&event.user_id)
                    .bind(&event.session_id)
                    .bind(&event.ip)
                    .bind(&event.user_agent)
                    .bind(&event.detail);
            }
            insert.execute(conn).await.map(drop)
        })
        .await
    }

    /// A user's events, oldest first.
    pub async fn audit_events_of(&self, user_id: &UserId) -> Result<Vec<AuditEvent>, sqlx::Error> {
        self.audit_events_where("user_id", user_id.as_str()).await
    }

    /// The events called `event`, oldest first.
    pub async fn audit_events_named(&self, event: &str) -> Result<Vec<AuditEvent>, sqlx::Error> {
        self.audit_events_where("event", event).await
    }

    async fn audit_events_where(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Vec<AuditEvent>, sqlx::Error> {
        let sql = format!(
            "SELECT occurred_at, event, user_id, session_id, ip, user_agent, detail \
             FROM audit_events WHERE {column} = ? ORDER BY occurred_at, id"
        );
        let rows = self
            .run(async |conn| sqlx::query(&sql).bind(value).fetch_all(conn).await)
            .await?;
        rows.iter().map(AuditEvent::from_row).collect()
    }
}

const INSERT_AUDIT_EVENT: &str = "INSERT INTO audit_events \
     (occurred_at, event, user_id, session_id, ip, user_agent, detail) \
     VALUES (?, ?, ?, ?, ?, ?, ?)";

/// Appends `event` on `conn`, so that a transaction can record what it did
/// in its own commit.
pub(super) async fn insert_audit_event(
    conn: &mut AnyConnection,
    event: &AuditEvent,
) -> Result<(), sqlx::Error> {
    sqlx::query(INSERT_AUDIT_EVENT)
        .bind(event.occurred_at)
        .bind(&event.event)
        .bind(&event.user_id)
        .bind(&event.session_id)
        .bind(&event.ip)
        .bind(&event.user_agent)
        .bind(&event.detail)
        .execute(conn)
        .await
        .map(drop)
}

/// The statement that appends `event`, for a script.
pub(super) fn insert_audit_event_statement(event: &AuditEvent) -> Statement<'_> {
    Statement::new(INSERT_AUDIT_EVENT)
        .bind(event.occurred_at)
        .bind(event.event.as_str())
        .bind(event.user_id.as_ref().map(UserId::as_str))
        .bind(event.session_id.as_ref().map(SessionId::as_str))
        .bind(event.ip.as_deref())
        .bind(event.user_agent.as_deref())
        .bind(event.detail.as_deref())
}

impl Store {
    /// Deletes the audit events that occurred before `before` (Unix ms);
    /// how many.
    pub async fn prune_audit_events(&self, before: UnixMillis) -> Result<u64, sqlx::Error> {
        let delete = sqlx::query("DELETE FROM audit_events WHERE occurred_at < ?").bind(before);
        let done = self.run(async |conn| delete.execute(conn).await).await?;
        Ok(done.rows_affected())
    }
}
