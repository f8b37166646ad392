//! Booking: when a member may be paid again after a covered incident.
//!
//! A gap that remains after a covered incident opens `seq + 1`. If the member has not yet
//! booked what it was paid, that gap is the loss the payout covered, and paying it would
//! pay one loss twice; a member that never books (a bug, a compromised member, an adapter
//! reading the wrong balance) would be paid again at every attempt.
//!
//! The gap alone cannot tell: a draw of 72,895 paid and booked followed by a new loss of
//! 50,859 leaves the same gap as 22,036 of the 72,895 booked and no new loss. So the member
//! *declares* what its books include: `bookedDraws()` on its `IBackstopMember` contract is
//! the number of its draws (seq 0 up) settled in its books, read with `solvency()` at the
//! same block, so the two always agree. A draw is settled when every leg is paid and
//! booked, or past the draw's `legDeadline` unpaid: a leg still payable would pay part of
//! the loss the books still show, so declaring while one is pending is a false declaration
//! (the simulation found it: a home block pinned five blocks behind the remote chains paid
//! a pending leg's share twice).
//!
//! The rule: draw `seq > 0` is priced only when the member's books at the draw's pinned home
//! block declare draw `seq - 1` booked (`bookedDraws() >= seq`), and then from the gap those
//! books show. A member without the view declares nothing: it is covered once, and never
//! again until it implements it. `booking_timeout` after a covered incident closed, a node
//! whose newest view of the member shows a gap and the payout undeclared raises
//! `PayoutNotBooked`, whose breaker freezes the member on every vault until an operator
//! lift signed by t.
//!
//! Invariants: the verdict depends only on state at the pinned home block, so every honest
//! node reading that block decides the same (nothing node-local, nothing remembered); a
//! declaration is a statement on chain, attributable to the member, and what a false one can
//! take is bounded by the vaults' coverage windows.

use alloy::primitives::U256;

use crate::state::{CloseReason, IncidentRecord};
use backstop_contracts::eip712::VaultId;

/// What was paid for a member's newest covered incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payout {
    /// Seq of the covered draw.
    pub seq: u64,
    /// What the vaults paid for it, as this node saw: the home leg and every remote leg
    /// seen paid (for operators; the rule does not use it).
    pub paid: U256,
    /// When this node closed the incident (ms, node clock).
    pub closed_ms: u64,
}

impl Payout {
    /// The payout of a closed, covered incident record; `None` for any other record.
    pub fn of_record(rec: &IncidentRecord, closed_ms: u64) -> Option<Self> {
        if rec.closed != Some(CloseReason::Covered) {
            return None;
        }
        let reg = rec.registration.as_ref()?;
        let home = rec.home.chain_id;
        let paid = reg
            .draw
            .legs
            .iter()
            .filter(|leg| {
                leg.chainId == home
                    || rec.legs_done.contains_key(&VaultId {
                        chain_id: leg.chainId,
                        address: leg.vault,
                    })
            })
            .fold(U256::ZERO, |sum, leg| sum.saturating_add(leg.amount));
        Some(Self {
            seq: rec.key.seq,
            paid,
            closed_ms,
        })
    }

    /// Whether books declaring `booked_draws` include this payout.
    pub fn is_booked(&self, booked_draws: Option<u64>) -> bool {
        booked_draws.is_some_and(|n| n > self.seq)
    }
}

/// Draw `seq` may not be priced: the books do not declare draw `seq - 1` booked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("payout of draw {previous} not booked: the member's books declare {}", declared_text(*.declared))]
pub struct NotBooked {
    /// The draw whose payout is missing.
    pub previous: u64,
    /// What the books declare (`None`: the member has no `bookedDraws()` view).
    pub declared: Option<u64>,
}

fn declared_text(declared: Option<u64>) -> String {
    match declared {
        None => "nothing (no bookedDraws() view)".into(),
        Some(n) => format!("{n} draw(s) booked"),
    }
}

