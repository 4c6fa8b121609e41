//! The row operations of a unit of work, inside a writer's transaction.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

use loanwire_domain::process::ProcessKey;
use postgres::types::ToSql;
use postgres::{Row, Statement, Transaction};

use super::conn::{classify, statement, Statements};
use super::events::SEQ_OF_EVENT;
use crate::backend::TxRows;
use crate::rows::{IdempotencyRow, LoanRow, ProcessRow};
use crate::{InboxEntry, NewEvent, StoreError, StoreResult};

pub struct PgTx<'a, 't> {
    txn: &'a mut Transaction<'t>,
    statements: &'a mut Statements,
    /// Events appended so far in this transaction, by every unit of the batch.
    events: &'a mut u32,
    /// An event waiting to go out with the unit's inbox record, in one statement (one round
    /// trip fewer per applied call), with its ordinal.
    pending_event: Option<(NewEvent, i64)>,
    /// Rows this unit read as absent: written with a plain INSERT, so that a concurrent creator
    /// makes this unit fail and run again instead of being overwritten.
    absent_processes: HashSet<ProcessKey>,
    absent_loans: HashSet<String>,
    /// Rows this unit read as present (and locked): their update cannot miss.
    present_processes: HashSet<ProcessKey>,
    present_loans: HashSet<String>,
    /// Writes held back to go out with the unit's inbox record, in one statement: each round
    /// trip costs both the database and the writer a wake-up.
    held: Vec<Held>,
    /// The rows the held writes touch: a second write to one of them goes out after the first
    /// (the parts of one statement do not see each other's changes).
    held_rows: HashSet<String>,
}

type Arg = Box<dyn ToSql + Sync + Send>;

/// A write held back: its statement (parameters from `$1`) and its arguments.
struct Held {
    sql: &'static str,
    args: Vec<Arg>,
}

impl<'a, 't> PgTx<'a, 't> {
    pub fn new(
        txn: &'a mut Transaction<'t>,
        statements: &'a mut Statements,
        events: &'a mut u32,
    ) -> Self {
        PgTx {
            txn,
            statements,
            events,
            pending_event: None,
            absent_processes: HashSet::new(),
            absent_loans: HashSet::new(),
            present_processes: HashSet::new(),
            present_loans: HashSet::new(),
            held: Vec::new(),
            held_rows: HashSet::new(),
        }
    }

    /// Holds a write to `row` back for the unit's inbox statement.
    fn hold(&mut self, row: String, sql: &'static str, args: Vec<Arg>) -> Result<(), StoreError> {
        if self.held_rows.contains(&row) {
            self.send_held()?;
        }
        self.held_rows.insert(row);
        self.held.push(Held { sql, args });
        Ok(())
    }

    /// Sends the held writes, each on its own: before a read (which must see them) or at the
    /// end of a unit that recorded no call.
    fn send_held(&mut self) -> Result<(), StoreError> {
        self.held_rows.clear();
        for h in std::mem::take(&mut self.held) {
            self.execute_owned(h.sql, &h.args)?;
        }
        Ok(())
    }

    fn execute_owned(&mut self, sql: &'static str, args: &[Arg]) -> Result<u64, StoreError> {
        let args: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as _).collect();
        self.execute(sql, &args)
    }

    /// Writes an event still waiting for an inbox record to go out with; called after each
    /// unit, so that nothing a unit appended is left behind.
    pub fn finish(&mut self) -> Result<(), StoreError> {
        self.send_held()?;
        if let Some((e, ordinal)) = self.pending_event.take() {
            self.execute(
                insert_event_sql(),
                &[
                    &ordinal,
                    &e.id,
                    &e.event_type,
                    &e.recorded_ms,
                    &e.app_key,
                    &e.request_id,
                    &e.subject,
                    &e.data,
                ],
            )?;
        }
        Ok(())
    }

    fn stmt(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        statement(self.statements, self.txn, sql)
    }

    /// Runs a statement; the number of rows it changed.
    fn execute(
        &mut self,
        sql: &'static str,
        args: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let s = self.stmt(sql)?;
        self.txn.execute(&s, args).map_err(classify)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        args: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let s = self.stmt(sql)?;
        self.txn.query_opt(&s, args).map_err(classify)
    }
}

