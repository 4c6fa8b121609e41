//! Webhook endpoints, deliveries, attempts and the NATS position, in SQLite's SQL.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::delivery::{
    AttemptRow, Backlog, Claim, DeliveryPage, DeliveryRow, DeliveryRows, Disabling, EndpointRow,
    Finish, Pending, PendingPage, Requeue, DELIVERY_COLUMNS, ENDPOINT_COLUMNS,
};
use crate::rows::{EventRow, EVENT_COLUMNS};
use crate::StoreResult;

fn endpoint_row(r: &Row<'_>) -> rusqlite::Result<EndpointRow> {
    Ok(EndpointRow {
        id: r.get(0)?,
        url: r.get(1)?,
        types: r.get(2)?,
        description: r.get(3)?,
        secret: r.get(4)?,
        previous_secret: r.get(5)?,
        previous_secret_expires_ms: r.get(6)?,
        enabled: r.get(7)?,
        disabled_reason: r.get(8)?,
        failures_in_a_row: r.get(9)?,
        cursor_seq: r.get(10)?,
        created_ms: r.get(11)?,
        updated_ms: r.get(12)?,
    })
}

fn delivery_row(r: &Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        endpoint_id: r.get(0)?,
        seq: r.get(1)?,
        event_id: r.get(2)?,
        subject: r.get(3)?,
        status: r.get(4)?,
        attempts: r.get(5)?,
        next_attempt_ms: r.get(6)?,
        lease_owner: r.get(7)?,
        lease_until_ms: r.get(8)?,
        created_ms: r.get(9)?,
        updated_ms: r.get(10)?,
    })
}

fn event_row(r: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        seq: r.get(0)?,
        id: r.get(1)?,
        event_type: r.get(2)?,
        recorded_ms: r.get(3)?,
        app_key: r.get(4)?,
        request_id: r.get(5)?,
        subject: r.get(6)?,
        data: r.get(7)?,
    })
}

impl DeliveryRows for Connection {
    fn insert_endpoint(&mut self, e: &EndpointRow) -> StoreResult<bool> {
        let n = self.execute(
            &format!(
                "INSERT INTO endpoints ({ENDPOINT_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                 ON CONFLICT DO NOTHING"
            ),
            params![
                e.id,
                e.url,
                e.types,
                e.description,
                e.secret,
                e.previous_secret,
                e.previous_secret_expires_ms,
                e.enabled,
                e.disabled_reason,
                e.failures_in_a_row,
                e.cursor_seq,
                e.created_ms,
                e.updated_ms
            ],
        )?;
        Ok(n > 0)
    }

