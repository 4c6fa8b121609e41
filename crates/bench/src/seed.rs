//! Bulk data for benchmarks: loan notes as if `n` notifications had been applied, so that the
//! cost of a call can be compared between an empty database and a large one. Written straight
//! into the gateway's schema (created beforehand by opening the store), far faster than calls.

use std::path::Path;

use loanwire_store::sqlite::{SqliteStore, DB_FILE};
use loanwire_store::StoreError;
use loanwire_top::time::now_ms;

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Inserts `n` loan notes owned by `app_key` into the SQLite database in `dir`, each with its
/// idempotency record and inbox entry, in transactions of 50,000.
pub fn sqlite(dir: &Path, app_key: &str, n: u64, tag: &str) -> Result<(), StoreError> {
    let mut conn = rusqlite::Connection::open(dir.join(DB_FILE)).map_err(unavailable)?;
    // Bulk loading does not need a sync per transaction; the gateway sets its own on open.
    conn.pragma_update(None, "synchronous", "OFF")
        .map_err(unavailable)?;
    let now = now_ms();
    let mut i = 0u64;
    while i < n {
        let end = (i + 50_000).min(n);
        let tx = conn.transaction().map_err(unavailable)?;
        {
            let mut loan = tx
                .prepare_cached(
                    "INSERT INTO loans (loan_apply_no, status, app_key, customer_id, institution_loan_no,
                         last_change_ms, needs_reconciliation, created_ms, updated_ms)
                     VALUES (?1, 'NORMAL', ?2, ?3, ?4, 1704038400000, 0, ?5, ?5)",
                )
                .map_err(unavailable)?;
            let mut idem = tx
                .prepare_cached(
                    "INSERT INTO idempotency (app_key, request_id, fingerprint, response, created_ms)
                     VALUES (?1, ?2, ?3, '{}', ?4)",
                )
                .map_err(unavailable)?;
            let mut inbox = tx
                .prepare_cached(
                    "INSERT INTO inbox (call_id, received_ms, app_key, method, params, outcome, subject,
                         idempotency_key, detail, response)
                     VALUES (?1, ?2, ?3, 'alibaba.finance.xfd.loan.change.notify', '{}', 'applied', ?4, ?5, '{}', '')",
                )
                .map_err(unavailable)?;
            while i < end {
                let no = format!("{tag}-S{i}");
                let rid = format!("{tag}-SR{i}");
                loan.execute(rusqlite::params![
                    no,
                    app_key,
                    format!("C{i}"),
                    format!("I{i}"),
                    now
                ])
                .map_err(unavailable)?;
                idem.execute(rusqlite::params![app_key, rid, format!("{i:064x}"), now])
                    .map_err(unavailable)?;
                inbox
                    .execute(rusqlite::params![
                        format!("{tag}-seed-{i}"),
                        now,
                        app_key,
                        format!("loan:{no}"),
                        rid
                    ])
                    .map_err(unavailable)?;
                i += 1;
            }
        }
        tx.commit().map_err(unavailable)?;
    }
    drop(conn);
    SqliteStore::index_all_subjects(dir)
}

/// The same on PostgreSQL, set-based.
pub fn postgres(url: &str, app_key: &str, n: u64, tag: &str) -> Result<(), StoreError> {
    let (url, app_key, tag) = (url.to_string(), app_key.to_string(), tag.to_string());
    // The blocking client must not run on the async runtime's threads.
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).map_err(unavailable)?;
        let now = now_ms();
        let n = n as i64;
        let args: [&(dyn postgres::types::ToSql + Sync); 4] = [&app_key, &n, &tag, &now];
        client
            .execute(
                "INSERT INTO loans (loan_apply_no, status, app_key, customer_id, institution_loan_no,
                     last_change_ms, needs_reconciliation, created_ms, updated_ms)
                 SELECT $3 || '-S' || i, 'NORMAL', $1, 'C' || i, 'I' || i, 1704038400000, FALSE, $4, $4
                 FROM generate_series(0, $2::bigint - 1) AS i",
                &args,
            )
            .map_err(unavailable)?;
        client
            .execute(
                "INSERT INTO idempotency (app_key, request_id, fingerprint, response, created_ms)
                 SELECT $1, $3 || '-SR' || i, md5(i::text), '{}', $4 FROM generate_series(0, $2::bigint - 1) AS i",
                &args,
            )
            .map_err(unavailable)?;
        client
            .execute(
                "INSERT INTO inbox (call_id, received_ms, app_key, method, params, outcome, subject,
                     idempotency_key, detail, response)
                 SELECT $3 || '-seed-' || i, $4, $1, 'alibaba.finance.xfd.loan.change.notify', '{}', 'applied',
                        'loan:' || $3 || '-S' || i, $3 || '-SR' || i, '{}', ''
                 FROM generate_series(0, $2::bigint - 1) AS i",
                &args,
            )
            .map_err(unavailable)?;
        // Measure the steady state, not the bulk load's aftermath: vacuum and flush it now
        // rather than have autovacuum and a checkpoint storm run during the benchmark.
        client
            .batch_execute("VACUUM (ANALYZE) loans, idempotency, inbox")
            .map_err(unavailable)?;
        let _ = client.batch_execute("CHECKPOINT");
        Ok(())
    })
    .join()
    .map_err(|_| unavailable("seeding panicked"))?
}
