//! The unit-of-work operations on the writer's connection.

use loanwire_domain::idempotency::IdempotencyRecord;
use loanwire_domain::loan::{Flag, LoanState};
use loanwire_domain::process::{ProcessKey, ProcessState};
use loanwire_top::TopDateTime;
use rusqlite::{params, Connection, OptionalExtension};

use crate::{InboxEntry, StoreError, Tx};

pub struct SqliteTx<'c> {
    pub conn: &'c Connection,
}

fn time(ms: Option<i64>) -> Option<TopDateTime> {
    ms.and_then(TopDateTime::from_epoch_millis)
}

fn json_list(v: &Option<Vec<String>>) -> Option<String> {
    v.as_ref()
        .map(|l| serde_json::to_string(l).expect("strings serialize"))
}

fn bad_row(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("unreadable row: {e}"))
}

impl Tx for SqliteTx<'_> {
    fn process(&mut self, key: &ProcessKey) -> Result<Option<ProcessState>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT user, user_id, status, submit_ms, complete_ms, fund_products, app_key
             FROM processes WHERE channel_id = ?1 AND process_type = ?2 AND process_no = ?3",
        )?;
        let row = stmt
            .query_row(
                params![key.channel_id, key.process_type, key.process_no],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, String>(6)?,
                    ))
                },
            )
            .optional()?;
        let Some((user, user_id, status, submit, complete, funds, app_key)) = row else {
            return Ok(None);
        };
        let fund_products = funds
            .map(|f| serde_json::from_str(&f))
            .transpose()
            .map_err(bad_row)?;
        Ok(Some(ProcessState {
            key: key.clone(),
            user,
            user_id,
            status,
            submit_time: time(submit),
            complete_time: time(complete),
            fund_products,
            app_key,
        }))
    }

    fn put_process(&mut self, s: &ProcessState, now_ms: i64) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO processes (channel_id, process_type, process_no, user, user_id, status,
                 submit_ms, complete_ms, fund_products, app_key, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)
             ON CONFLICT (channel_id, process_type, process_no) DO UPDATE SET
                 status = excluded.status, submit_ms = excluded.submit_ms,
                 complete_ms = excluded.complete_ms, fund_products = excluded.fund_products,
                 updated_ms = excluded.updated_ms",
        )?;
        stmt.execute(params![
            s.key.channel_id,
            s.key.process_type,
            s.key.process_no,
            s.user,
            s.user_id,
            s.status,
            s.submit_time.map(|t| t.epoch_millis()),
            s.complete_time.map(|t| t.epoch_millis()),
            json_list(&s.fund_products),
            s.app_key,
            now_ms,
        ])?;
        Ok(())
    }

    fn loan(&mut self, loan_apply_no: &str) -> Result<Option<LoanState>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT status, app_key, customer_id, institution_loan_no, last_change_ms, needs_reconciliation
             FROM loans WHERE loan_apply_no = ?1",
        )?;
        let row = stmt
            .query_row(params![loan_apply_no], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, bool>(5)?,
                ))
            })
            .optional()?;
        let Some((status, app_key, customer_id, institution_loan_no, last, flagged)) = row else {
            return Ok(None);
        };
        Ok(Some(LoanState {
            loan_apply_no: loan_apply_no.to_string(),
            status,
            app_key,
            customer_id,
            institution_loan_no,
            last_change_time: time(Some(last)).ok_or_else(|| bad_row("last_change_ms"))?,
            needs_reconciliation: flagged,
        }))
    }

    fn put_loan(&mut self, s: &LoanState, flags: &[Flag], now_ms: i64) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO loans (loan_apply_no, status, app_key, customer_id, institution_loan_no,
                 last_change_ms, needs_reconciliation, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
             ON CONFLICT (loan_apply_no) DO UPDATE SET
                 status = excluded.status, customer_id = excluded.customer_id,
                 institution_loan_no = excluded.institution_loan_no,
                 last_change_ms = excluded.last_change_ms,
                 needs_reconciliation = excluded.needs_reconciliation,
                 updated_ms = excluded.updated_ms",
        )?;
        stmt.execute(params![
            s.loan_apply_no,
            s.status,
            s.app_key,
            s.customer_id,
            s.institution_loan_no,
            s.last_change_time.epoch_millis(),
            s.needs_reconciliation,
            now_ms,
        ])?;
        if !flags.is_empty() {
            let mut ins = self
                .conn
                .prepare_cached("INSERT INTO loan_flags (loan_apply_no, flag) VALUES (?1, ?2)")?;
            for f in flags {
                let json = serde_json::to_string(f).expect("flags serialize");
                ins.execute(params![s.loan_apply_no, json])?;
            }
        }
        Ok(())
    }

    fn idempotency(
        &mut self,
        app_key: &str,
        request_id: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT fingerprint, response FROM idempotency WHERE app_key = ?1 AND request_id = ?2",
        )?;
        let row = stmt
            .query_row(params![app_key, request_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .optional()?;
        row.map(|(fingerprint, response)| {
            Ok(IdempotencyRecord {
                fingerprint,
                response: serde_json::from_str(&response).map_err(bad_row)?,
            })
        })
        .transpose()
    }

    fn put_idempotency(
        &mut self,
        app_key: &str,
        request_id: &str,
        record: &IdempotencyRecord,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO idempotency (app_key, request_id, fingerprint, response, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let response = serde_json::to_string(&record.response).expect("JSON serializes");
        stmt.execute(params![
            app_key,
            request_id,
            record.fingerprint,
            response,
            now_ms
        ])?;
        Ok(())
    }

    fn append_inbox(&mut self, e: &InboxEntry) -> Result<i64, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO inbox (call_id, received_ms, app_key, method, params, outcome, error_code,
                 biz_code, subject, idempotency_key, detail, response)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        stmt.execute(params![
            e.call_id,
            e.received_ms,
            e.app_key,
            e.method,
            e.params,
            e.outcome.as_str(),
            e.error_code,
            e.biz_code,
            e.subject,
            e.idempotency_key,
            e.detail,
            e.response,
        ])?;
        Ok(self.conn.last_insert_rowid())
    }
}