/// Loan note `loan_apply_no`'s row from `status, app_key, customer_id, institution_loan_no,
/// last_change_ms, needs_reconciliation`.
pub(super) fn loan_row(loan_apply_no: &str, r: &Row) -> LoanRow {
    LoanRow {
        loan_apply_no: loan_apply_no.to_string(),
        status: r.get(0),
        app_key: r.get(1),
        customer_id: r.get(2),
        institution_loan_no: r.get(3),
        last_change_ms: r.get(4),
        needs_reconciliation: r.get(5),
    }
}

/// Process `key`'s row from `"user", user_id, status, submit_ms, complete_ms, fund_products,
/// app_key`.
pub(super) fn process_row(key: &ProcessKey, r: &Row) -> ProcessRow {
    ProcessRow {
        key: key.clone(),
        user: r.get(0),
        user_id: r.get(1),
        status: r.get(2),
        submit_ms: r.get(3),
        complete_ms: r.get(4),
        fund_products: r.get(5),
        app_key: r.get(6),
    }
}

impl TxRows for PgTx<'_, '_> {
    fn process_row(&mut self, key: &ProcessKey) -> StoreResult<Option<ProcessRow>> {
        self.send_held()?;
        let row = self.query_opt(
            "SELECT \"user\", user_id, status, submit_ms, complete_ms, fund_products, app_key
             FROM processes WHERE channel_id = $1 AND process_type = $2 AND process_no = $3
             FOR UPDATE",
            &[&key.channel_id, &key.process_type, &key.process_no],
        )?;
        if row.is_none() {
            self.absent_processes.insert(key.clone());
        } else {
            self.present_processes.insert(key.clone());
        }
        Ok(row.as_ref().map(|r| process_row(key, r)))
    }

    fn put_process_row(&mut self, p: &ProcessRow, now_ms: i64) -> StoreResult<()> {
        let key = &p.key;
        let row = format!(
            "process:{}/{}/{}",
            key.channel_id, key.process_type, key.process_no
        );
        // A row read as present (and locked) is updated, one read as absent inserted plainly
        // (a concurrent creator makes the statement, and the unit, fail and run again instead
        // of being overwritten): both wait for the unit's inbox statement.
        if self.present_processes.contains(key) {
            return self.hold(row, UPDATE_PROCESS, process_update(p, now_ms));
        }
        if self.absent_processes.remove(key) {
            self.present_processes.insert(key.clone());
            return self.hold(row, INSERT_PROCESS, process_insert(p, now_ms));
        }
        // Written without being read: updated if it exists, else inserted plainly.
        if self.execute_owned(UPDATE_PROCESS, &process_update(p, now_ms))? == 0 {
            self.execute_owned(INSERT_PROCESS, &process_insert(p, now_ms))?;
        }
        Ok(())
    }

    fn loan_row(&mut self, loan_apply_no: &str) -> StoreResult<Option<LoanRow>> {
        self.send_held()?;
        let row = self.query_opt(
            "SELECT status, app_key, customer_id, institution_loan_no, last_change_ms, needs_reconciliation
             FROM loans WHERE loan_apply_no = $1 FOR UPDATE",
            &[&loan_apply_no],
        )?;
        if row.is_none() {
            self.absent_loans.insert(loan_apply_no.to_string());
        } else {
            self.present_loans.insert(loan_apply_no.to_string());
        }
        Ok(row.as_ref().map(|r| loan_row(loan_apply_no, r)))
    }

    fn put_loan_row(&mut self, l: &LoanRow, now_ms: i64) -> StoreResult<()> {
        let loan_apply_no = l.loan_apply_no.as_str();
        let row = format!("loan:{loan_apply_no}");
        // As for processes.
        if self.present_loans.contains(loan_apply_no) {
            return self.hold(row, UPDATE_LOAN, loan_update(l, now_ms));
        }
        if self.absent_loans.remove(loan_apply_no) {
            self.present_loans.insert(l.loan_apply_no.clone());
            return self.hold(row, INSERT_LOAN, loan_insert(l, now_ms));
        }
        if self.execute_owned(UPDATE_LOAN, &loan_update(l, now_ms))? == 0 {
            self.execute_owned(INSERT_LOAN, &loan_insert(l, now_ms))?;
        }
        Ok(())
    }

