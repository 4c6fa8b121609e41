//! Reads for operators and app management, on reader connections.

use loanwire_domain::loan::{self, Flag};
use loanwire_domain::process::ProcessKey;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;

use super::subjects::SUBJECT_IDS;
use crate::model::format_ms;
use crate::{App, HistoryEntry, InboxQuery, InboxRecord, LoanView, ProcessView, StoreError};

const APP_COLUMNS: &str = "app_key, name, secret, previous_secret, previous_secret_expires_ms,
    channels, methods, rate_limit, enabled, created_ms, updated_ms";

fn list(v: Option<String>) -> rusqlite::Result<Option<Vec<String>>> {
    v.map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

fn app_row(r: &Row<'_>) -> rusqlite::Result<App> {
    Ok(App {
        app_key: r.get(0)?,
        name: r.get(1)?,
        secret: r.get(2)?,
        previous_secret: r.get(3)?,
        previous_secret_expires_ms: r.get(4)?,
        channels: list(r.get(5)?)?,
        methods: list(r.get(6)?)?,
        rate_limit: r.get(7)?,
        enabled: r.get(8)?,
        created_ms: r.get(9)?,
        updated_ms: r.get(10)?,
    })
}

fn to_json(v: &Option<Vec<String>>) -> Option<String> {
    v.as_ref()
        .map(|l| serde_json::to_string(l).expect("strings serialize"))
}

pub fn app(c: &mut Connection, key: &str) -> Result<Option<App>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {APP_COLUMNS} FROM apps WHERE app_key = ?1"
    ))?;
    Ok(stmt.query_row(params![key], app_row).optional()?)
}

pub fn apps(c: &mut Connection) -> Result<Vec<App>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {APP_COLUMNS} FROM apps ORDER BY created_ms, app_key"
    ))?;
    let rows = stmt.query_map([], app_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn insert_app(c: &mut Connection, a: &App) -> Result<(), StoreError> {
    let n = c.execute(
        &format!(
            "INSERT INTO apps ({APP_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                  ON CONFLICT (app_key) DO NOTHING"
        ),
        params![
            a.app_key,
            a.name,
            a.secret,
            a.previous_secret,
            a.previous_secret_expires_ms,
            to_json(&a.channels),
            to_json(&a.methods),
            a.rate_limit,
            a.enabled,
            a.created_ms,
            a.updated_ms
        ],
    )?;
    if n == 0 {
        return Err(StoreError::Invalid(format!(
            "app `{}` already exists",
            a.app_key
        )));
    }
    Ok(())
}

pub fn update_app(c: &mut Connection, a: &App) -> Result<(), StoreError> {
    let n = c.execute(
        "UPDATE apps SET name = ?2, secret = ?3, previous_secret = ?4, previous_secret_expires_ms = ?5,
             channels = ?6, methods = ?7, rate_limit = ?8, enabled = ?9, updated_ms = ?10
         WHERE app_key = ?1",
        params![
            a.app_key,
            a.name,
            a.secret,
            a.previous_secret,
            a.previous_secret_expires_ms,
            to_json(&a.channels),
            to_json(&a.methods),
            a.rate_limit,
            a.enabled,
            a.updated_ms
        ],
    )?;
    if n == 0 {
        return Err(StoreError::Invalid(format!("no app `{}`", a.app_key)));
    }
    Ok(())
}

const INBOX_COLUMNS: &str = "id, call_id, received_ms, app_key, method, outcome, error_code,
    biz_code, subject, idempotency_key, params, detail, response";

fn inbox_row(r: &Row<'_>) -> rusqlite::Result<InboxRecord> {
    let json = |i: usize| -> rusqlite::Result<Value> {
        let s: String = r.get(i)?;
        Ok(serde_json::from_str(&s).unwrap_or(Value::String(s)))
    };
    Ok(InboxRecord {
        id: r.get(0)?,
        call_id: r.get(1)?,
        received_at: format_ms(r.get(2)?),
        app_key: r.get(3)?,
        method: r.get(4)?,
        outcome: r.get(5)?,
        error_code: r.get(6)?,
        biz_code: r.get(7)?,
        subject: r.get(8)?,
        idempotency_key: r.get(9)?,
        params: json(10)?,
        detail: json(11)?,
        response: r.get(12)?,
    })
}

fn history(c: &Connection, subject: &str) -> Result<Vec<HistoryEntry>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {INBOX_COLUMNS} FROM inbox WHERE id IN ({SUBJECT_IDS}) ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![subject], inbox_row)?;
    let records: Vec<InboxRecord> = rows.collect::<Result<_, _>>()?;
    Ok(records.iter().map(HistoryEntry::from).collect())
}

