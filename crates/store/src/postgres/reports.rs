//! The report's counts, flags, stuck processes and console sessions, in PostgreSQL's SQL.

use super::conn::{db_unavailable, Conn};
use crate::reports::{
    Cursor, FlaggedRow, MinuteCount, ReportRows, Resolved, SessionRow, StuckProcess, TailRow,
};
use crate::StoreResult;
use loanwire_top::time::format_ms;

/// Inbox ids are taken as rows are inserted, not as they commit: a row is counted once no
/// call that could still commit below it is plausibly open (a call's transaction takes
/// milliseconds; a statement times out long before this).
const SETTLE_MS: i64 = 10_000;

impl ReportRows for Conn {
    fn minutes_upto(&mut self) -> StoreResult<i64> {
        let row = self
            .client()?
            .query_one("SELECT id FROM call_minutes_upto WHERE singleton = 1", &[])
            .map_err(db_unavailable)?;
        Ok(row.get(0))
    }

    fn set_minutes_upto(&mut self, id: i64) -> StoreResult<()> {
        self.client()?
            .execute(
                "UPDATE call_minutes_upto SET id = $1 WHERE singleton = 1",
                &[&id],
            )
            .map_err(db_unavailable)?;
        Ok(())
    }

    fn settle_ms(&self) -> i64 {
        SETTLE_MS
    }

