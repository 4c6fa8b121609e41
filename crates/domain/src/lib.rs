//! The loan domain of SPEC section 2, as pure decisions: given what is stored and what a call
//! reports, what happens. Storage backends run these decisions inside their transactions, so
//! every backend applies the same rules.
//!
//! The domain speaks its own words: a report is first made [`valid`](process::validate) (or
//! [`Invalid`]), and only a valid one can be decided on; a decision refuses with a [`Refusal`]
//! and its business code. What the caller is answered — TOP codes, envelopes — is the gateway's
//! business.

pub mod config;
pub mod idempotency;
pub mod loan;
pub mod process;

pub use config::DomainConfig;

/// A report that breaks a rule needing no stored state: an unknown status, reversed times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The field at fault, as the report names it (`status`, `change_time` …).
    pub field: &'static str,
    pub reason: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// The earliest time a report may carry: nothing this platform tracks happened before it, and
/// a time such as `0000-01-01 00:00:00` is a client's placeholder, not a date.
pub fn earliest_plausible_time() -> loanwire_top::TopDateTime {
    // 2000-01-01 00:00:00 in GMT+8, as epoch milliseconds: a constant, not text to parse on
    // every call.
    loanwire_top::TopDateTime::from_epoch_millis(946_656_000_000).expect("in range")
}

/// Refuses a time before [`earliest_plausible_time`].
pub(crate) fn check_plausible(
    field: &'static str,
    t: loanwire_top::TopDateTime,
) -> Result<(), Invalid> {
    let earliest = earliest_plausible_time();
    if t < earliest {
        return Err(Invalid {
            field,
            reason: format!("{field} {t} is before {earliest}, the earliest time accepted"),
        });
    }
    Ok(())
}

/// A report understood but refused: its business code (`USER_MISMATCH` …) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_earliest_plausible_time_is_2000_01_01_in_gmt8() {
        assert_eq!(
            super::earliest_plausible_time().format(),
            "2000-01-01 00:00:00"
        );
    }
}

/// What a call did, as recorded in the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The state changed.
    Applied,
    /// It repeated what is already known; acknowledged, nothing changed.
    Duplicate,
    /// An out-of-order delivery older than the state; acknowledged, not applied.
    Stale,
    /// Refused: an error answer or `success=false`.
    Refused,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Applied,
        Outcome::Duplicate,
        Outcome::Stale,
        Outcome::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Stale => "stale",
            Outcome::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
