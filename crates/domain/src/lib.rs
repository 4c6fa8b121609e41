//! The loan domain of SPEC section 2, as pure decisions: given what is stored and what a call
//! reports, what happens. Storage backends run these decisions inside their transactions, so
//! every backend applies the same rules.

pub mod config;
pub mod idempotency;
pub mod loan;
pub mod process;

pub use config::DomainConfig;

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
