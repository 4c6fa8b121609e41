//! Reads for operators and app management.

use loanwire_domain::loan::{self, Flag};
use loanwire_domain::process::ProcessKey;
use postgres::{Client, Row};
use serde_json::Value;

use super::{statement, unavailable, Conn};
use crate::model::format_ms;
use crate::{App, HistoryEntry, InboxQuery, InboxRecord, LoanView, ProcessView, StoreError};

fn client(
    conn: &mut Conn,
) -> Result<
    (
        &mut Client,
        &mut std::collections::HashMap<&'static str, postgres::Statement>,
    ),
    StoreError,
> {
    conn.client()?;
    let Conn {
        client, statements, ..
    } = conn;
    Ok((client.as_mut().expect("connected above"), statements))
}

const APP_COLUMNS: &str = "app_key, name, secret, previous_secret, previous_secret_expires_ms,
    channels, methods, rate_limit, enabled, created_ms, updated_ms";

fn list(v: Option<String>) -> Result<Option<Vec<String>>, StoreError> {
    v.map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(unavailable)
}

fn to_json(v: &Option<Vec<String>>) -> Option<String> {
    v.as_ref()
        .map(|l| serde_json::to_string(l).expect("strings serialize"))
}

fn app_row(r: &Row) -> Result<App, StoreError> {
    Ok(App {
        app_key: r.get(0),
        name: r.get(1),
        secret: r.get(2),
        previous_secret: r.get(3),
        previous_secret_expires_ms: r.get(4),
        channels: list(r.get(5))?,
        methods: list(r.get(6))?,
        rate_limit: r.get::<_, Option<i32>>(7).map(|v| v as u32),
        enabled: r.get(8),
        created_ms: r.get(9),
        updated_ms: r.get(10),
    })
}