    fn add_loan_flags(&mut self, loan_apply_no: &str, flags: &[String]) -> StoreResult<()> {
        // A flag refers to its loan note, which may be a held insert.
        self.send_held()?;
        for f in flags {
            self.execute(
                "INSERT INTO loan_flags (loan_apply_no, flag) VALUES ($1, $2)",
                &[&loan_apply_no, f],
            )?;
        }
        Ok(())
    }

    fn idempotency_row(&mut self, app_key: &str, id: &str) -> StoreResult<Option<IdempotencyRow>> {
        self.send_held()?;
        let row = self.query_opt(
            "SELECT fingerprint, response FROM idempotency WHERE app_key = $1 AND request_id = $2",
            &[&app_key, &id],
        )?;
        Ok(row.map(|r| IdempotencyRow {
            app_key: app_key.to_string(),
            request_id: id.to_string(),
            fingerprint: r.get(0),
            response: r.get(1),
        }))
    }

    fn idempotency_and_loan_rows(
        &mut self,
        app_key: &str,
        id: &str,
        loan_apply_no: &str,
    ) -> StoreResult<(Option<IdempotencyRow>, Option<LoanRow>)> {
        self.send_held()?;
        // One row always: the loan note's columns are NULL when it does not exist (its status
        // never is otherwise), the idempotency record's likewise.
        let row = self.query_opt(
            "WITH loan AS MATERIALIZED (
                 SELECT status, app_key, customer_id, institution_loan_no, last_change_ms,
                     needs_reconciliation
                 FROM loans WHERE loan_apply_no = $3 FOR UPDATE)
             SELECT l.status, l.app_key, l.customer_id, l.institution_loan_no, l.last_change_ms,
                 l.needs_reconciliation, i.fingerprint, i.response
             FROM (SELECT 1) AS one
             LEFT JOIN loan AS l ON true
             LEFT JOIN idempotency AS i ON i.app_key = $1 AND i.request_id = $2",
            &[&app_key, &id, &loan_apply_no],
        )?;
        let Some(r) = row else {
            return Err(StoreError::Unavailable(
                "reading a loan note and its request id returned no row".into(),
            ));
        };
        let loan = match r.get::<_, Option<String>>(0) {
            Some(_) => {
                self.present_loans.insert(loan_apply_no.to_string());
                Some(loan_row(loan_apply_no, &r))
            }
            None => {
                self.absent_loans.insert(loan_apply_no.to_string());
                None
            }
        };
        let seen = r
            .get::<_, Option<String>>(6)
            .map(|fingerprint| IdempotencyRow {
                app_key: app_key.to_string(),
                request_id: id.to_string(),
                fingerprint,
                response: r.get(7),
            });
        Ok((seen, loan))
    }

    fn put_idempotency_row(&mut self, row: &IdempotencyRow, now_ms: i64) -> StoreResult<()> {
        self.hold(
            format!("idempotency:{}/{}", row.app_key, row.request_id),
            INSERT_IDEMPOTENCY,
            vec![
                Box::new(row.app_key.clone()),
                Box::new(row.request_id.clone()),
                Box::new(row.fingerprint.clone()),
                Box::new(row.response.clone()),
                Box::new(now_ms),
            ],
        )
    }

    fn append_inbox_row(&mut self, e: &InboxEntry) -> StoreResult<i64> {
        let error_code = e.error_code.map(|c| c as i32);
        let outcome = e.outcome.as_str();
        let mut args: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![
            &e.call_id,
            &e.received_ms,
            &e.app_key,
            &e.method,
            &e.params,
            &outcome,
            &error_code,
            &e.biz_code,
            &e.subject,
            &e.idempotency_key,
            &e.detail,
            &e.response,
        ];
        let pending = self.pending_event.take();
        if let Some((ev, ordinal)) = &pending {
            args.extend_from_slice(&[
                ordinal,
                &ev.id,
                &ev.event_type,
                &ev.recorded_ms,
                &ev.app_key,
                &ev.request_id,
                &ev.subject,
                &ev.data,
            ]);
        }
        let held = std::mem::take(&mut self.held);
        for h in &held {
            args.extend(h.args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)));
        }
        let sql = inbox_sql(pending.is_some(), &held);
        let s = self.stmt(sql)?;
        let row = self.txn.query_one(&s, &args).map_err(classify)?;
        Ok(row.get(0))
    }

    fn append_event_row(&mut self, e: &NewEvent) -> StoreResult<()> {
        // A second event of the same unit sends the first out alone.
        self.finish()?;
        self.pending_event = Some((e.clone(), i64::from(*self.events)));
        *self.events += 1;
        Ok(())
    }
}

