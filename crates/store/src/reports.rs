//! What the console and the reconciliation report read (SPEC 4): calls counted per minute,
//! loan notes flagged for reconciliation, processes stuck in `IN_PROCESSING`, resolutions, and
//! the console's sign-in sessions. The rules live here once; each backend holds only its SQL
//! ([`ReportRows`]).

use std::collections::BTreeMap;

use async_trait::async_trait;
use loanwire_domain::loan::Flag;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::backend::{in_transaction, Backend, Queries};
use crate::rows::{flag_from_json, AuditRow};
use crate::{Actor, AuditNote, StoreError, StoreResult};
use loanwire_top::time::format_ms;

/// The outcome under which calls refused before authentication are counted (the inbox does
/// not hold them).
pub const REJECTED: &str = "rejected";

/// The most inbox rows one roll-up pass counts: a pass is one short write transaction.
pub const ROLL_BATCH: i64 = 5_000;

/// Calls of one minute, app, outcome and code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MinuteCount {
    pub minute_ms: i64,
    pub app_key: String,
    pub outcome: String,
    /// The TOP error code or the business code; empty for none.
    pub code: String,
    pub n: i64,
    /// The minute's inbox ids (0 for `rejected`).
    #[serde(skip)]
    pub first_id: i64,
    #[serde(skip)]
    pub last_id: i64,
}

/// What a roll-up pass reads of one inbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailRow {
    pub id: i64,
    pub received_ms: i64,
    pub app_key: String,
    pub outcome: String,
    pub error_code: Option<i64>,
    pub biz_code: Option<String>,
}

/// A loan note flagged for reconciliation, as the backend reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlaggedRow {
    pub loan_apply_no: String,
    pub status: String,
    pub app_key: String,
    pub updated_ms: i64,
    /// The open flags, oldest first, as stored (JSON).
    pub flags: Vec<String>,
}

/// A loan note that needs reconciliation.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FlaggedLoan {
    pub loan_apply_no: String,
    /// The status the platform holds now.
    pub status: String,
    /// The app (institution) that reports it.
    pub app_key: String,
    /// When the oldest open flag was raised (the reported change's time).
    pub since: String,
    pub updated_at: String,
    #[schema(value_type = Vec<Object>)]
    pub flags: Vec<Flag>,
    #[serde(skip)]
    pub updated_ms: i64,
}

/// A process in `IN_PROCESSING` for longer than the report's limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StuckProcess {
    pub channel_id: String,
    #[serde(rename = "type")]
    pub process_type: String,
    pub process_no: String,
    pub status: String,
    pub app_key: String,
    /// When it last changed (it has been `IN_PROCESSING` since at least then).
    pub since: String,
    #[serde(skip)]
    pub updated_ms: i64,
}

/// A console sign-in. Only a hash of the cookie's value is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id_hash: String,
    pub token_id: String,
    pub csrf: String,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// What resolving a loan note found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    NoLoan,
    NotFlagged,
    /// The open flags it resolved (JSON), oldest first.
    Flags(Vec<String>),
}

/// Where a page of flagged loan notes starts: below this `(updated_ms, loan_apply_no)`.
pub type Cursor = Option<(i64, String)>;

/// The report's SQL, in each backend's dialect.
pub trait ReportRows {
    /// Inbox ids up to this one are counted in `call_minutes`.
    fn minutes_upto(&mut self) -> StoreResult<i64>;
    fn set_minutes_upto(&mut self, id: i64) -> StoreResult<()>;
    /// Inbox rows past `after_id`, in id order, at most `limit`.
    fn inbox_tail(&mut self, after_id: i64, limit: i64) -> StoreResult<Vec<TailRow>>;
    /// Adds the counts to what is stored for their minute, app, outcome and code.
    fn add_minutes(&mut self, counts: &[MinuteCount]) -> StoreResult<()>;
    fn prune_minutes(&mut self, before_ms: i64) -> StoreResult<u64>;
    /// Counts of the minutes in `[from_ms, to_ms)`.
    fn minutes(&mut self, from_ms: i64, to_ms: i64) -> StoreResult<Vec<MinuteCount>>;
    /// How long after it was received an inbox row may still commit below a higher id: a
    /// backend that numbers rows as it inserts them, not as it commits, counts a row only once
    /// this long has passed.
    fn settle_ms(&self) -> i64 {
        0
    }

    /// Flagged loan notes, most recently changed first, below the `(updated_ms,
    /// loan_apply_no)` cursor.
    fn flagged_loans(&mut self, before: Cursor, limit: i64) -> StoreResult<Vec<FlaggedRow>>;
    /// Processes in `IN_PROCESSING` last changed before `before_ms`, oldest first.
    fn stuck_processes(&mut self, before_ms: i64, limit: i64) -> StoreResult<Vec<StuckProcess>>;
    /// Clears the loan note's flag and marks its open flags resolved at `at_ms`.
    fn resolve_loan(&mut self, loan_apply_no: &str, at_ms: i64) -> StoreResult<Resolved>;

