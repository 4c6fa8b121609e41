//! The writes of a batch's units, held back and sent together: one statement for all of them,
//! a column array per field (`unnest`), so that the server runs one statement per batch
//! instead of one per unit, and each unit waits for one round trip fewer.
//!
//! A read sends what is held first only when it reads a row that is held (the parts of one
//! statement do not see each other's changes, and a read must see the unit's own writes); so is
//! a second write to a held row. Everything else waits for the batch's end.

use std::collections::HashSet;

use loanwire_domain::process::ProcessKey;
use postgres::types::ToSql;
use postgres::Transaction;

use super::conn::{classify, statement, Statements};
use super::events::SEQ_OF_EVENT;
use crate::rows::{IdempotencyRow, LoanRow, ProcessRow};
use crate::{InboxEntry, NewEvent, StoreError};

/// Held writes, in the order they were made within each table.
#[derive(Default)]
pub(super) struct Held {
    /// The rows written: a read of one, or a second write to it, sends everything first.
    rows: HashSet<String>,
    process_inserts: Vec<(ProcessRow, i64)>,
    process_updates: Vec<(ProcessRow, i64)>,
    loan_inserts: Vec<(LoanRow, i64)>,
    loan_updates: Vec<(LoanRow, i64)>,
    idempotency: Vec<(IdempotencyRow, i64)>,
    /// Each with its ordinal in the transaction.
    events: Vec<(NewEvent, i64)>,
    /// Each with the index of its unit in the batch.
    inbox: Vec<(InboxEntry, usize)>,
    /// The inbox ids of records already sent, by unit: known once their statement has run.
    pub sent_inbox_ids: Vec<(usize, i64)>,
}

/// A held row's key.
pub(super) fn process_key(k: &ProcessKey) -> String {
    format!(
        "process:{}/{}/{}",
        k.channel_id, k.process_type, k.process_no
    )
}

pub(super) fn loan_key(loan_apply_no: &str) -> String {
    format!("loan:{loan_apply_no}")
}

pub(super) fn idempotency_key(app_key: &str, request_id: &str) -> String {
    format!("idempotency:{app_key}/{request_id}")
}

/// Where a held write goes.
pub(super) enum Write {
    InsertProcess(ProcessRow),
    UpdateProcess(ProcessRow),
    InsertLoan(LoanRow),
    UpdateLoan(LoanRow),
    InsertIdempotency(IdempotencyRow),
}

impl Held {
    pub fn is_empty(&self) -> bool {
        self.process_inserts.is_empty()
            && self.process_updates.is_empty()
            && self.loan_inserts.is_empty()
            && self.loan_updates.is_empty()
            && self.idempotency.is_empty()
            && self.events.is_empty()
            && self.inbox.is_empty()
    }

    pub fn holds(&self, row: &str) -> bool {
        self.rows.contains(row)
    }

    /// Holds a write to `row` (which is not held: the caller sends first if it is).
    pub fn write(&mut self, row: String, write: Write, now_ms: i64) {
        self.rows.insert(row);
        match write {
            Write::InsertProcess(p) => self.process_inserts.push((p, now_ms)),
            Write::UpdateProcess(p) => self.process_updates.push((p, now_ms)),
            Write::InsertLoan(l) => self.loan_inserts.push((l, now_ms)),
            Write::UpdateLoan(l) => self.loan_updates.push((l, now_ms)),
            Write::InsertIdempotency(i) => self.idempotency.push((i, now_ms)),
        }
    }

    pub fn event(&mut self, event: NewEvent, ordinal: i64) {
        self.events.push((event, ordinal));
    }

    pub fn inbox(&mut self, entry: InboxEntry, unit: usize) {
        self.inbox.push((entry, unit));
    }

    /// Sends everything held in one statement, in `txn`. It fails only as a statement does:
    /// with a race (`Conflict`) or the database's error, never with one unit's.
    pub fn send(
        &mut self,
        txn: &mut Transaction<'_>,
        statements: &mut Statements,
    ) -> Result<(), StoreError> {
        if self.is_empty() {
            return Ok(());
        }
        let ids = self.send_statement(txn, statements)?;
        // Records come back in the order they were given (joined back by call id).
        if ids.len() != self.inbox.len() {
            return Err(StoreError::Unavailable(format!(
                "{} inbox records sent, {} recorded",
                self.inbox.len(),
                ids.len()
            )));
        }
        for ((_, unit), id) in self.inbox.iter().zip(ids) {
            self.sent_inbox_ids.push((*unit, id));
        }
        *self = Held {
            sent_inbox_ids: std::mem::take(&mut self.sent_inbox_ids),
            ..Held::default()
        };
        Ok(())
    }

