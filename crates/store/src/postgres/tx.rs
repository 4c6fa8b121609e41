//! The unit-of-work operations inside a writer's transaction.

use std::collections::{HashMap, HashSet};

use loanwire_domain::idempotency::IdempotencyRecord;
use loanwire_domain::loan::{Flag, LoanState};
use loanwire_domain::process::{ProcessKey, ProcessState};
use loanwire_top::TopDateTime;
use postgres::{Statement, Transaction};

use super::{classify, statement, unavailable};
use crate::{InboxEntry, StoreError, Tx};

pub struct PgTx<'a, 't> {
    txn: &'a mut Transaction<'t>,
    statements: &'a mut HashMap<&'static str, Statement>,
    /// Rows this unit read as absent: written with a plain INSERT, so that a concurrent creator
    /// makes this unit fail and run again instead of being overwritten.
    absent_processes: HashSet<ProcessKey>,
    absent_loans: HashSet<String>,
}

impl<'a, 't> PgTx<'a, 't> {
    pub fn new(
        txn: &'a mut Transaction<'t>,
        statements: &'a mut HashMap<&'static str, Statement>,
    ) -> Self {
        PgTx {
            txn,
            statements,
            absent_processes: HashSet::new(),
            absent_loans: HashSet::new(),
        }
    }

    fn stmt(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        statement(self.statements, self.txn, sql)
    }
}

fn time(ms: Option<i64>) -> Option<TopDateTime> {
    ms.and_then(TopDateTime::from_epoch_millis)
}

fn json_list(v: &Option<Vec<String>>) -> Option<String> {
    v.as_ref()
        .map(|l| serde_json::to_string(l).expect("strings serialize"))
}

impl Tx for PgTx<'_, '_> {
    fn process(&mut self, key: &ProcessKey) -> Result<Option<ProcessState>, StoreError> {
        let s = self.stmt(
            "SELECT \"user\", user_id, status, submit_ms, complete_ms, fund_products, app_key
             FROM processes WHERE channel_id = $1 AND process_type = $2 AND process_no = $3
             FOR UPDATE",
        )?;
        let row = self
            .txn
            .query_opt(&s, &[&key.channel_id, &key.process_type, &key.process_no])
            .map_err(classify)?;
        let Some(row) = row else {
            self.absent_processes.insert(key.clone());
            return Ok(None);
        };
        let funds: Option<String> = row.get(5);
        Ok(Some(ProcessState {
            key: key.clone(),
            user: row.get(0),
            user_id: row.get(1),
            status: row.get(2),
            submit_time: time(row.get(3)),
            complete_time: time(row.get(4)),
            fund_products: funds
                .map(|f| serde_json::from_str(&f))
                .transpose()
                .map_err(unavailable)?,
            app_key: row.get(6),
        }))
    }

    fn put_process(&mut self, p: &ProcessState, now_ms: i64) -> Result<(), StoreError> {
        let submit = p.submit_time.map(|t| t.epoch_millis());
        let complete = p.complete_time.map(|t| t.epoch_millis());
        let funds = json_list(&p.fund_products);
        if self.absent_processes.contains(&p.key) {
            let s = self.stmt(
                "INSERT INTO processes (channel_id, process_type, process_no, \"user\", user_id, status,
                     submit_ms, complete_ms, fund_products, app_key, created_ms, updated_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
            )?;
            self.txn
                .execute(
                    &s,
                    &[
                        &p.key.channel_id,
                        &p.key.process_type,
                        &p.key.process_no,
                        &p.user,
                        &p.user_id,
                        &p.status,
                        &submit,
                        &complete,
                        &funds,
                        &p.app_key,
                        &now_ms,
                    ],
                )
                .map_err(classify)?;
        } else {
            let s = self.stmt(
                "UPDATE processes SET status = $4, submit_ms = $5, complete_ms = $6, fund_products = $7, updated_ms = $8
                 WHERE channel_id = $1 AND process_type = $2 AND process_no = $3",
            )?;
            self.txn
                .execute(
                    &s,
                    &[
                        &p.key.channel_id,
                        &p.key.process_type,
                        &p.key.process_no,
                        &p.status,
                        &submit,
                        &complete,
                        &funds,
                        &now_ms,
                    ],
                )
                .map_err(classify)?;
        }
        Ok(())
    }