    fn insert_session(&mut self, s: &SessionRow) -> StoreResult<()>;
    fn session(&mut self, id_hash: &str) -> StoreResult<Option<SessionRow>>;
    fn delete_session(&mut self, id_hash: &str) -> StoreResult<()>;
    fn prune_sessions(&mut self, now_ms: i64) -> StoreResult<u64>;
}

/// The code a call is counted under: its TOP error code, else its business code.
fn code_of(error_code: Option<i64>, biz_code: Option<&str>) -> String {
    match (error_code, biz_code) {
        (Some(c), _) => c.to_string(),
        (None, Some(b)) => b.to_string(),
        (None, None) => String::new(),
    }
}

fn minute_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(60_000)
}

/// Counts rows by minute, app, outcome and code, keeping each group's id range.
fn count(rows: &[TailRow]) -> Vec<MinuteCount> {
    let mut groups: BTreeMap<(i64, &str, &str, String), MinuteCount> = BTreeMap::new();
    for r in rows {
        let code = code_of(r.error_code, r.biz_code.as_deref());
        let key = (
            minute_of(r.received_ms),
            r.app_key.as_str(),
            r.outcome.as_str(),
            code.clone(),
        );
        let c = groups.entry(key).or_insert_with(|| MinuteCount {
            minute_ms: minute_of(r.received_ms),
            app_key: r.app_key.clone(),
            outcome: r.outcome.clone(),
            code,
            n: 0,
            first_id: r.id,
            last_id: r.id,
        });
        c.n += 1;
        c.first_id = c.first_id.min(r.id);
        c.last_id = c.last_id.max(r.id);
    }
    groups.into_values().collect()
}

/// One roll-up pass: counts the settled part of the inbox's next rows; how many it counted.
pub fn roll_up(q: &mut dyn ReportRows, now_ms: i64) -> StoreResult<usize> {
    let upto = q.minutes_upto()?;
    let settled_before = now_ms - q.settle_ms();
    let mut rows = q.inbox_tail(upto, ROLL_BATCH)?;
    if let Some(cut) = rows.iter().position(|r| r.received_ms >= settled_before) {
        rows.truncate(cut);
    }
    let Some(last) = rows.last().map(|r| r.id) else {
        return Ok(0);
    };
    q.add_minutes(&count(&rows))?;
    q.set_minutes_upto(last)?;
    Ok(rows.len())
}

/// Rejections counted in memory, keyed by minute, app and code, as stored counts.
pub fn rejections(counts: &BTreeMap<(i64, String, String), i64>) -> Vec<MinuteCount> {
    counts
        .iter()
        .map(|((minute, app, code), n)| MinuteCount {
            minute_ms: minute_of(*minute),
            app_key: app.clone(),
            outcome: REJECTED.into(),
            code: code.clone(),
            n: *n,
            first_id: 0,
            last_id: 0,
        })
        .collect()
}

fn flagged(row: FlaggedRow) -> StoreResult<FlaggedLoan> {
    let flags = row
        .flags
        .iter()
        .map(|f| flag_from_json(f))
        .collect::<StoreResult<Vec<Flag>>>()?;
    let since = flags
        .iter()
        .map(|f| f.change_time.to_string())
        .min()
        .unwrap_or_else(|| format_ms(row.updated_ms));
    Ok(FlaggedLoan {
        loan_apply_no: row.loan_apply_no,
        status: row.status,
        app_key: row.app_key,
        since,
        updated_at: format_ms(row.updated_ms),
        flags,
        updated_ms: row.updated_ms,
    })
}

/// The audit target of a loan note's resolutions (read back into its history).
pub fn loan_target(loan_apply_no: &str) -> String {
    format!("loan:{loan_apply_no}")
}

#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Counts the inbox's next rows into `call_minutes` and adds the given rejections, in one
    /// write; how many inbox rows it counted (fewer than [`ROLL_BATCH`]: it has caught up).
    async fn roll_up(&self, rejected: Vec<MinuteCount>, now_ms: i64) -> StoreResult<usize>;
    /// Removes counts and expired sessions older than `before_ms`.
    async fn prune_reports(&self, before_ms: i64, now_ms: i64) -> StoreResult<()>;
    async fn minutes(&self, from_ms: i64, to_ms: i64) -> StoreResult<Vec<MinuteCount>>;
    /// The inbox ids of `[from_ms, to_ms)` as far as the counts know them: `(after, before)`
    /// bounds for an inbox query.
    async fn id_range(&self, from_ms: i64, to_ms: i64) -> StoreResult<(Option<i64>, Option<i64>)>;
    async fn flagged_loans(&self, before: Cursor, limit: u32) -> StoreResult<Vec<FlaggedLoan>>;
    async fn stuck_processes(&self, before_ms: i64, limit: u32) -> StoreResult<Vec<StuckProcess>>;
    /// Resolves a flagged loan note with a note: clears its flag and records who resolved what
    /// in the admin audit (which the loan note's history shows), in one commit.
    async fn resolve_loan(&self, loan_apply_no: &str, note: &str, by: &Actor)
        -> StoreResult<usize>;

    async fn create_session(&self, s: &SessionRow) -> StoreResult<()>;
    async fn session(&self, id_hash: &str) -> StoreResult<Option<SessionRow>>;
    async fn end_session(&self, id_hash: &str) -> StoreResult<()>;
}