    /// Runs the statement that sends everything held; the inbox ids, in the records' order.
    /// Its parameters borrow the held rows rather than copy them.
    fn send_statement(
        &self,
        txn: &mut Transaction<'_>,
        statements: &mut Statements,
    ) -> Result<Vec<i64>, StoreError> {
        let pi = &self.process_inserts;
        let pu = &self.process_updates;
        let li = &self.loan_inserts;
        let lu = &self.loan_updates;
        let ii = &self.idempotency;
        let ev = &self.events;
        let ib = &self.inbox;
        let args: Vec<Box<dyn ToSql + Sync + '_>> = vec![
            // Process inserts: $1–$11.
            col(pi.iter().map(|(p, _)| p.key.channel_id.as_str())),
            col(pi.iter().map(|(p, _)| p.key.process_type.as_str())),
            col(pi.iter().map(|(p, _)| p.key.process_no.as_str())),
            col(pi.iter().map(|(p, _)| p.user.as_str())),
            col(pi.iter().map(|(p, _)| p.user_id)),
            col(pi.iter().map(|(p, _)| p.status.as_str())),
            col(pi.iter().map(|(p, _)| p.submit_ms)),
            col(pi.iter().map(|(p, _)| p.complete_ms)),
            col(pi.iter().map(|(p, _)| p.fund_products.as_deref())),
            col(pi.iter().map(|(p, _)| p.app_key.as_str())),
            col(pi.iter().map(|(_, at)| *at)),
            // Process updates: $12–$19.
            col(pu.iter().map(|(p, _)| p.key.channel_id.as_str())),
            col(pu.iter().map(|(p, _)| p.key.process_type.as_str())),
            col(pu.iter().map(|(p, _)| p.key.process_no.as_str())),
            col(pu.iter().map(|(p, _)| p.status.as_str())),
            col(pu.iter().map(|(p, _)| p.submit_ms)),
            col(pu.iter().map(|(p, _)| p.complete_ms)),
            col(pu.iter().map(|(p, _)| p.fund_products.as_deref())),
            col(pu.iter().map(|(_, at)| *at)),
            // Loan inserts: $20–$27.
            col(li.iter().map(|(l, _)| l.loan_apply_no.as_str())),
            col(li.iter().map(|(l, _)| l.status.as_str())),
            col(li.iter().map(|(l, _)| l.app_key.as_str())),
            col(li.iter().map(|(l, _)| l.customer_id.as_deref())),
            col(li.iter().map(|(l, _)| l.institution_loan_no.as_deref())),
            col(li.iter().map(|(l, _)| l.last_change_ms)),
            col(li.iter().map(|(l, _)| l.needs_reconciliation)),
            col(li.iter().map(|(_, at)| *at)),
            // Loan updates: $28–$34.
            col(lu.iter().map(|(l, _)| l.loan_apply_no.as_str())),
            col(lu.iter().map(|(l, _)| l.status.as_str())),
            col(lu.iter().map(|(l, _)| l.customer_id.as_deref())),
            col(lu.iter().map(|(l, _)| l.institution_loan_no.as_deref())),
            col(lu.iter().map(|(l, _)| l.last_change_ms)),
            col(lu.iter().map(|(l, _)| l.needs_reconciliation)),
            col(lu.iter().map(|(_, at)| *at)),
            // Idempotency records: $35–$39.
            col(ii.iter().map(|(r, _)| r.app_key.as_str())),
            col(ii.iter().map(|(r, _)| r.request_id.as_str())),
            col(ii.iter().map(|(r, _)| r.fingerprint.as_str())),
            col(ii.iter().map(|(r, _)| r.response.as_str())),
            col(ii.iter().map(|(_, at)| *at)),
            // Events: $40–$47.
            col(ev.iter().map(|(_, ordinal)| *ordinal)),
            col(ev.iter().map(|(e, _)| e.id.as_str())),
            col(ev.iter().map(|(e, _)| e.event_type.as_str())),
            col(ev.iter().map(|(e, _)| e.recorded_ms)),
            col(ev.iter().map(|(e, _)| e.app_key.as_str())),
            col(ev.iter().map(|(e, _)| e.request_id.as_str())),
            col(ev.iter().map(|(e, _)| e.subject.as_str())),
            col(ev.iter().map(|(e, _)| e.data.as_str())),
            // Inbox records: $48–$59.
            col(ib.iter().map(|(e, _)| e.call_id.as_str())),
            col(ib.iter().map(|(e, _)| e.received_ms)),
            col(ib.iter().map(|(e, _)| e.app_key.as_str())),
            col(ib.iter().map(|(e, _)| e.method.as_str())),
            col(ib.iter().map(|(e, _)| e.params.as_str())),
            col(ib.iter().map(|(e, _)| e.outcome.as_str())),
            col(ib.iter().map(|(e, _)| e.error_code.map(|c| c as i32))),
            col(ib.iter().map(|(e, _)| e.biz_code.as_deref())),
            col(ib.iter().map(|(e, _)| e.subject.as_deref())),
            col(ib.iter().map(|(e, _)| e.idempotency_key.as_deref())),
            col(ib.iter().map(|(e, _)| e.detail.as_str())),
            col(ib.iter().map(|(e, _)| e.response.as_str())),
        ];
        let args: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as _).collect();
        let s = statement(statements, txn, send_sql())?;
        let rows = txn.query(&s, &args).map_err(classify)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// One column of held rows, as an array parameter.
