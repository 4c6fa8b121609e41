//! Webhook endpoints, deliveries, attempts and the NATS position, in PostgreSQL's SQL. Claims
//! skip rows another instance has locked, and hold by lease.

use postgres::Row;

use super::conn::{db_unavailable, Conn};
use super::events::FRONTIER;
use crate::delivery::{
    AttemptRow, Backlog, Claim, DeliveryPage, DeliveryRow, DeliveryRows, Disabling, EndpointRow,
    Finish, Pending, PendingPage, Requeue, DELIVERY_COLUMNS, ENDPOINT_COLUMNS,
};
use crate::rows::{EventRow, EVENT_COLUMNS};
use crate::StoreResult;

fn endpoint_row(r: &Row) -> EndpointRow {
    EndpointRow {
        id: r.get(0),
        url: r.get(1),
        types: r.get(2),
        description: r.get(3),
        secret: r.get(4),
        previous_secret: r.get(5),
        previous_secret_expires_ms: r.get(6),
        enabled: r.get(7),
        disabled_reason: r.get(8),
        failures_in_a_row: r.get(9),
        cursor_seq: r.get(10),
        created_ms: r.get(11),
        updated_ms: r.get(12),
    }
}

fn delivery_row(r: &Row) -> DeliveryRow {
    DeliveryRow {
        endpoint_id: r.get(0),
        seq: r.get(1),
        event_id: r.get(2),
        subject: r.get(3),
        status: r.get(4),
        attempts: r.get(5),
        next_attempt_ms: r.get(6),
        lease_owner: r.get(7),
        lease_until_ms: r.get(8),
        created_ms: r.get(9),
        updated_ms: r.get(10),
    }
}

impl DeliveryRows for Conn {
    fn insert_endpoint(&mut self, e: &EndpointRow) -> StoreResult<bool> {
        let n = self
            .client()?
            .execute(
                &format!(
                    "INSERT INTO endpoints ({ENDPOINT_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                     ON CONFLICT DO NOTHING"
                ),
                &[
                    &e.id,
                    &e.url,
                    &e.types,
                    &e.description,
                    &e.secret,
                    &e.previous_secret,
                    &e.previous_secret_expires_ms,
                    &e.enabled,
                    &e.disabled_reason,
                    &e.failures_in_a_row,
                    &e.cursor_seq,
                    &e.created_ms,
                    &e.updated_ms,
                ],
            )
            .map_err(db_unavailable)?;
        Ok(n > 0)
    }

    fn latest_event_seq(&mut self) -> StoreResult<i64> {
        // Below the frontier only: an event still to commit under it is not skipped.
        let row = self
            .client()?
            .query_one(
                &format!("SELECT coalesce(max(seq), 0) FROM events WHERE seq < {FRONTIER}"),
                &[],
            )
            .map_err(db_unavailable)?;
        Ok(row.get(0))
    }

    fn update_endpoint(&mut self, e: &EndpointRow) -> StoreResult<bool> {
        let n = self
            .client()?
            .execute(
                "UPDATE endpoints SET url = $2, types = $3, description = $4, secret = $5,
                     previous_secret = $6, previous_secret_expires_ms = $7, enabled = $8,
                     disabled_reason = $9, failures_in_a_row = $10, updated_ms = $11
                 WHERE id = $1",
                &[
                    &e.id,
                    &e.url,
                    &e.types,
                    &e.description,
                    &e.secret,
                    &e.previous_secret,
                    &e.previous_secret_expires_ms,
                    &e.enabled,
                    &e.disabled_reason,
                    &e.failures_in_a_row,
                    &e.updated_ms,
                ],
            )
            .map_err(db_unavailable)?;
        Ok(n > 0)
    }

    fn endpoint(&mut self, id: &str) -> StoreResult<Option<EndpointRow>> {
        let row = self
            .client()?
            .query_opt(
                &format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = $1"),
                &[&id],
            )
            .map_err(db_unavailable)?;
        Ok(row.as_ref().map(endpoint_row))
    }

    fn endpoints(&mut self) -> StoreResult<Vec<EndpointRow>> {
        let rows = self
            .client()?
            .query(
                &format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints ORDER BY created_ms, id"),
                &[],
            )
            .map_err(db_unavailable)?;
        Ok(rows.iter().map(endpoint_row).collect())
    }