/// The booking rule: whether draw `seq` may be priced from books declaring `booked_draws`.
pub fn check(seq: u64, booked_draws: Option<u64>) -> Result<(), NotBooked> {
    let Some(previous) = seq.checked_sub(1) else {
        return Ok(());
    };
    if booked_draws.is_some_and(|n| n >= seq) {
        Ok(())
    } else {
        Err(NotBooked {
            previous,
            declared: booked_draws,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_first_draw_needs_no_declaration() {
        assert_eq!(check(0, None), Ok(()));
        assert_eq!(check(0, Some(0)), Ok(()));
    }

    #[test]
    fn a_later_draw_needs_the_previous_one_declared() {
        assert_eq!(check(1, Some(1)), Ok(()));
        assert_eq!(check(5, Some(5)), Ok(()));
        // A member may declare ahead of what is registered: harmless, it is counted per seq.
        assert_eq!(check(5, Some(9)), Ok(()));
        let short = check(5, Some(4)).unwrap_err();
        assert_eq!(
            short,
            NotBooked {
                previous: 4,
                declared: Some(4)
            }
        );
        assert!(
            short.to_string().contains("declare 4 draw(s) booked"),
            "{short}"
        );
    }

    #[test]
    fn a_member_without_the_view_is_covered_once() {
        let e = check(1, None).unwrap_err();
        assert_eq!(e.previous, 0);
        assert!(e.to_string().contains("no bookedDraws() view"), "{e}");
        assert!(check(u64::MAX, None).is_err());
        assert!(check(u64::MAX, Some(u64::MAX)).is_ok());
    }

    #[test]
    fn a_payout_is_booked_once_declared() {
        let p = Payout {
            seq: 3,
            paid: U256::from(200),
            closed_ms: 0,
        };
        assert!(!p.is_booked(None));
        assert!(!p.is_booked(Some(3)));
        assert!(p.is_booked(Some(4)));
    }

    #[test]
    fn only_covered_records_carry_a_payout() {
        use crate::state::Registration;
        use crate::types::IncidentKey;
        use alloy::primitives::{Address, B256};
        use backstop_contracts::bindings::IBackstopVault::Leg;
        use backstop_contracts::eip712::{Draw, VaultId};

        let home = VaultId {
            chain_id: 1,
            address: Address::repeat_byte(1),
        };
        let remote = VaultId {
            chain_id: 2,
            address: Address::repeat_byte(2),
        };
        let late = VaultId {
            chain_id: 3,
            address: Address::repeat_byte(3),
        };
        let leg = |v: VaultId, amount: u64| Leg {
            chainId: v.chain_id,
            vault: v.address,
            amount: U256::from(amount),
        };
        let mut rec = IncidentRecord {
            key: IncidentKey {
                member: B256::repeat_byte(9),
                seq: 4,
            },
            home,
            opened_at: 0,
            attempt: 0,
            attempt_started: 0,
            registration: Some(Registration {
                draw_hash: B256::repeat_byte(7),
                draw: Draw {
                    member: B256::repeat_byte(9),
                    seq: 4,
                    gap: U256::from(1_000),
                    amount: U256::from(600),
                    legs: vec![leg(home, 100), leg(remote, 200), leg(late, 300)],
                    deadline: 0,
                    legDeadline: 0,
                },
                finalized: true,
                block: 1,
                rewound: false,
            }),
            legs_done: BTreeMap::from([(remote, 1)]),
            closed: None,
        };
        assert_eq!(Payout::of_record(&rec, 5), None);
        rec.closed = Some(CloseReason::Resolved);
        assert_eq!(Payout::of_record(&rec, 5), None);
        rec.closed = Some(CloseReason::Covered);
        // The leg on chain 3 expired unpaid: the member was paid 100 + 200.
        assert_eq!(
            Payout::of_record(&rec, 5),
            Some(Payout {
                seq: 4,
                paid: U256::from(300),
                closed_ms: 5,
            })
        );
    }
}
