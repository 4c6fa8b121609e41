//! Histories by subject, with the subject index built in bulk (migration 0002).
//!
//! Recording a call does not touch the subject index; the writer indexes the inbox's tail a
//! chunk at a time (`index_tail`), inside a batch's transaction, so the index and its high-water
//! mark `inbox_subjects_upto` always commit together. A history is what the index holds plus a
//! scan of the tail beyond the mark, which is never much longer than a chunk.

use rusqlite::{params, Connection, OptionalExtension};

/// The highest inbox id, and how far the subject index reaches.
pub(super) fn marks(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    let last: i64 = conn.query_row("SELECT coalesce(max(id), 0) FROM inbox", [], |r| r.get(0))?;
    let upto: Option<i64> = conn
        .query_row("SELECT id FROM inbox_subjects_upto", [], |r| r.get(0))
        .optional()?;
    Ok((last, upto.unwrap_or(0)))
}

/// Indexes the subjects of inbox records `after < id <= upto`, in key order so that each index
/// page is written once per chunk however many of the chunk's calls land on it. The entries and
/// the new mark go in together or not at all (an entry beyond the mark would be read twice): the
/// caller runs this first in its transaction and rolls the transaction back if it fails. Neither
/// a savepoint nor a statement journal is needed for that — and either one copies every index
/// page the chunk touches into the sub-journal first, close to half of the step's cost.
/// `OR FAIL` is what spares the statement journal; the keys are new, so it never fires.
pub(super) fn index_tail(conn: &Connection, after: i64, upto: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR FAIL INTO inbox_subjects (subject, id)
         SELECT subject, id FROM inbox
         WHERE id > ?1 AND id <= ?2 AND subject IS NOT NULL
         ORDER BY subject, id",
    )?
    .execute(params![after, upto])?;
    conn.prepare_cached("UPDATE inbox_subjects_upto SET id = ?1 WHERE only = 1")?
        .execute(params![upto])?;
    Ok(())
}

/// The ids of a subject's inbox records, oldest first, as one SQL fragment to select by.
pub(super) const SUBJECT_IDS: &str = "
    SELECT id FROM inbox_subjects WHERE subject = ?1
    UNION ALL
    SELECT id FROM inbox WHERE id > (SELECT id FROM inbox_subjects_upto) AND subject = ?1";