    fn loan(&mut self, loan_apply_no: &str) -> Result<Option<LoanState>, StoreError> {
        let s = self.stmt(
            "SELECT status, app_key, customer_id, institution_loan_no, last_change_ms, needs_reconciliation
             FROM loans WHERE loan_apply_no = $1 FOR UPDATE",
        )?;
        let Some(row) = self
            .txn
            .query_opt(&s, &[&loan_apply_no])
            .map_err(classify)?
        else {
            self.absent_loans.insert(loan_apply_no.to_string());
            return Ok(None);
        };
        Ok(Some(LoanState {
            loan_apply_no: loan_apply_no.to_string(),
            status: row.get(0),
            app_key: row.get(1),
            customer_id: row.get(2),
            institution_loan_no: row.get(3),
            last_change_time: time(row.get(4))
                .ok_or_else(|| unavailable("unreadable last_change_ms"))?,
            needs_reconciliation: row.get(5),
        }))
    }

    fn put_loan(&mut self, l: &LoanState, flags: &[Flag], now_ms: i64) -> Result<(), StoreError> {
        let last = l.last_change_time.epoch_millis();
        if self.absent_loans.contains(&l.loan_apply_no) {
            let s = self.stmt(
                "INSERT INTO loans (loan_apply_no, status, app_key, customer_id, institution_loan_no,
                     last_change_ms, needs_reconciliation, created_ms, updated_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            )?;
            self.txn
                .execute(
                    &s,
                    &[
                        &l.loan_apply_no,
                        &l.status,
                        &l.app_key,
                        &l.customer_id,
                        &l.institution_loan_no,
                        &last,
                        &l.needs_reconciliation,
                        &now_ms,
                    ],
                )
                .map_err(classify)?;
        } else {
            let s = self.stmt(
                "UPDATE loans SET status = $2, customer_id = $3, institution_loan_no = $4, last_change_ms = $5,
                     needs_reconciliation = $6, updated_ms = $7
                 WHERE loan_apply_no = $1",
            )?;
            self.txn
                .execute(
                    &s,
                    &[
                        &l.loan_apply_no,
                        &l.status,
                        &l.customer_id,
                        &l.institution_loan_no,
                        &last,
                        &l.needs_reconciliation,
                        &now_ms,
                    ],
                )
                .map_err(classify)?;
        }
        if !flags.is_empty() {
            let s = self.stmt("INSERT INTO loan_flags (loan_apply_no, flag) VALUES ($1, $2)")?;
            for f in flags {
                let json = serde_json::to_string(f).expect("flags serialize");
                self.txn
                    .execute(&s, &[&l.loan_apply_no, &json])
                    .map_err(classify)?;
            }
        }
        Ok(())
    }

    fn idempotency(
        &mut self,
        app_key: &str,
        request_id: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let s = self.stmt(
            "SELECT fingerprint, response FROM idempotency WHERE app_key = $1 AND request_id = $2",
        )?;
        let Some(row) = self
            .txn
            .query_opt(&s, &[&app_key, &request_id])
            .map_err(classify)?
        else {
            return Ok(None);
        };
        let response: String = row.get(1);
        Ok(Some(IdempotencyRecord {
            fingerprint: row.get(0),
            response: serde_json::from_str(&response).map_err(unavailable)?,
        }))
    }

    fn put_idempotency(
        &mut self,
        app_key: &str,
        request_id: &str,
        record: &IdempotencyRecord,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let s = self.stmt(
            "INSERT INTO idempotency (app_key, request_id, fingerprint, response, created_ms) VALUES ($1, $2, $3, $4, $5)",
        )?;
        let response = serde_json::to_string(&record.response).expect("JSON serializes");
        self.txn
            .execute(
                &s,
                &[
                    &app_key,
                    &request_id,
                    &record.fingerprint,
                    &response,
                    &now_ms,
                ],
            )
            .map_err(classify)?;
        Ok(())
    }

    fn append_inbox(&mut self, e: &InboxEntry) -> Result<i64, StoreError> {
        let s = self.stmt(
            "INSERT INTO inbox (call_id, received_ms, app_key, method, params, outcome, error_code,
                 biz_code, subject, idempotency_key, detail, response)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        )?;
        let error_code = e.error_code.map(|c| c as i32);
        let row = self
            .txn
            .query_one(
                &s,
                &[
                    &e.call_id,
                    &e.received_ms,
                    &e.app_key,
                    &e.method,
                    &e.params,
                    &e.outcome.as_str(),
                    &error_code,
                    &e.biz_code,
                    &e.subject,
                    &e.idempotency_key,
                    &e.detail,
                    &e.response,
                ],
            )
            .map_err(classify)?;
        Ok(row.get(0))
    }
}
