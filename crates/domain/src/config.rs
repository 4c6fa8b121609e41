//! Vocabularies and transitions: configuration, with SPEC 2's defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DomainConfig {
    pub process: ProcessRules,
    pub loan: LoanRules,
}

/// Xianyu credit/loan processes (SPEC 2.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessRules {
    pub types: Vec<String>,
    pub statuses: Vec<String>,
    /// Statuses nothing leaves; the others may move to any status.
    pub terminal: Vec<String>,
}

/// Loan notes (SPEC 2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoanRules {
    pub statuses: Vec<String>,
    /// For each status, the statuses it may move to.
    pub transitions: BTreeMap<String, Vec<String>>,
    /// Allowed transitions that are reversals: applied, and the loan note flagged.
    pub reversals: BTreeMap<String, Vec<String>>,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl Default for ProcessRules {
    fn default() -> Self {
        ProcessRules {
            types: strings(&["CREDIT", "LOAN"]),
            statuses: strings(&["IN_PROCESSING", "SUCCESS", "FAIL"]),
            terminal: strings(&["SUCCESS", "FAIL"]),
        }
    }
}

impl Default for LoanRules {
    fn default() -> Self {
        let all = [
            "NEW",
            "NORMAL",
            "OVERDUE",
            "CLEARED",
            "WRITTEN_OFF",
            "CANCELLED",
        ];
        let others =
            |me: &str| strings(&all.iter().copied().filter(|s| *s != me).collect::<Vec<_>>());
        let mut transitions = BTreeMap::new();
        transitions.insert("NEW".into(), others("NEW"));
        transitions.insert("NORMAL".into(), others("NORMAL"));
        transitions.insert(
            "OVERDUE".into(),
            strings(&["NORMAL", "CLEARED", "WRITTEN_OFF"]),
        );
        transitions.insert("CLEARED".into(), strings(&["NORMAL", "OVERDUE"]));
        transitions.insert(
            "WRITTEN_OFF".into(),
            strings(&["NORMAL", "OVERDUE", "CLEARED"]),
        );
        transitions.insert("CANCELLED".into(), Vec::new());
        let mut reversals = BTreeMap::new();
        reversals.insert("CLEARED".into(), strings(&["NORMAL", "OVERDUE"]));
        reversals.insert(
            "WRITTEN_OFF".into(),
            strings(&["NORMAL", "OVERDUE", "CLEARED"]),
        );
        LoanRules {
            statuses: strings(&all),
            transitions,
            reversals,
        }
    }
}

impl DomainConfig {
    /// Every status named anywhere must be in its vocabulary; checked at start-up.
    pub fn validate(&self) -> Result<(), String> {
        let p = &self.process;
        if p.types.is_empty() || p.statuses.is_empty() {
            return Err("process.types and process.statuses must not be empty".into());
        }
        for t in &p.terminal {
            if !p.statuses.contains(t) {
                return Err(format!(
                    "process.terminal names `{t}`, which is not in process.statuses"
                ));
            }
        }
        let l = &self.loan;
        if l.statuses.is_empty() {
            return Err("loan.statuses must not be empty".into());
        }
        for (table, map) in [("transitions", &l.transitions), ("reversals", &l.reversals)] {
            for (from, tos) in map {
                for s in std::iter::once(from).chain(tos) {
                    if !l.statuses.contains(s) {
                        return Err(format!(
                            "loan.{table} names `{s}`, which is not in loan.statuses"
                        ));
                    }
                }
            }
        }
        for (from, tos) in &l.reversals {
            for to in tos {
                if !self.loan_transition_allowed(from, to) {
                    return Err(format!(
                        "loan.reversals names {from} → {to}, which loan.transitions does not allow"
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn loan_transition_allowed(&self, from: &str, to: &str) -> bool {
        self.loan
            .transitions
            .get(from)
            .is_some_and(|tos| tos.iter().any(|t| t == to))
    }

    pub fn loan_transition_is_reversal(&self, from: &str, to: &str) -> bool {
        self.loan
            .reversals
            .get(from)
            .is_some_and(|tos| tos.iter().any(|t| t == to))
    }

    pub fn process_status_is_terminal(&self, status: &str) -> bool {
        self.process.terminal.iter().any(|t| t == status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_follow_the_spec() {
        let c = DomainConfig::default();
        c.validate().unwrap();
        assert!(c.loan_transition_allowed("NEW", "OVERDUE"));
        assert!(c.loan_transition_allowed("OVERDUE", "CLEARED"));
        assert!(!c.loan_transition_allowed("OVERDUE", "CANCELLED"));
        assert!(!c.loan_transition_allowed("CANCELLED", "NORMAL"));
        assert!(c.loan_transition_is_reversal("CLEARED", "OVERDUE"));
        assert!(!c.loan_transition_is_reversal("NEW", "OVERDUE"));
    }

    #[test]
    fn a_transition_to_an_unknown_status_is_refused_at_start_up() {
        let mut c = DomainConfig::default();
        c.loan.transitions.insert("NEW".into(), vec!["PAID".into()]);
        assert!(c.validate().unwrap_err().contains("PAID"));
    }
}