pub fn loan_view(c: &mut Connection, no: &str) -> Result<Option<LoanView>, StoreError> {
    // One read transaction, so the state and its history agree.
    let tx = c.transaction()?;
    let row = tx
        .query_row(
            "SELECT status, app_key, customer_id, institution_loan_no, last_change_ms,
                    needs_reconciliation, created_ms, updated_ms
             FROM loans WHERE loan_apply_no = ?1",
            params![no],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, bool>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                ))
            },
        )
        .optional()?;
    let Some((status, app_key, customer_id, institution_loan_no, last, flagged, created, updated)) =
        row
    else {
        return Ok(None);
    };
    let mut stmt =
        tx.prepare_cached("SELECT flag FROM loan_flags WHERE loan_apply_no = ?1 ORDER BY id")?;
    let reasons: Vec<Flag> = stmt
        .query_map(params![no], |r| r.get::<_, String>(0))?
        .map(|s| {
            let s = s?;
            serde_json::from_str(&s)
                .map_err(|e| StoreError::Unavailable(format!("unreadable flag: {e}")))
        })
        .collect::<Result<_, StoreError>>()?;
    drop(stmt);
    let history = history(&tx, &loan::subject(no))?;
    Ok(Some(LoanView {
        loan_apply_no: no.to_string(),
        status,
        app_key,
        customer_id,
        institution_loan_no,
        last_change_time: format_ms(last),
        needs_reconciliation: flagged,
        reconciliation_reasons: reasons,
        created_at: format_ms(created),
        updated_at: format_ms(updated),
        history,
    }))
}

pub fn process_view(
    c: &mut Connection,
    key: &ProcessKey,
) -> Result<Option<ProcessView>, StoreError> {
    let tx = c.transaction()?;
    let row = tx
        .query_row(
            "SELECT user, user_id, status, submit_ms, complete_ms, fund_products, app_key, created_ms, updated_ms
             FROM processes WHERE channel_id = ?1 AND process_type = ?2 AND process_no = ?3",
            params![key.channel_id, key.process_type, key.process_no],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    list(r.get(5)?)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, i64>(8)?,
                ))
            },
        )
        .optional()?;
    let Some((user, user_id, status, submit, complete, fund_products, app_key, created, updated)) =
        row
    else {
        return Ok(None);
    };
    let history = history(&tx, &key.subject())?;
    Ok(Some(ProcessView {
        channel_id: key.channel_id.clone(),
        process_type: key.process_type.clone(),
        process_no: key.process_no.clone(),
        user,
        user_id,
        status,
        submit_time: submit.map(format_ms),
        complete_time: complete.map(format_ms),
        fund_products,
        app_key,
        created_at: format_ms(created),
        updated_at: format_ms(updated),
        history,
    }))
}

pub fn inbox(c: &mut Connection, q: &InboxQuery) -> Result<Vec<InboxRecord>, StoreError> {
    let mut sql = format!("SELECT {INBOX_COLUMNS} FROM inbox WHERE 1 = 1");
    let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
    if let Some(a) = &q.app_key {
        args.push(Box::new(a.clone()));
        sql.push_str(&format!(" AND app_key = ?{}", args.len()));
    }
    if let Some(m) = &q.method {
        args.push(Box::new(m.clone()));
        sql.push_str(&format!(" AND method = ?{}", args.len()));
    }
    if let Some(o) = q.outcome {
        args.push(Box::new(o.as_str()));
        sql.push_str(&format!(" AND outcome = ?{}", args.len()));
    }
    if let Some(before) = q.before_id {
        args.push(Box::new(before));
        sql.push_str(&format!(" AND id < ?{}", args.len()));
    }
    args.push(Box::new(q.limit.clamp(1, 1000)));
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), inbox_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn inbox_call(c: &mut Connection, call_id: &str) -> Result<Option<InboxRecord>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {INBOX_COLUMNS} FROM inbox WHERE call_id = ?1"
    ))?;
    Ok(stmt.query_row(params![call_id], inbox_row).optional()?)
}

pub fn inbox_missing(c: &mut Connection, ids: &[String]) -> Result<Vec<String>, StoreError> {
    let mut stmt = c.prepare_cached("SELECT 1 FROM inbox WHERE call_id = ?1")?;
    let mut missing = Vec::new();
    for id in ids {
        if !stmt.exists(params![id])? {
            missing.push(id.clone());
        }
    }
    Ok(missing)
}
