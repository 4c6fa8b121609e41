//! Bulk data for benchmarks: loan notes as if `n` notifications had been applied, so that the
//! cost of a call can be compared between an empty database and a large one.

use std::path::Path;

use rusqlite::params;

use super::{migrate, open_connection, DB_FILE};
use crate::StoreError;

/// Inserts `n` loan notes owned by `app_key`, each with its idempotency record and inbox entry,
/// in transactions of 50,000.
pub fn seed_loans(dir: &Path, app_key: &str, n: u64, tag: &str) -> Result<(), StoreError> {
    let mut conn = open_connection(&dir.join(DB_FILE), std::time::Duration::from_secs(30))?;
    migrate(&mut conn)?;
    // Bulk loading does not need a sync per transaction; the gateway sets FULL again on open.
    conn.pragma_update(None, "synchronous", "OFF")?;
    let now = crate::now_ms();
    let mut i = 0u64;
    while i < n {
        let tx = conn.transaction()?;
        {
            let mut loan = tx.prepare_cached(
                "INSERT INTO loans (loan_apply_no, status, app_key, customer_id, institution_loan_no,
                     last_change_ms, needs_reconciliation, created_ms, updated_ms)
                 VALUES (?1, 'NORMAL', ?2, ?3, ?4, 1704038400000, 0, ?5, ?5)",
            )?;
            let mut idem = tx.prepare_cached(
                "INSERT INTO idempotency (app_key, request_id, fingerprint, response, created_ms)
                 VALUES (?1, ?2, ?3, '{}', ?4)",
            )?;
            let mut inbox = tx.prepare_cached(
                "INSERT INTO inbox (call_id, received_ms, app_key, method, params, outcome, subject,
                     idempotency_key, detail, response)
                 VALUES (?1, ?2, ?3, 'alibaba.finance.xfd.loan.change.notify', '{}', 'applied', ?4, ?5, '{}', '')",
            )?;
            let end = (i + 50_000).min(n);
            while i < end {
                let no = format!("{tag}-S{i}");
                let rid = format!("{tag}-SR{i}");
                loan.execute(params![no, app_key, format!("C{i}"), format!("I{i}"), now])?;
                idem.execute(params![app_key, rid, format!("{i:064x}"), now])?;
                inbox.execute(params![
                    format!("{tag}-seed-{i}"),
                    now,
                    app_key,
                    format!("loan:{no}"),
                    rid
                ])?;
                i += 1;
            }
        }
        tx.commit()?;
    }
    let (last, upto) = super::subjects::marks(&conn)?;
    super::subjects::index_tail(&conn, upto, last)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}