    fn delete_endpoint(&mut self, id: &str) -> StoreResult<bool> {
        let c = self.client()?;
        c.execute("DELETE FROM attempts WHERE endpoint_id = $1", &[&id])
            .map_err(db_unavailable)?;
        c.execute("DELETE FROM deliveries WHERE endpoint_id = $1", &[&id])
            .map_err(db_unavailable)?;
        let n = c
            .execute("DELETE FROM endpoints WHERE id = $1", &[&id])
            .map_err(db_unavailable)?;
        Ok(n > 0)
    }

    fn advance_cursor(&mut self, id: &str, from: i64, to: i64) -> StoreResult<bool> {
        let n = self
            .client()?
            .execute(
                "UPDATE endpoints SET cursor_seq = $3 WHERE id = $1 AND cursor_seq = $2",
                &[&id, &from, &to],
            )
            .map_err(db_unavailable)?;
        Ok(n > 0)
    }

    fn insert_deliveries(&mut self, rows: &[DeliveryRow]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        // One statement for the whole page: a round trip per row would cost more than the rows.
        let seqs: Vec<i64> = rows.iter().map(|d| d.seq).collect();
        let ids: Vec<&str> = rows.iter().map(|d| d.event_id.as_str()).collect();
        let subjects: Vec<&str> = rows.iter().map(|d| d.subject.as_str()).collect();
        let first = &rows[0];
        self.client()?
            .execute(
                &format!(
                    "INSERT INTO deliveries ({DELIVERY_COLUMNS})
                     SELECT $1, s, i, j, 'pending', 0, $5, NULL, NULL, $5, $5
                     FROM unnest($2::BIGINT[], $3::TEXT[], $4::TEXT[]) AS u(s, i, j)
                     ON CONFLICT DO NOTHING"
                ),
                &[
                    &first.endpoint_id,
                    &seqs,
                    &ids,
                    &subjects,
                    &first.created_ms,
                ],
            )
            .map_err(db_unavailable)?;
        Ok(())
    }

    fn first_pending(&mut self, p: &PendingPage<'_>) -> StoreResult<Vec<Pending>> {
        let rows = self
            .client()?
            .query(
                "SELECT seq, subject, next_attempt_ms, lease_until_ms FROM deliveries
                 WHERE endpoint_id = $1 AND status = 'pending' AND seq > $2 ORDER BY seq LIMIT $3",
                &[&p.endpoint_id, &p.after_seq, &i64::from(p.limit)],
            )
            .map_err(db_unavailable)?;
        Ok(rows
            .iter()
            .map(|r| Pending {
                seq: r.get(0),
                subject: r.get(1),
                next_attempt_ms: r.get(2),
                lease_until_ms: r.get(3),
            })
            .collect())
    }

    fn lease(&mut self, c: &Claim<'_>, seqs: &[i64]) -> StoreResult<Vec<DeliveryRow>> {
        // The lease is tested again under each row's lock: of two instances claiming one row,
        // the second finds it leased and leaves it.
        let rows = self
            .client()?
            .query(
                &format!(
                    "UPDATE deliveries SET lease_owner = $2, lease_until_ms = $4
                     WHERE endpoint_id = $1 AND seq = ANY($5) AND status = 'pending'
                       AND (lease_until_ms IS NULL OR lease_until_ms < $3)
                     RETURNING {DELIVERY_COLUMNS}"
                ),
                &[
                    &c.endpoint_id,
                    &c.owner,
                    &c.now_ms,
                    &c.lease_until_ms,
                    &seqs,
                ],
            )
            .map_err(db_unavailable)?;
        Ok(rows.iter().map(delivery_row).collect())
    }