#[async_trait]
impl<B: Backend> ReportStore for B {
    async fn roll_up(&self, rejected: Vec<MinuteCount>, now_ms: i64) -> StoreResult<usize> {
        self.write_rows(move |rows| {
            if !rejected.is_empty() {
                rows.add_minutes(&rejected)?;
            }
            roll_up(rows, now_ms)
        })
        .await
    }

    async fn prune_reports(&self, before_ms: i64, now_ms: i64) -> StoreResult<()> {
        self.write_rows(move |rows| {
            rows.prune_minutes(before_ms)?;
            rows.prune_sessions(now_ms)?;
            Ok(())
        })
        .await
    }

    async fn minutes(&self, from_ms: i64, to_ms: i64) -> StoreResult<Vec<MinuteCount>> {
        self.query(move |q| q.minutes(from_ms, to_ms)).await
    }

    async fn id_range(&self, from_ms: i64, to_ms: i64) -> StoreResult<(Option<i64>, Option<i64>)> {
        let counts = self
            .query(move |q| q.minutes(minute_of(from_ms), to_ms))
            .await?;
        let ids = counts.iter().filter(|c| c.outcome != REJECTED);
        let after = ids.clone().map(|c| c.first_id).min().map(|id| id - 1);
        let before = ids.map(|c| c.last_id).max().map(|id| id + 1);
        Ok((after, before))
    }

    async fn flagged_loans(&self, before: Cursor, limit: u32) -> StoreResult<Vec<FlaggedLoan>> {
        let rows = self
            .query(move |q| q.flagged_loans(before, i64::from(limit.clamp(1, 1000))))
            .await?;
        rows.into_iter().map(flagged).collect()
    }

    async fn stuck_processes(&self, before_ms: i64, limit: u32) -> StoreResult<Vec<StuckProcess>> {
        self.query(move |q| q.stuck_processes(before_ms, i64::from(limit.clamp(1, 1000))))
            .await
    }

    async fn resolve_loan(
        &self,
        loan_apply_no: &str,
        note: &str,
        by: &Actor,
    ) -> StoreResult<usize> {
        let (no, note, by) = (loan_apply_no.to_string(), note.to_string(), by.clone());
        self.query(move |q| {
            in_transaction(q, |q| {
                let now = loanwire_top::time::now_ms();
                let flags = match q.resolve_loan(&no, now)? {
                    Resolved::Flags(flags) => flags,
                    Resolved::NoLoan => {
                        return Err(StoreError::Invalid(format!("no loan note `{no}`")))
                    }
                    Resolved::NotFlagged => {
                        return Err(StoreError::Invalid(format!(
                            "loan note `{no}` is not flagged for reconciliation"
                        )))
                    }
                };
                let flags = flags
                    .iter()
                    .map(|f| flag_from_json(f))
                    .collect::<StoreResult<Vec<Flag>>>()?;
                let detail = json!({ "note": note, "resolved": flags });
                let audit = AuditNote::new("loan.resolve", &loan_target(&no), detail);
                q.append_audit(&AuditRow::of(&audit, &by, now))?;
                Ok(flags.len())
            })
        })
        .await
    }

    async fn create_session(&self, s: &SessionRow) -> StoreResult<()> {
        let s = s.clone();
        self.query(move |q| q.insert_session(&s)).await
    }

    async fn session(&self, id_hash: &str) -> StoreResult<Option<SessionRow>> {
        let h = id_hash.to_string();
        self.query(move |q| q.session(&h)).await
    }

    async fn end_session(&self, id_hash: &str) -> StoreResult<()> {
        let h = id_hash.to_string();
        self.query(move |q| q.delete_session(&h)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, ms: i64, outcome: &str, code: Option<i64>) -> TailRow {
        TailRow {
            id,
            received_ms: ms,
            app_key: "a".into(),
            outcome: outcome.into(),
            error_code: code,
            biz_code: None,
        }
    }

    #[test]
    fn rows_are_counted_by_minute_outcome_and_code_with_their_id_range() {
        let rows = [
            row(1, 60_000, "applied", None),
            row(2, 61_000, "applied", None),
            row(3, 119_999, "refused", Some(41)),
            row(4, 120_000, "applied", None),
        ];
        let c = count(&rows);
        assert_eq!(c.len(), 3);
        assert_eq!(
            (c[0].minute_ms, c[0].n, c[0].first_id, c[0].last_id),
            (60_000, 2, 1, 2)
        );
        assert_eq!(
            (c[1].outcome.as_str(), c[1].code.as_str()),
            ("refused", "41")
        );
        assert_eq!((c[2].minute_ms, c[2].n), (120_000, 1));
    }
}