const INSERT_INBOX: &str =
    "INSERT INTO inbox (call_id, received_ms, app_key, method, params, outcome, error_code,
         biz_code, subject, idempotency_key, detail, response)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id";

fn process_update(p: &ProcessRow, now_ms: i64) -> Vec<Arg> {
    let k = &p.key;
    vec![
        Box::new(k.channel_id.clone()),
        Box::new(k.process_type.clone()),
        Box::new(k.process_no.clone()),
        Box::new(p.status.clone()),
        Box::new(p.submit_ms),
        Box::new(p.complete_ms),
        Box::new(p.fund_products.clone()),
        Box::new(now_ms),
    ]
}

fn process_insert(p: &ProcessRow, now_ms: i64) -> Vec<Arg> {
    let k = &p.key;
    vec![
        Box::new(k.channel_id.clone()),
        Box::new(k.process_type.clone()),
        Box::new(k.process_no.clone()),
        Box::new(p.user.clone()),
        Box::new(p.user_id),
        Box::new(p.status.clone()),
        Box::new(p.submit_ms),
        Box::new(p.complete_ms),
        Box::new(p.fund_products.clone()),
        Box::new(p.app_key.clone()),
        Box::new(now_ms),
    ]
}

fn loan_update(l: &LoanRow, now_ms: i64) -> Vec<Arg> {
    vec![
        Box::new(l.loan_apply_no.clone()),
        Box::new(l.status.clone()),
        Box::new(l.customer_id.clone()),
        Box::new(l.institution_loan_no.clone()),
        Box::new(l.last_change_ms),
        Box::new(l.needs_reconciliation),
        Box::new(now_ms),
    ]
}

fn loan_insert(l: &LoanRow, now_ms: i64) -> Vec<Arg> {
    vec![
        Box::new(l.loan_apply_no.clone()),
        Box::new(l.status.clone()),
        Box::new(l.app_key.clone()),
        Box::new(l.customer_id.clone()),
        Box::new(l.institution_loan_no.clone()),
        Box::new(l.last_change_ms),
        Box::new(l.needs_reconciliation),
        Box::new(now_ms),
    ]
}

const UPDATE_PROCESS: &str = "UPDATE processes SET status = $4, submit_ms = $5, complete_ms = $6, fund_products = $7, updated_ms = $8
     WHERE channel_id = $1 AND process_type = $2 AND process_no = $3";

const INSERT_PROCESS: &str =
    "INSERT INTO processes (channel_id, process_type, process_no, \"user\", user_id, status,
         submit_ms, complete_ms, fund_products, app_key, created_ms, updated_ms)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)";

const UPDATE_LOAN: &str =
    "UPDATE loans SET status = $2, customer_id = $3, institution_loan_no = $4, last_change_ms = $5,
         needs_reconciliation = $6, updated_ms = $7
     WHERE loan_apply_no = $1";

const INSERT_LOAN: &str =
    "INSERT INTO loans (loan_apply_no, status, app_key, customer_id, institution_loan_no,
         last_change_ms, needs_reconciliation, created_ms, updated_ms)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)";

