//! The report's counts, flags, stuck processes and console sessions, in SQLite's SQL.

use rusqlite::{params, Connection, OptionalExtension};

use crate::reports::{
    Cursor, FlaggedRow, MinuteCount, ReportRows, Resolved, SessionRow, StuckProcess, TailRow,
};
use crate::StoreResult;
use loanwire_top::time::format_ms;

impl ReportRows for Connection {
    fn minutes_upto(&mut self) -> StoreResult<i64> {
        Ok(self
            .prepare_cached("SELECT id FROM call_minutes_upto WHERE singleton = 1")?
            .query_row([], |r| r.get(0))?)
    }

    fn set_minutes_upto(&mut self, id: i64) -> StoreResult<()> {
        self.prepare_cached("UPDATE call_minutes_upto SET id = ?1 WHERE singleton = 1")?
            .execute(params![id])?;
        Ok(())
    }

    fn inbox_tail(&mut self, after_id: i64, limit: i64) -> StoreResult<Vec<TailRow>> {
        let mut stmt = self.prepare_cached(
            "SELECT id, received_ms, app_key, outcome, error_code, biz_code FROM inbox
             WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after_id, limit], |r| {
            Ok(TailRow {
                id: r.get(0)?,
                received_ms: r.get(1)?,
                app_key: r.get(2)?,
                outcome: r.get(3)?,
                error_code: r.get(4)?,
                biz_code: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn add_minutes(&mut self, counts: &[MinuteCount]) -> StoreResult<()> {
        let mut stmt = self.prepare_cached(
            "INSERT INTO call_minutes (minute_ms, app_key, outcome, code, n, first_id, last_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (minute_ms, app_key, outcome, code) DO UPDATE SET
                n = n + excluded.n,
                first_id = min(first_id, excluded.first_id),
                last_id = max(last_id, excluded.last_id)",
        )?;
        for c in counts {
            stmt.execute(params![
                c.minute_ms,
                c.app_key,
                c.outcome,
                c.code,
                c.n,
                c.first_id,
                c.last_id
            ])?;
        }
        Ok(())
    }

    fn prune_minutes(&mut self, before_ms: i64) -> StoreResult<u64> {
        let n = self
            .prepare_cached("DELETE FROM call_minutes WHERE minute_ms < ?1")?
            .execute(params![before_ms])?;
        Ok(n as u64)
    }

    fn minutes(&mut self, from_ms: i64, to_ms: i64) -> StoreResult<Vec<MinuteCount>> {
        let mut stmt = self.prepare_cached(
            "SELECT minute_ms, app_key, outcome, code, n, first_id, last_id FROM call_minutes
             WHERE minute_ms >= ?1 AND minute_ms < ?2 ORDER BY minute_ms",
        )?;
        let rows = stmt.query_map(params![from_ms, to_ms], |r| {
            Ok(MinuteCount {
                minute_ms: r.get(0)?,
                app_key: r.get(1)?,
                outcome: r.get(2)?,
                code: r.get(3)?,
                n: r.get(4)?,
                first_id: r.get(5)?,
                last_id: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn flagged_loans(&mut self, before: Cursor, limit: i64) -> StoreResult<Vec<FlaggedRow>> {
        let (before_ms, before_no) = before.unzip();
        let mut stmt = self.prepare_cached(
            "SELECT loan_apply_no, status, app_key, updated_ms FROM loans
             WHERE needs_reconciliation = 1
               AND (?1 IS NULL OR updated_ms < ?1 OR (updated_ms = ?1 AND loan_apply_no < ?2))
             ORDER BY updated_ms DESC, loan_apply_no DESC LIMIT ?3",
        )?;
        let mut found = stmt
            .query_map(params![before_ms, before_no, limit], |r| {
                Ok(FlaggedRow {
                    loan_apply_no: r.get(0)?,
                    status: r.get(1)?,
                    app_key: r.get(2)?,
                    updated_ms: r.get(3)?,
                    flags: Vec::new(),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut flags = self.prepare_cached(
            "SELECT flag FROM loan_flags WHERE loan_apply_no = ?1 AND resolved_ms IS NULL
             ORDER BY id",
        )?;
        for row in &mut found {
            row.flags = flags
                .query_map(params![row.loan_apply_no], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
        }
        Ok(found)
    }

    fn stuck_processes(&mut self, before_ms: i64, limit: i64) -> StoreResult<Vec<StuckProcess>> {
        let mut stmt = self.prepare_cached(
            "SELECT channel_id, process_type, process_no, status, app_key, updated_ms
             FROM processes
             WHERE status = 'IN_PROCESSING' AND updated_ms < ?1
             ORDER BY updated_ms LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![before_ms, limit], |r| {
            let updated_ms: i64 = r.get(5)?;
            Ok(StuckProcess {
                channel_id: r.get(0)?,
                process_type: r.get(1)?,
                process_no: r.get(2)?,
                status: r.get(3)?,
                app_key: r.get(4)?,
                since: format_ms(updated_ms),
                updated_ms,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn resolve_loan(&mut self, no: &str, at_ms: i64) -> StoreResult<Resolved> {
        let flagged: Option<bool> = self
            .prepare_cached("SELECT needs_reconciliation FROM loans WHERE loan_apply_no = ?1")?
            .query_row(params![no], |r| r.get(0))
            .optional()?;
        match flagged {
            None => return Ok(Resolved::NoLoan),
            Some(false) => return Ok(Resolved::NotFlagged),
            Some(true) => {}
        }
        self.prepare_cached("UPDATE loans SET needs_reconciliation = 0 WHERE loan_apply_no = ?1")?
            .execute(params![no])?;
        let mut stmt = self.prepare_cached(
            "UPDATE loan_flags SET resolved_ms = ?2
             WHERE loan_apply_no = ?1 AND resolved_ms IS NULL RETURNING flag",
        )?;
        let flags = stmt
            .query_map(params![no, at_ms], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(Resolved::Flags(flags))
    }

    fn insert_session(&mut self, s: &SessionRow) -> StoreResult<()> {
        self.prepare_cached(
            "INSERT INTO console_sessions (id_hash, token_id, csrf, created_ms, expires_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            s.id_hash,
            s.token_id,
            s.csrf,
            s.created_ms,
            s.expires_ms
        ])?;
        Ok(())
    }

    fn session(&mut self, id_hash: &str) -> StoreResult<Option<SessionRow>> {
        Ok(self
            .prepare_cached(
                "SELECT id_hash, token_id, csrf, created_ms, expires_ms FROM console_sessions
                 WHERE id_hash = ?1",
            )?
            .query_row(params![id_hash], |r| {
                Ok(SessionRow {
                    id_hash: r.get(0)?,
                    token_id: r.get(1)?,
                    csrf: r.get(2)?,
                    created_ms: r.get(3)?,
                    expires_ms: r.get(4)?,
                })
            })
            .optional()?)
    }

    fn delete_session(&mut self, id_hash: &str) -> StoreResult<()> {
        self.prepare_cached("DELETE FROM console_sessions WHERE id_hash = ?1")?
            .execute(params![id_hash])?;
        Ok(())
    }

    fn prune_sessions(&mut self, now_ms: i64) -> StoreResult<u64> {
        let n = self
            .prepare_cached("DELETE FROM console_sessions WHERE expires_ms <= ?1")?
            .execute(params![now_ms])?;
        Ok(n as u64)
    }
}