pub fn app(c: &mut Conn, key: &str) -> Result<Option<App>, StoreError> {
    let (client, stmts) = client(c)?;
    let s = statement(stmts, client, "SELECT app_key, name, secret, previous_secret, previous_secret_expires_ms,
        channels, methods, rate_limit, enabled, created_ms, updated_ms FROM apps WHERE app_key = $1")?;
    client
        .query_opt(&s, &[&key])
        .map_err(unavailable)?
        .map(|r| app_row(&r))
        .transpose()
}

pub fn apps(c: &mut Conn) -> Result<Vec<App>, StoreError> {
    let (client, _) = client(c)?;
    let rows = client
        .query(
            &format!("SELECT {APP_COLUMNS} FROM apps ORDER BY created_ms, app_key"),
            &[],
        )
        .map_err(unavailable)?;
    rows.iter().map(app_row).collect()
}

pub fn insert_app(c: &mut Conn, a: &App) -> Result<(), StoreError> {
    let (client, _) = client(c)?;
    let rate = a.rate_limit.map(|v| v as i32);
    let n = client
        .execute(
            &format!("INSERT INTO apps ({APP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (app_key) DO NOTHING"),
            &[&a.app_key, &a.name, &a.secret, &a.previous_secret, &a.previous_secret_expires_ms, &to_json(&a.channels), &to_json(&a.methods), &rate, &a.enabled, &a.created_ms, &a.updated_ms],
        )
        .map_err(unavailable)?;
    if n == 0 {
        return Err(StoreError::Invalid(format!(
            "app `{}` already exists",
            a.app_key
        )));
    }
    Ok(())
}

pub fn update_app(c: &mut Conn, a: &App) -> Result<(), StoreError> {
    let (client, _) = client(c)?;
    let rate = a.rate_limit.map(|v| v as i32);
    let n = client
        .execute(
            "UPDATE apps SET name = $2, secret = $3, previous_secret = $4, previous_secret_expires_ms = $5,
                 channels = $6, methods = $7, rate_limit = $8, enabled = $9, updated_ms = $10
             WHERE app_key = $1",
            &[&a.app_key, &a.name, &a.secret, &a.previous_secret, &a.previous_secret_expires_ms, &to_json(&a.channels), &to_json(&a.methods), &rate, &a.enabled, &a.updated_ms],
        )
        .map_err(unavailable)?;
    if n == 0 {
        return Err(StoreError::Invalid(format!("no app `{}`", a.app_key)));
    }
    Ok(())
}

const INBOX_COLUMNS: &str = "id, call_id, received_ms, app_key, method, outcome, error_code,
    biz_code, subject, idempotency_key, params, detail, response";

fn inbox_row(r: &Row) -> InboxRecord {
    let json = |i: usize| -> Value {
        let s: String = r.get(i);
        serde_json::from_str(&s).unwrap_or(Value::String(s))
    };
    InboxRecord {
        id: r.get(0),
        call_id: r.get(1),
        received_at: format_ms(r.get(2)),
        app_key: r.get(3),
        method: r.get(4),
        outcome: r.get(5),
        error_code: r.get::<_, Option<i32>>(6).map(|c| c as u32),
        biz_code: r.get(7),
        subject: r.get(8),
        idempotency_key: r.get(9),
        params: json(10),
        detail: json(11),
        response: r.get(12),
    }
}

fn history<C: postgres::GenericClient>(
    c: &mut C,
    subject: &str,
) -> Result<Vec<HistoryEntry>, StoreError> {
    let rows = c
        .query(
            &format!("SELECT {INBOX_COLUMNS} FROM inbox WHERE subject = $1 ORDER BY id"),
            &[&subject],
        )
        .map_err(unavailable)?;
    Ok(rows
        .iter()
        .map(|r| HistoryEntry::from(&inbox_row(r)))
        .collect())
}

pub fn loan_view(c: &mut Conn, no: &str) -> Result<Option<LoanView>, StoreError> {
    let (client, _) = client(c)?;
    // One snapshot, so the state and its history agree.
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(unavailable)?;
    let Some(row) = tx
        .query_opt(
            "SELECT status, app_key, customer_id, institution_loan_no, last_change_ms, needs_reconciliation, created_ms, updated_ms
             FROM loans WHERE loan_apply_no = $1",
            &[&no],
        )
        .map_err(unavailable)?
    else {
        return Ok(None);
    };
    let reasons: Vec<Flag> = tx
        .query(
            "SELECT flag FROM loan_flags WHERE loan_apply_no = $1 ORDER BY id",
            &[&no],
        )
        .map_err(unavailable)?
        .iter()
        .map(|r| serde_json::from_str(r.get::<_, &str>(0)).map_err(unavailable))
        .collect::<Result<_, _>>()?;
    let history = history(&mut tx, &loan::subject(no))?;
    tx.commit().map_err(unavailable)?;
    Ok(Some(LoanView {
        loan_apply_no: no.to_string(),
        status: row.get(0),
        app_key: row.get(1),
        customer_id: row.get(2),
        institution_loan_no: row.get(3),
        last_change_time: format_ms(row.get(4)),
        needs_reconciliation: row.get(5),
        reconciliation_reasons: reasons,
        created_at: format_ms(row.get(6)),
        updated_at: format_ms(row.get(7)),
        history,
    }))
}

pub fn process_view(c: &mut Conn, key: &ProcessKey) -> Result<Option<ProcessView>, StoreError> {
    let (client, _) = client(c)?;
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(unavailable)?;
    let Some(row) = tx
        .query_opt(
            "SELECT \"user\", user_id, status, submit_ms, complete_ms, fund_products, app_key, created_ms, updated_ms
             FROM processes WHERE channel_id = $1 AND process_type = $2 AND process_no = $3",
            &[&key.channel_id, &key.process_type, &key.process_no],
        )
        .map_err(unavailable)?
    else {
        return Ok(None);
    };
    let history = history(&mut tx, &key.subject())?;
    tx.commit().map_err(unavailable)?;
    Ok(Some(ProcessView {
        channel_id: key.channel_id.clone(),
        process_type: key.process_type.clone(),
        process_no: key.process_no.clone(),
        user: row.get(0),
        user_id: row.get(1),
        status: row.get(2),
        submit_time: row.get::<_, Option<i64>>(3).map(format_ms),
        complete_time: row.get::<_, Option<i64>>(4).map(format_ms),
        fund_products: list(row.get(5))?,
        app_key: row.get(6),
        created_at: format_ms(row.get(7)),
        updated_at: format_ms(row.get(8)),
        history,
    }))
}

pub fn inbox(c: &mut Conn, q: &InboxQuery) -> Result<Vec<InboxRecord>, StoreError> {
    let (client, _) = client(c)?;
    let mut sql = format!("SELECT {INBOX_COLUMNS} FROM inbox WHERE TRUE");
    let mut args: Vec<Box<dyn postgres::types::ToSql + Sync>> = Vec::new();
    if let Some(a) = &q.app_key {
        args.push(Box::new(a.clone()));
        sql.push_str(&format!(" AND app_key = ${}", args.len()));
    }
    if let Some(m) = &q.method {
        args.push(Box::new(m.clone()));
        sql.push_str(&format!(" AND method = ${}", args.len()));
    }
    if let Some(o) = q.outcome {
        args.push(Box::new(o.as_str().to_string()));
        sql.push_str(&format!(" AND outcome = ${}", args.len()));
    }
    if let Some(before) = q.before_id {
        args.push(Box::new(before));
        sql.push_str(&format!(" AND id < ${}", args.len()));
    }
    args.push(Box::new(i64::from(q.limit.clamp(1, 1000))));
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", args.len()));
    let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
        args.iter().map(|b| b.as_ref()).collect();
    let rows = client.query(&sql, &params).map_err(unavailable)?;
    Ok(rows.iter().map(inbox_row).collect())
}

pub fn inbox_call(c: &mut Conn, call_id: &str) -> Result<Option<InboxRecord>, StoreError> {
    let (client, _) = client(c)?;
    let row = client
        .query_opt(
            &format!("SELECT {INBOX_COLUMNS} FROM inbox WHERE call_id = $1"),
            &[&call_id],
        )
        .map_err(unavailable)?;
    Ok(row.as_ref().map(inbox_row))
}

pub fn inbox_missing(c: &mut Conn, ids: &[String]) -> Result<Vec<String>, StoreError> {
    let (client, _) = client(c)?;
    let rows = client
        .query(
            "SELECT wanted FROM unnest($1::text[]) AS wanted WHERE NOT EXISTS (SELECT 1 FROM inbox WHERE call_id = wanted)",
            &[&ids],
        )
        .map_err(unavailable)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