    fn inbox_tail(&mut self, after_id: i64, limit: i64) -> StoreResult<Vec<TailRow>> {
        let rows = self
            .client()?
            .query(
                "SELECT id, received_ms, app_key, outcome, error_code::BIGINT, biz_code FROM inbox
                 WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after_id, &limit],
            )
            .map_err(db_unavailable)?;
        Ok(rows
            .iter()
            .map(|r| TailRow {
                id: r.get(0),
                received_ms: r.get(1),
                app_key: r.get(2),
                outcome: r.get(3),
                error_code: r.get(4),
                biz_code: r.get(5),
            })
            .collect())
    }

    fn add_minutes(&mut self, counts: &[MinuteCount]) -> StoreResult<()> {
        let client = self.client()?;
        let stmt = client
            .prepare(
                "INSERT INTO call_minutes AS m (minute_ms, app_key, outcome, code, n, first_id, last_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (minute_ms, app_key, outcome, code) DO UPDATE SET
                    n = m.n + excluded.n,
                    first_id = least(m.first_id, excluded.first_id),
                    last_id = greatest(m.last_id, excluded.last_id)",
            )
            .map_err(db_unavailable)?;
        for c in counts {
            client
                .execute(
                    &stmt,
                    &[
                        &c.minute_ms,
                        &c.app_key,
                        &c.outcome,
                        &c.code,
                        &c.n,
                        &c.first_id,
                        &c.last_id,
                    ],
                )
                .map_err(db_unavailable)?;
        }
        Ok(())
    }

    fn prune_minutes(&mut self, before_ms: i64) -> StoreResult<u64> {
        self.client()?
            .execute(
                "DELETE FROM call_minutes WHERE minute_ms < $1",
                &[&before_ms],
            )
            .map_err(db_unavailable)
    }

    fn minutes(&mut self, from_ms: i64, to_ms: i64) -> StoreResult<Vec<MinuteCount>> {
        let rows = self
            .client()?
            .query(
                "SELECT minute_ms, app_key, outcome, code, n, first_id, last_id FROM call_minutes
                 WHERE minute_ms >= $1 AND minute_ms < $2 ORDER BY minute_ms",
                &[&from_ms, &to_ms],
            )
            .map_err(db_unavailable)?;
        Ok(rows
            .iter()
            .map(|r| MinuteCount {
                minute_ms: r.get(0),
                app_key: r.get(1),
                outcome: r.get(2),
                code: r.get(3),
                n: r.get(4),
                first_id: r.get(5),
                last_id: r.get(6),
            })
            .collect())
    }

    fn flagged_loans(&mut self, before: Cursor, limit: i64) -> StoreResult<Vec<FlaggedRow>> {
        let (before_ms, before_no) = before.unzip();
        let client = self.client()?;
        let rows = client
            .query(
                "SELECT loan_apply_no, status, app_key, updated_ms FROM loans
                 WHERE needs_reconciliation
                   AND ($1::BIGINT IS NULL OR (updated_ms, loan_apply_no) < ($1, $2::TEXT))
                 ORDER BY updated_ms DESC, loan_apply_no DESC LIMIT $3",
                &[&before_ms, &before_no, &limit],
            )
            .map_err(db_unavailable)?;
        let mut found: Vec<FlaggedRow> = rows
            .iter()
            .map(|r| FlaggedRow {
                loan_apply_no: r.get(0),
                status: r.get(1),
                app_key: r.get(2),
                updated_ms: r.get(3),
                flags: Vec::new(),
            })
            .collect();
        // The page's open flags in one round trip, not one per loan note.
        let numbers: Vec<&str> = found.iter().map(|f| f.loan_apply_no.as_str()).collect();
        let flags = client
            .query(
                "SELECT loan_apply_no, flag FROM loan_flags
                 WHERE loan_apply_no = ANY($1) AND resolved_ms IS NULL ORDER BY id",
                &[&numbers],
            )
            .map_err(db_unavailable)?;
        let mut by_loan: std::collections::HashMap<String, Vec<String>> =
            std::collections::HashMap::new();
        for f in flags {
            by_loan.entry(f.get(0)).or_default().push(f.get(1));
        }
        for row in &mut found {
            row.flags = by_loan.remove(&row.loan_apply_no).unwrap_or_default();
        }
        Ok(found)
    }

    fn stuck_processes(&mut self, before_ms: i64, limit: i64) -> StoreResult<Vec<StuckProcess>> {
        let rows = self
            .client()?
            .query(
                "SELECT channel_id, process_type, process_no, status, app_key, updated_ms
                 FROM processes
                 WHERE status = 'IN_PROCESSING' AND updated_ms < $1
                 ORDER BY updated_ms LIMIT $2",
                &[&before_ms, &limit],
            )
            .map_err(db_unavailable)?;
        Ok(rows
            .iter()
            .map(|r| {
                let updated_ms: i64 = r.get(5);
                StuckProcess {
                    channel_id: r.get(0),
                    process_type: r.get(1),
                    process_no: r.get(2),
                    status: r.get(3),
                    app_key: r.get(4),
                    since: format_ms(updated_ms),
                    updated_ms,
                }
            })
            .collect())
    }

    fn resolve_loan(&mut self, no: &str, at_ms: i64) -> StoreResult<Resolved> {
        let client = self.client()?;
        // The row lock keeps a call's change of the same loan note out until this commits.
        let flagged: Option<bool> = client
            .query_opt(
                "SELECT needs_reconciliation FROM loans WHERE loan_apply_no = $1 FOR UPDATE",
                &[&no],
            )
            .map_err(db_unavailable)?
            .map(|r| r.get(0));
        match flagged {
            None => return Ok(Resolved::NoLoan),
            Some(false) => return Ok(Resolved::NotFlagged),
            Some(true) => {}
        }
        client
            .execute(
                "UPDATE loans SET needs_reconciliation = FALSE WHERE loan_apply_no = $1",
                &[&no],
            )
            .map_err(db_unavailable)?;
        let flags = client
            .query(
                "UPDATE loan_flags SET resolved_ms = $2
                 WHERE loan_apply_no = $1 AND resolved_ms IS NULL RETURNING flag",
                &[&no, &at_ms],
            )
            .map_err(db_unavailable)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(Resolved::Flags(flags))
    }

    fn insert_session(&mut self, s: &SessionRow) -> StoreResult<()> {
        self.client()?
            .execute(
                "INSERT INTO console_sessions (id_hash, token_id, csrf, created_ms, expires_ms)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &s.id_hash,
                    &s.token_id,
                    &s.csrf,
                    &s.created_ms,
                    &s.expires_ms,
                ],
            )
            .map_err(db_unavailable)?;
        Ok(())
    }

    fn session(&mut self, id_hash: &str) -> StoreResult<Option<SessionRow>> {
        let row = self
            .client()?
            .query_opt(
                "SELECT id_hash, token_id, csrf, created_ms, expires_ms FROM console_sessions
                 WHERE id_hash = $1",
                &[&id_hash],
            )
            .map_err(db_unavailable)?;
        Ok(row.map(|r| SessionRow {
            id_hash: r.get(0),
            token_id: r.get(1),
            csrf: r.get(2),
            created_ms: r.get(3),
            expires_ms: r.get(4),
        }))
    }

    fn delete_session(&mut self, id_hash: &str) -> StoreResult<()> {
        self.client()?
            .execute(
                "DELETE FROM console_sessions WHERE id_hash = $1",
                &[&id_hash],
            )
            .map_err(db_unavailable)?;
        Ok(())
    }

    fn prune_sessions(&mut self, now_ms: i64) -> StoreResult<u64> {
        self.client()?
            .execute(
                "DELETE FROM console_sessions WHERE expires_ms <= $1",
                &[&now_ms],
            )
            .map_err(db_unavailable)
    }
}