    fn events_by_seq(&mut self, seqs: &[i64]) -> StoreResult<Vec<EventRow>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .client()?
            .query(
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq = ANY($1)"),
                &[&seqs],
            )
            .map_err(db_unavailable)?;
        Ok(rows
            .iter()
            .map(|r| EventRow {
                seq: r.get(0),
                id: r.get(1),
                event_type: r.get(2),
                recorded_ms: r.get(3),
                app_key: r.get(4),
                request_id: r.get(5),
                subject: r.get(6),
                data: r.get(7),
            })
            .collect())
    }

    fn finish(&mut self, owner: &str, now_ms: i64, all: &[Finish<'_>]) -> StoreResult<Vec<bool>> {
        if all.is_empty() {
            return Ok(Vec::new());
        }
        // One statement for the round's results: a round trip each would cost more than them.
        let ids: Vec<&str> = all.iter().map(|f| f.endpoint_id).collect();
        let seqs: Vec<i64> = all.iter().map(|f| f.seq).collect();
        let statuses: Vec<&str> = all.iter().map(|f| f.status.as_str()).collect();
        let next: Vec<Option<i64>> = all.iter().map(|f| f.next_attempt_ms).collect();
        let rows = self
            .client()?
            .query(
                "UPDATE deliveries d SET status = u.status, attempts = d.attempts + 1,
                     next_attempt_ms = coalesce(u.next, d.next_attempt_ms),
                     lease_owner = NULL, lease_until_ms = NULL, updated_ms = $5
                 FROM unnest($1::TEXT[], $2::BIGINT[], $3::TEXT[], $4::BIGINT[])
                     AS u(endpoint_id, seq, status, next)
                 WHERE d.endpoint_id = u.endpoint_id AND d.seq = u.seq AND d.lease_owner = $6
                 RETURNING d.endpoint_id, d.seq",
                &[&ids, &seqs, &statuses, &next, &now_ms, &owner],
            )
            .map_err(db_unavailable)?;
        let done: std::collections::HashSet<(String, i64)> =
            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok(all
            .iter()
            .map(|f| done.contains(&(f.endpoint_id.to_string(), f.seq)))
            .collect())
    }

    fn append_attempts(&mut self, rows: &[AttemptRow]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let col = |f: fn(&AttemptRow) -> Option<i64>| rows.iter().map(f).collect::<Vec<_>>();
        let ids: Vec<&str> = rows.iter().map(|a| a.endpoint_id.as_str()).collect();
        let responses: Vec<Option<&str>> = rows.iter().map(|a| a.response.as_deref()).collect();
        let errors: Vec<Option<&str>> = rows.iter().map(|a| a.error.as_deref()).collect();
        self.client()?
            .execute(
                "INSERT INTO attempts (endpoint_id, seq, at_ms, status_code, latency_ms, response, error)
                 SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[],
                                      $5::BIGINT[], $6::TEXT[], $7::TEXT[])",
                &[
                    &ids,
                    &col(|a| Some(a.seq)),
                    &col(|a| Some(a.at_ms)),
                    &col(|a| a.status_code),
                    &col(|a| Some(a.latency_ms)),
                    &responses,
                    &errors,
                ],
            )
            .map_err(db_unavailable)?;
        Ok(())
    }

    fn reset_failures(&mut self, id: &str) -> StoreResult<()> {
        self.client()?
            .execute(
                "UPDATE endpoints SET failures_in_a_row = 0 WHERE id = $1 AND failures_in_a_row <> 0",
                &[&id],
            )
            .map_err(db_unavailable)?;
        Ok(())
    }

    fn add_failure(&mut self, id: &str, d: &Disabling<'_>) -> StoreResult<bool> {
        let (disable_after, reason, now_ms) = (d.after, d.reason, d.now_ms);
        let row = self
            .client()?
            .query_opt(
                "UPDATE endpoints SET failures_in_a_row = failures_in_a_row + 1,
                     enabled = enabled AND failures_in_a_row + 1 < $2,
                     disabled_reason = CASE WHEN enabled AND failures_in_a_row + 1 >= $2
                                            THEN $3 ELSE disabled_reason END,
                     updated_ms = $4
                 WHERE id = $1
                 RETURNING failures_in_a_row = $2",
                &[&id, &disable_after, &reason, &now_ms],
            )
            .map_err(db_unavailable)?;
        Ok(row.is_some_and(|r| r.get(0)))
    }

    fn disable_endpoint(&mut self, id: &str, reason: &str, now_ms: i64) -> StoreResult<()> {
        self.client()?
            .execute(
                "UPDATE endpoints SET enabled = false, disabled_reason = $2, updated_ms = $3
                 WHERE id = $1",
                &[&id, &reason, &now_ms],
            )
            .map_err(db_unavailable)?;
        Ok(())
    }

    fn deliveries(&mut self, q: &DeliveryPage<'_>) -> StoreResult<Vec<DeliveryRow>> {
        let (endpoint_id, status, limit) = (q.endpoint_id, q.status, q.limit);
        let before = q.before_seq.unwrap_or(i64::MAX);
        let rows = self
            .client()?
            .query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries
                     WHERE endpoint_id = $1 AND ($2::TEXT IS NULL OR status = $2) AND seq < $3
                     ORDER BY seq DESC LIMIT $4"
                ),
                &[&endpoint_id, &status, &before, &i64::from(limit)],
            )
            .map_err(db_unavailable)?;
        Ok(rows.iter().map(delivery_row).collect())
    }

    fn delivery_of(&mut self, endpoint: &str, event: &str) -> StoreResult<Option<DeliveryRow>> {
        let (endpoint_id, event_id) = (endpoint, event);
        let row = self
            .client()?
            .query_opt(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries
                     WHERE endpoint_id = $1 AND event_id = $2"
                ),
                &[&endpoint_id, &event_id],
            )
            .map_err(db_unavailable)?;
        Ok(row.as_ref().map(delivery_row))
    }

    fn attempts(&mut self, endpoint_id: &str, seq: i64) -> StoreResult<Vec<AttemptRow>> {
        let rows = self
            .client()?
            .query(
                "SELECT endpoint_id, seq, at_ms, status_code, latency_ms, response, error
                 FROM attempts WHERE endpoint_id = $1 AND seq = $2 ORDER BY id",
                &[&endpoint_id, &seq],
            )
            .map_err(db_unavailable)?;
        Ok(rows
            .iter()
            .map(|r| AttemptRow {
                endpoint_id: r.get(0),
                seq: r.get(1),
                at_ms: r.get(2),
                status_code: r.get(3),
                latency_ms: r.get(4),
                response: r.get(5),
                error: r.get(6),
            })
            .collect())
    }

    fn requeue(&mut self, r: &Requeue<'_>) -> StoreResult<u64> {
        let (endpoint_id, event_id) = (r.endpoint_id, r.event_id);
        let (since_ms, now_ms) = (r.since_ms, r.now_ms);
        self.client()?
            .execute(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_ms = $4,
                     lease_owner = NULL, lease_until_ms = NULL, updated_ms = $4
                 WHERE endpoint_id = $1
                   AND (CASE WHEN $2::TEXT IS NULL
                             THEN status = 'failed' AND created_ms >= coalesce($3::BIGINT, 0)
                             ELSE event_id = $2 END)",
                &[&endpoint_id, &event_id, &since_ms, &now_ms],
            )
            .map_err(db_unavailable)
    }

    fn backlog(&mut self, endpoint_id: &str) -> StoreResult<Backlog> {
        let row = self
            .client()?
            .query_one(
                "SELECT count(*), min(created_ms) FROM deliveries
                 WHERE endpoint_id = $1 AND status = 'pending'",
                &[&endpoint_id],
            )
            .map_err(db_unavailable)?;
        Ok(Backlog {
            pending: row.get(0),
            oldest_pending_ms: row.get(1),
        })
    }

    fn delivery_floor(&mut self) -> StoreResult<Option<i64>> {
        let row = self
            .client()?
            .query_one(
                "SELECT min(floor) FROM (
                     SELECT min(cursor_seq) + 1 AS floor FROM endpoints
                     UNION ALL SELECT min(seq) FROM deliveries WHERE status <> 'delivered'
                     UNION ALL SELECT seq + 1 FROM nats_position WHERE lease_owner IS NOT NULL) f",
                &[],
            )
            .map_err(db_unavailable)?;
        Ok(row.get(0))
    }

    fn nats_claim(&mut self, owner: &str, now_ms: i64, until_ms: i64) -> StoreResult<Option<i64>> {
        let lease_until_ms = until_ms;
        let row = self
            .client()?
            .query_opt(
                "UPDATE nats_position SET lease_owner = $1, lease_until_ms = $3
                 WHERE lease_owner IS NULL OR lease_owner = $1 OR lease_until_ms < $2
                 RETURNING seq",
                &[&owner, &now_ms, &lease_until_ms],
            )
            .map_err(db_unavailable)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn nats_advance(&mut self, owner: &str, seq: i64) -> StoreResult<bool> {
        let n = self
            .client()?
            .execute(
                "UPDATE nats_position SET seq = greatest(seq, $2) WHERE lease_owner = $1",
                &[&owner, &seq],
            )
            .map_err(db_unavailable)?;
        Ok(n > 0)
    }
}
