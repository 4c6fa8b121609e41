//! The rows a batch's units named before they ran (`Reads`), read — and the processes and loan
//! notes locked `FOR UPDATE`, in key order, so that writers lock in one order — in one statement
//! per table before the first unit runs; the units' reads of them are answered from here
//! instead of one round trip each. Each statement looks its keys up one by one (a `LATERAL`
//! subquery with `LIMIT 1`, which the planner cannot turn into a join): a join's plan, made
//! while a table looks empty, would scan the whole table once it is not.
//!
//! What is kept is what the transaction sees: the rows as read, then as the batch's own units
//! wrote them (`wrote_*`), so a unit sees the writes of the units before it whether or not they
//! have been sent yet.

use std::collections::{HashMap, HashSet};

use loanwire_domain::process::ProcessKey;
use postgres::Transaction;

use super::conn::{classify, statement, Statements};
use super::tx::{loan_row, process_row};
use crate::rows::{IdempotencyRow, LoanRow, ProcessRow};
use crate::{Reads, StoreError};

/// The rows read ahead: `None` for one that does not exist.
#[derive(Default)]
pub(super) struct ReadAhead {
    processes: HashMap<ProcessKey, Option<ProcessRow>>,
    loans: HashMap<String, Option<LoanRow>>,
    idempotency: HashMap<(String, String), Option<IdempotencyRow>>,
}