const INSERT_IDEMPOTENCY: &str = "INSERT INTO idempotency (app_key, request_id, fingerprint, response, created_ms) VALUES ($1, $2, $3, $4, $5)";

/// The inbox record with its call's event and the unit's held writes, in one statement: the
/// inbox's parameters first (`$1`–`$12`), then the event's, then each held write's. A
/// data-modifying `WITH` runs every part against the same snapshot; the parts touch different
/// rows, and a failing part fails the whole statement, as it would have failed alone.
///
/// The texts are made once per shape (event or not, which writes in which order: a handful)
/// and kept, so that each is prepared once per connection.
fn inbox_sql(with_event: bool, held: &[Held]) -> &'static str {
    type Shapes = Mutex<HashMap<(bool, Vec<&'static str>), &'static str>>;
    static SHAPES: OnceLock<Shapes> = OnceLock::new();
    let key = (with_event, held.iter().map(|h| h.sql).collect::<Vec<_>>());
    let mut shapes = SHAPES
        .get_or_init(Shapes::default)
        .lock()
        .expect("sql shapes");
    if let Some(sql) = shapes.get(&key) {
        return sql;
    }
    let mut parts = Vec::new();
    let mut next = 13;
    if with_event {
        parts.push(format!(
            "event AS (INSERT INTO events (seq, id, type, recorded_ms, app_key, request_id, subject, data)
                 VALUES ({}, $14, $15, $16, $17, $18, $19, $20))",
            SEQ_OF_EVENT.replace("$1", "$13")
        ));
        next = 21;
    }
    for (i, h) in held.iter().enumerate() {
        parts.push(format!("held{i} AS ({})", renumber(h.sql, next - 1)));
        next += parameters(h.sql);
    }
    let sql: &'static str = if parts.is_empty() {
        INSERT_INBOX
    } else {
        String::leak(format!("WITH {} {INSERT_INBOX}", parts.join(", ")))
    };
    shapes.insert(key, sql);
    sql
}

/// `sql` with every `$n` made `$(n + by)`.
fn renumber(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(rest.len() - at - 1, |n| n);
        let n: usize = rest[at + 1..at + 1 + digits]
            .parse()
            .expect("a numbered parameter");
        out.push_str(&format!("${}", n + by));
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    out
}

/// How many parameters `sql` takes (its highest `$n`).
fn parameters(sql: &str) -> usize {
    sql.split('$')
        .skip(1)
        .filter_map(|p| {
            let digits = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
            p[..digits].parse::<usize>().ok()
        })
        .max()
        .unwrap_or(0)
}

/// The event insert, with its `seq` made from the transaction's id.
fn insert_event_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "INSERT INTO events (seq, id, type, recorded_ms, app_key, request_id, subject, data)
             VALUES ({SEQ_OF_EVENT}, $2, $3, $4, $5, $6, $7, $8)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_renumbered_past_the_ones_before() {
        assert_eq!(
            renumber("VALUES ($1, $2, $10, $2)", 12),
            "VALUES ($13, $14, $22, $14)"
        );
        assert_eq!(parameters(INSERT_LOAN), 8);
        assert_eq!(parameters(INSERT_PROCESS), 11);
        assert_eq!(parameters(UPDATE_PROCESS), 8);
    }

    #[test]
    fn a_unit_with_an_event_and_held_writes_numbers_them_in_order() {
        let held = [
            Held {
                sql: UPDATE_LOAN,
                args: Vec::new(),
            },
            Held {
                sql: INSERT_IDEMPOTENCY,
                args: Vec::new(),
            },
        ];
        let sql = inbox_sql(true, &held);
        assert!(sql.contains("$20)"), "{sql}");
        assert!(sql.contains("WHERE loan_apply_no = $21"), "{sql}");
        assert!(sql.contains("VALUES ($28, $29, $30, $31, $32)"), "{sql}");
        assert!(std::ptr::eq(sql, inbox_sql(true, &held)), "made once");
        assert_eq!(inbox_sql(false, &[]), INSERT_INBOX);
    }
}