    fn latest_event_seq(&mut self) -> StoreResult<i64> {
        Ok(self.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))?)
    }

    fn update_endpoint(&mut self, e: &EndpointRow) -> StoreResult<bool> {
        let n = self.execute(
            "UPDATE endpoints SET url = ?2, types = ?3, description = ?4, secret = ?5,
                 previous_secret = ?6, previous_secret_expires_ms = ?7, enabled = ?8,
                 disabled_reason = ?9, failures_in_a_row = ?10, updated_ms = ?11
             WHERE id = ?1",
            params![
                e.id,
                e.url,
                e.types,
                e.description,
                e.secret,
                e.previous_secret,
                e.previous_secret_expires_ms,
                e.enabled,
                e.disabled_reason,
                e.failures_in_a_row,
                e.updated_ms
            ],
        )?;
        Ok(n > 0)
    }

    fn endpoint(&mut self, id: &str) -> StoreResult<Option<EndpointRow>> {
        let mut stmt = self.prepare_cached(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = ?1"
        ))?;
        Ok(stmt.query_row(params![id], endpoint_row).optional()?)
    }

    fn endpoints(&mut self) -> StoreResult<Vec<EndpointRow>> {
        let mut stmt = self.prepare_cached(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints ORDER BY created_ms, id"
        ))?;
        let rows = stmt.query_map([], endpoint_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn delete_endpoint(&mut self, id: &str) -> StoreResult<bool> {
        self.execute("DELETE FROM attempts WHERE endpoint_id = ?1", params![id])?;
        self.execute("DELETE FROM deliveries WHERE endpoint_id = ?1", params![id])?;
        Ok(self.execute("DELETE FROM endpoints WHERE id = ?1", params![id])? > 0)
    }

    fn advance_cursor(&mut self, id: &str, from: i64, to: i64) -> StoreResult<bool> {
        let n = self.execute(
            "UPDATE endpoints SET cursor_seq = ?3 WHERE id = ?1 AND cursor_seq = ?2",
            params![id, from, to],
        )?;
        Ok(n > 0)
    }

    fn insert_deliveries(&mut self, rows: &[DeliveryRow]) -> StoreResult<()> {
        let mut stmt = self.prepare_cached(&format!(
            "INSERT INTO deliveries ({DELIVERY_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT DO NOTHING"
        ))?;
        for d in rows {
            stmt.execute(params![
                d.endpoint_id,
                d.seq,
                d.event_id,
                d.subject,
                d.status,
                d.attempts,
                d.next_attempt_ms,
                d.lease_owner,
                d.lease_until_ms,
                d.created_ms,
                d.updated_ms
            ])?;
        }
        Ok(())
    }

    fn first_pending(&mut self, p: &PendingPage<'_>) -> StoreResult<Vec<Pending>> {
        let mut stmt = self.prepare_cached(
            "SELECT seq, subject, next_attempt_ms, lease_until_ms FROM deliveries
             WHERE endpoint_id = ?1 AND status = 'pending' AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![p.endpoint_id, p.after_seq, p.limit], |r| {
            Ok(Pending {
                seq: r.get(0)?,
                subject: r.get(1)?,
                next_attempt_ms: r.get(2)?,
                lease_until_ms: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn lease(&mut self, c: &Claim<'_>, seqs: &[i64]) -> StoreResult<Vec<DeliveryRow>> {
        let mut stmt = self.prepare_cached(&format!(
            "UPDATE deliveries SET lease_owner = ?2, lease_until_ms = ?4
             WHERE endpoint_id = ?1 AND seq = ?5 AND status = 'pending'
               AND (lease_until_ms IS NULL OR lease_until_ms < ?3)
             RETURNING {DELIVERY_COLUMNS}"
        ))?;
        let mut leased = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let args = params![c.endpoint_id, c.owner, c.now_ms, c.lease_until_ms, seq];
            if let Some(row) = stmt.query_row(args, delivery_row).optional()? {
                leased.push(row);
            }
        }
        Ok(leased)
    }

    fn events_by_seq(&mut self, seqs: &[i64]) -> StoreResult<Vec<EventRow>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        // One statement text for any number of seqs, so that it is prepared once: the seqs go
        // in as a JSON array.
        let mut stmt = self.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE seq IN (SELECT value FROM json_each(?1))"
        ))?;
        let list = serde_json::to_string(seqs).expect("integers serialize");
        let rows = stmt.query_map(params![list], event_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn finish(&mut self, owner: &str, now_ms: i64, all: &[Finish<'_>]) -> StoreResult<Vec<bool>> {
        let mut stmt = self.prepare_cached(
            "UPDATE deliveries SET status = ?3, attempts = attempts + 1,
                 next_attempt_ms = coalesce(?4, next_attempt_ms),
                 lease_owner = NULL, lease_until_ms = NULL, updated_ms = ?5
             WHERE endpoint_id = ?1 AND seq = ?2 AND lease_owner = ?6",
        )?;
        let mut done = Vec::with_capacity(all.len());
        for f in all {
            let n = stmt.execute(params![
                f.endpoint_id,
                f.seq,
                f.status.as_str(),
                f.next_attempt_ms,
                now_ms,
                owner
            ])?;
            done.push(n > 0);
        }
        Ok(done)
    }

    fn append_attempts(&mut self, rows: &[AttemptRow]) -> StoreResult<()> {
        let mut stmt = self.prepare_cached(
            "INSERT INTO attempts (endpoint_id, seq, at_ms, status_code, latency_ms, response, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for a in rows {
            stmt.execute(params![
                a.endpoint_id,
                a.seq,
                a.at_ms,
                a.status_code,
                a.latency_ms,
                a.response,
                a.error
            ])?;
        }
        Ok(())
    }

    fn reset_failures(&mut self, id: &str) -> StoreResult<()> {
        self.prepare_cached(
            "UPDATE endpoints SET failures_in_a_row = 0 WHERE id = ?1 AND failures_in_a_row <> 0",
        )?
        .execute(params![id])?;
        Ok(())
    }

    fn add_failure(&mut self, id: &str, d: &Disabling<'_>) -> StoreResult<bool> {
        let (disable_after, reason, now_ms) = (d.after, d.reason, d.now_ms);
        let disabled: Option<bool> = self
            .query_row(
                "UPDATE endpoints SET failures_in_a_row = failures_in_a_row + 1,
                     enabled = enabled AND failures_in_a_row + 1 < ?2,
                     disabled_reason = CASE WHEN enabled AND failures_in_a_row + 1 >= ?2
                                            THEN ?3 ELSE disabled_reason END,
                     updated_ms = ?4
                 WHERE id = ?1
                 RETURNING failures_in_a_row = ?2",
                params![id, disable_after, reason, now_ms],
                |r| r.get(0),
            )
            .optional()?;
        Ok(disabled.unwrap_or(false))
    }

    fn disable_endpoint(&mut self, id: &str, reason: &str, now_ms: i64) -> StoreResult<()> {
        self.execute(
            "UPDATE endpoints SET enabled = 0, disabled_reason = ?2, updated_ms = ?3 WHERE id = ?1",
            params![id, reason, now_ms],
        )?;
        Ok(())
    }

    fn deliveries(&mut self, q: &DeliveryPage<'_>) -> StoreResult<Vec<DeliveryRow>> {
        let (endpoint_id, status, limit) = (q.endpoint_id, q.status, q.limit);
        let before = q.before_seq.unwrap_or(i64::MAX);
        // A bound written as `?3 IS NULL OR seq < ?3` would keep the index from starting at it.
        let mut stmt = self.prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries
             WHERE endpoint_id = ?1 AND (?2 IS NULL OR status = ?2) AND seq < ?3
             ORDER BY seq DESC LIMIT ?4"
        ))?;
        let rows = stmt.query_map(params![endpoint_id, status, before, limit], delivery_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn delivery_of(&mut self, endpoint: &str, event: &str) -> StoreResult<Option<DeliveryRow>> {
        let (endpoint_id, event_id) = (endpoint, event);
        let mut stmt = self.prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE endpoint_id = ?1 AND event_id = ?2"
        ))?;
        Ok(stmt
            .query_row(params![endpoint_id, event_id], delivery_row)
            .optional()?)
    }

    fn attempts(&mut self, endpoint_id: &str, seq: i64) -> StoreResult<Vec<AttemptRow>> {
        let mut stmt = self.prepare_cached(
            "SELECT endpoint_id, seq, at_ms, status_code, latency_ms, response, error
             FROM attempts WHERE endpoint_id = ?1 AND seq = ?2 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![endpoint_id, seq], |r| {
            Ok(AttemptRow {
                endpoint_id: r.get(0)?,
                seq: r.get(1)?,
                at_ms: r.get(2)?,
                status_code: r.get(3)?,
                latency_ms: r.get(4)?,
                response: r.get(5)?,
                error: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn requeue(&mut self, r: &Requeue<'_>) -> StoreResult<u64> {
        let (endpoint_id, event_id) = (r.endpoint_id, r.event_id);
        let (since_ms, now_ms) = (r.since_ms, r.now_ms);
        let n = self.execute(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_ms = ?4,
                 lease_owner = NULL, lease_until_ms = NULL, updated_ms = ?4
             WHERE endpoint_id = ?1
               AND (CASE WHEN ?2 IS NULL THEN status = 'failed' AND created_ms >= coalesce(?3, 0)
                         ELSE event_id = ?2 END)",
            params![endpoint_id, event_id, since_ms, now_ms],
        )?;
        Ok(n as u64)
    }

    fn backlog(&mut self, endpoint_id: &str) -> StoreResult<Backlog> {
        Ok(self.query_row(
            "SELECT count(*), min(created_ms) FROM deliveries
             WHERE endpoint_id = ?1 AND status = 'pending'",
            params![endpoint_id],
            |r| {
                Ok(Backlog {
                    pending: r.get(0)?,
                    oldest_pending_ms: r.get(1)?,
                })
            },
        )?)
    }

    fn delivery_floor(&mut self) -> StoreResult<Option<i64>> {
        Ok(self.query_row(
            "SELECT min(floor) FROM (
                 SELECT min(cursor_seq) + 1 AS floor FROM endpoints
                 UNION ALL SELECT min(seq) FROM deliveries WHERE status <> 'delivered'
                 UNION ALL SELECT seq + 1 FROM nats_position WHERE lease_owner IS NOT NULL)",
            [],
            |r| r.get(0),
        )?)
    }

    fn nats_claim(&mut self, owner: &str, now_ms: i64, until_ms: i64) -> StoreResult<Option<i64>> {
        let lease_until_ms = until_ms;
        Ok(self
            .query_row(
                "UPDATE nats_position SET lease_owner = ?1, lease_until_ms = ?3
                 WHERE lease_owner IS NULL OR lease_owner = ?1 OR lease_until_ms < ?2
                 RETURNING seq",
                params![owner, now_ms, lease_until_ms],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn nats_advance(&mut self, owner: &str, seq: i64) -> StoreResult<bool> {
        let n = self.execute(
            "UPDATE nats_position SET seq = max(seq, ?2) WHERE lease_owner = ?1",
            params![owner, seq],
        )?;
        Ok(n > 0)
    }
}