impl ReadAhead {
    /// Reads what `reads` name, in `txn`.
    pub fn read<'r>(
        txn: &mut Transaction<'_>,
        statements: &mut Statements,
        reads: impl Iterator<Item = &'r Reads>,
    ) -> Result<ReadAhead, StoreError> {
        let (mut processes, mut loans, mut idempotency) =
            (HashSet::new(), HashSet::new(), HashSet::new());
        for r in reads {
            processes.extend(r.processes.iter().cloned());
            loans.extend(r.loans.iter().cloned());
            idempotency.extend(r.idempotency.iter().cloned());
        }
        let mut ahead = ReadAhead::default();
        if !processes.is_empty() {
            let mut keys: Vec<&ProcessKey> = processes.iter().collect();
            keys.sort_by(|a, b| {
                (&a.channel_id, &a.process_type, &a.process_no).cmp(&(
                    &b.channel_id,
                    &b.process_type,
                    &b.process_no,
                ))
            });
            let s = statement(
                statements,
                txn,
                "SELECT p.\"user\", p.user_id, p.status, p.submit_ms, p.complete_ms,
                     p.fund_products, p.app_key, p.channel_id, p.process_type, p.process_no
                 FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(c, t, n, i)
                 CROSS JOIN LATERAL (
                     SELECT * FROM processes
                     WHERE channel_id = k.c AND process_type = k.t AND process_no = k.n
                     LIMIT 1 FOR UPDATE) AS p
                 ORDER BY k.i",
            )?;
            let channels: Vec<&str> = keys.iter().map(|k| k.channel_id.as_str()).collect();
            let types: Vec<&str> = keys.iter().map(|k| k.process_type.as_str()).collect();
            let nos: Vec<&str> = keys.iter().map(|k| k.process_no.as_str()).collect();
            let rows = txn
                .query(&s, &[&channels, &types, &nos])
                .map_err(classify)?;
            ahead.processes = processes.iter().map(|k| (k.clone(), None)).collect();
            for r in &rows {
                let key = ProcessKey {
                    channel_id: r.get(7),
                    process_type: r.get(8),
                    process_no: r.get(9),
                };
                let row = process_row(&key, r);
                ahead.processes.insert(key, Some(row));
            }
        }
        if !loans.is_empty() {
            let mut nos: Vec<&str> = loans.iter().map(String::as_str).collect();
            nos.sort_unstable();
            let s = statement(
                statements,
                txn,
                "SELECT l.status, l.app_key, l.customer_id, l.institution_loan_no,
                     l.last_change_ms, l.needs_reconciliation, l.loan_apply_no
                 FROM unnest($1::text[]) WITH ORDINALITY AS k(no, i)
                 CROSS JOIN LATERAL (
                     SELECT * FROM loans WHERE loan_apply_no = k.no LIMIT 1 FOR UPDATE) AS l
                 ORDER BY k.i",
            )?;
            let rows = txn.query(&s, &[&nos]).map_err(classify)?;
            ahead.loans = loans.iter().map(|no| (no.clone(), None)).collect();
            for r in &rows {
                let no: String = r.get(6);
                let row = loan_row(&no, r);
                ahead.loans.insert(no, Some(row));
            }
        }
        if !idempotency.is_empty() {
            let apps: Vec<&str> = idempotency.iter().map(|(a, _)| a.as_str()).collect();
            let ids: Vec<&str> = idempotency.iter().map(|(_, i)| i.as_str()).collect();
            let s = statement(
                statements,
                txn,
                "SELECT r.app_key, r.request_id, r.fingerprint, r.response
                 FROM unnest($1::text[], $2::text[]) AS k(a, i)
                 CROSS JOIN LATERAL (
                     SELECT * FROM idempotency WHERE app_key = k.a AND request_id = k.i
                     LIMIT 1) AS r",
            )?;
            let rows = txn.query(&s, &[&apps, &ids]).map_err(classify)?;
            ahead.idempotency = idempotency.into_iter().map(|k| (k, None)).collect();
            for r in &rows {
                let row = IdempotencyRow {
                    app_key: r.get(0),
                    request_id: r.get(1),
                    fingerprint: r.get(2),
                    response: r.get(3),
                };
                ahead
                    .idempotency
                    .insert((row.app_key.clone(), row.request_id.clone()), Some(row));
            }
        }
        Ok(ahead)
    }

    /// The process as the transaction sees it, if it was read ahead.
    pub fn process(&self, key: &ProcessKey) -> Option<Option<ProcessRow>> {
        self.processes.get(key).cloned()
    }

    pub fn loan(&self, loan_apply_no: &str) -> Option<Option<LoanRow>> {
        self.loans.get(loan_apply_no).cloned()
    }

    pub fn idempotency(&self, app_key: &str, request_id: &str) -> Option<Option<IdempotencyRow>> {
        self.idempotency
            .get(&(app_key.to_string(), request_id.to_string()))
            .cloned()
    }

    /// A unit inserted or updated this process (as `INSERT_PROCESS` or `UPDATE_PROCESS` do):
    /// later reads see it. Rows not read ahead are left to be read from the database.
    pub fn wrote_process(&mut self, row: &ProcessRow) {
        if let Some(seen) = self.processes.get_mut(&row.key) {
            *seen = Some(match seen.take() {
                // An update changes these columns only.
                Some(before) => ProcessRow {
                    status: row.status.clone(),
                    submit_ms: row.submit_ms,
                    complete_ms: row.complete_ms,
                    fund_products: row.fund_products.clone(),
                    ..before
                },
                None => row.clone(),
            });
        }
    }

    /// As `wrote_process`, for `INSERT_LOAN` and `UPDATE_LOAN`.
    pub fn wrote_loan(&mut self, row: &LoanRow) {
        if let Some(seen) = self.loans.get_mut(&row.loan_apply_no) {
            *seen = Some(match seen.take() {
                Some(before) => LoanRow {
                    status: row.status.clone(),
                    customer_id: row.customer_id.clone(),
                    institution_loan_no: row.institution_loan_no.clone(),
                    last_change_ms: row.last_change_ms,
                    needs_reconciliation: row.needs_reconciliation,
                    ..before
                },
                None => row.clone(),
            });
        }
    }

    pub fn wrote_idempotency(&mut self, row: &IdempotencyRow) {
        let key = (row.app_key.clone(), row.request_id.clone());
        if let Some(seen) = self.idempotency.get_mut(&key) {
            *seen = Some(row.clone());
        }
    }
}
