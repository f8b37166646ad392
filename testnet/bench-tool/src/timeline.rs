//! Reading an incident's timeline (the `timeline` of `backstop.v1.Incident`): the node's
//! journal writes one line per step (`node/src/journal.rs`), e.g. "gap of … seen",
//! "attempt N: node X proposed …", "certificate over …", "registration sent to chain C",
//! "registered on chain C in 0x… (draw 0x…)", "leg of A paid on chain C in 0x…",
//! "closed: covered".

use backstop_api::proto::{Incident, TimelineEntry};

/// A step of an incident's timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// "gap of … seen".
    GapSeen,
    /// "attempt N: node X proposed …".
    Proposed,
    /// "certificate over …".
    Certificate,
    /// "registration sent to chain C".
    RegistrationSent,
    /// "registered on chain C in …": the home leg is paid by the registration.
    Registered,
    /// "leg of A paid on chain C in …": a remote leg.
    LegPaid,
    /// "closed: …".
    Closed,
}

impl Step {
    /// Whether `what` is this step.
    pub fn matches(self, what: &str) -> bool {
        match self {
            Step::GapSeen => what.starts_with("gap of ") && what.ends_with(" seen"),
            Step::Proposed => what.starts_with("attempt ") && what.contains(" proposed "),
            Step::Certificate => what.starts_with("certificate over "),
            Step::RegistrationSent => what.starts_with("registration sent to chain "),
            Step::Registered => what.starts_with("registered on chain "),
            Step::LegPaid => what.starts_with("leg of ") && what.contains(" paid on chain "),
            Step::Closed => what.starts_with("closed: "),
        }
    }
}

/// The first entry of `step`.
pub fn first(inc: &Incident, step: Step) -> Option<&TimelineEntry> {
    inc.timeline.iter().find(|e| step.matches(&e.what))
}

/// Time (ms since the epoch) of the first entry of `step`.
pub fn first_ms(inc: &Incident, step: Step) -> Option<f64> {
    first(inc, step).map(|e| e.timestamp_ms as f64)
}

/// The chain a "registered on chain C …" or "leg of … paid on chain C …" line names.
pub fn chain_of(what: &str) -> Option<u64> {
    let rest = what
        .split_once("registered on chain ")
        .or_else(|| what.split_once("paid on chain "))?
        .1;
    rest.split_whitespace().next()?.parse().ok()
}

/// A leg seen paid: (time ms, chain, block).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LegSeen {
    /// Node time (ms since the epoch).
    pub at_ms: f64,
    /// Paying chain.
    pub chain_id: u64,
    /// Block of the paying transaction.
    pub block: Option<u64>,
}

/// Every leg the timeline reports paid: the home leg (with the registration) and the
/// remote legs.
pub fn legs_paid(inc: &Incident) -> Vec<LegSeen> {
    inc.timeline
        .iter()
        .filter(|e| Step::Registered.matches(&e.what) || Step::LegPaid.matches(&e.what))
        .filter_map(|e| {
            Some(LegSeen {
                at_ms: e.timestamp_ms as f64,
                chain_id: chain_of(&e.what)?,
                block: e.block_number,
            })
        })
        .collect()
}

/// The leg seen paid last.
pub fn last_leg(inc: &Incident) -> Option<LegSeen> {
    legs_paid(inc)
        .into_iter()
        .max_by(|a, b| a.at_ms.total_cmp(&b.at_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_chains() {
        assert!(Step::GapSeen.matches("gap of 16100000000 seen"));
        assert!(Step::Proposed.matches("attempt 0: node 2 proposed 16000000000 over 3 legs"));
        assert!(Step::RegistrationSent.matches("registration sent to chain 31337"));
        assert_eq!(
            chain_of("registered on chain 31337 in 0xab (draw 0xcd)"),
            Some(31337)
        );
        assert_eq!(
            chain_of("leg of 3 paid on chain 31339 in 0xab"),
            Some(31339)
        );
        assert!(!Step::LegPaid.matches("registered on chain 31337 in 0xab (draw 0xcd)"));
    }
}