fn col<'r, T: ToSql + Sync + 'r>(values: impl Iterator<Item = T>) -> Box<dyn ToSql + Sync + 'r> {
    Box::new(values.collect::<Vec<T>>())
}

/// Every held write in one statement: a data-modifying `WITH` part per kind of write, each
/// inserting or updating from its column arrays; parts touch different rows (a second write to
/// a row sends the first), and a failing part fails the whole statement.
fn send_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let seq = SEQ_OF_EVENT.replace("$1", "x.ord");
        format!(
            "WITH
             process_inserts AS (
                 INSERT INTO processes (channel_id, process_type, process_no, \"user\", user_id,
                     status, submit_ms, complete_ms, fund_products, app_key, created_ms, updated_ms)
                 SELECT x.c, x.t, x.n, x.u, x.uid, x.st, x.sm, x.cm, x.fp, x.ak, x.at, x.at
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[],
                     $6::text[], $7::int8[], $8::int8[], $9::text[], $10::text[], $11::int8[])
                     AS x(c, t, n, u, uid, st, sm, cm, fp, ak, at)),
             process_updates AS (
                 UPDATE processes AS p SET status = x.st, submit_ms = x.sm, complete_ms = x.cm,
                     fund_products = x.fp, updated_ms = x.at
                 FROM unnest($12::text[], $13::text[], $14::text[], $15::text[], $16::int8[],
                     $17::int8[], $18::text[], $19::int8[]) AS x(c, t, n, st, sm, cm, fp, at)
                 WHERE p.channel_id = x.c AND p.process_type = x.t AND p.process_no = x.n),
             loan_inserts AS (
                 INSERT INTO loans (loan_apply_no, status, app_key, customer_id,
                     institution_loan_no, last_change_ms, needs_reconciliation, created_ms,
                     updated_ms)
                 SELECT x.no, x.st, x.ak, x.cu, x.il, x.lc, x.nr, x.at, x.at
                 FROM unnest($20::text[], $21::text[], $22::text[], $23::text[], $24::text[],
                     $25::int8[], $26::bool[], $27::int8[]) AS x(no, st, ak, cu, il, lc, nr, at)),
             loan_updates AS (
                 UPDATE loans AS l SET status = x.st, customer_id = x.cu,
                     institution_loan_no = x.il, last_change_ms = x.lc,
                     needs_reconciliation = x.nr, updated_ms = x.at
                 FROM unnest($28::text[], $29::text[], $30::text[], $31::text[], $32::int8[],
                     $33::bool[], $34::int8[]) AS x(no, st, cu, il, lc, nr, at)
                 WHERE l.loan_apply_no = x.no),
             idempotency_inserts AS (
                 INSERT INTO idempotency (app_key, request_id, fingerprint, response, created_ms)
                 SELECT * FROM unnest($35::text[], $36::text[], $37::text[], $38::text[],
                     $39::int8[])),
             event_inserts AS (
                 INSERT INTO events (seq, id, type, recorded_ms, app_key, request_id, subject,
                     data)
                 SELECT {seq}, x.id, x.ty, x.rm, x.ak, x.rid, x.su, x.da
                 FROM unnest($40::int8[], $41::text[], $42::text[], $43::int8[], $44::text[],
                     $45::text[], $46::text[], $47::text[])
                     AS x(ord, id, ty, rm, ak, rid, su, da)),
             inbox_inserts AS (
                 INSERT INTO inbox (call_id, received_ms, app_key, method, params, outcome,
                     error_code, biz_code, subject, idempotency_key, detail, response)
                 SELECT x.ci, x.rm, x.ak, x.me, x.pa, x.oc, x.ec, x.bc, x.su, x.ik, x.de, x.re
                 FROM unnest($48::text[], $49::int8[], $50::text[], $51::text[], $52::text[],
                     $53::text[], $54::int4[], $55::text[], $56::text[], $57::text[],
                     $58::text[], $59::text[]) WITH ORDINALITY
                     AS x(ci, rm, ak, me, pa, oc, ec, bc, su, ik, de, re, n)
                 ORDER BY x.n
                 RETURNING call_id, id)
             SELECT i.id FROM inbox_inserts AS i
             JOIN unnest($48::text[]) WITH ORDINALITY AS o(ci, n) ON o.ci = i.call_id
             ORDER BY o.n"
        )
    })
}
