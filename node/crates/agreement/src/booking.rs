//! Booking evidence: when a member may be paid again after a covered incident.
//!
//! A gap that remains after a covered incident opens `seq + 1`. If the member has not yet
//! booked what it was paid (its `solvency()` still shows the loss the payout covered), that
//! gap is the same loss, and paying it would pay one loss twice; a member that never books
//! (a bug, a compromised member, an adapter reading the wrong balance) would be paid again
//! at every attempt. So every node prices draw `seq + 1` only from books that show the
//! earlier payouts, by this rule.
//!
//! The previous covered draw was priced from the member's books showing gap `G` (its signed
//! `gap`), while `C` of earlier payouts was not yet in them (its *credit*, see below); the
//! vaults paid `P` for it (home leg plus the remote legs seen paid). At the newly pinned home
//! block the books show gap `g`; `tol = dust + (C + P) · tolerance_bps / 10 000` absorbs
//! rounding in the member's books.
//!
//! - **Booked** when `g + C + P ≤ G + tol`: the gap fell by at least everything paid (or the
//!   member is whole). The next draw is priced from `g`, with credit 0.
//! - **New loss** when `g > G + tol`: the gap grew although `P` was paid, so a loss arrived
//!   after the draw. Whatever the member booked, only `g − (C + P)` is a loss nobody has
//!   paid: the next draw is priced from that, and carries credit `C + P` (conservative: a
//!   member that did book gets the rest once its books show it).
//! - Once the books at a confirmed block showed the payout (booked), it stays booked: a
//!   later gap, even one as large as before, is a new loss (the node records this with the
//!   incident, so it survives restarts).
//! - **Not booked** otherwise (no change, or a partial booking): no draw. After
//!   `booking_timeout` a node raises the `PayoutNotBooked` signal, whose breaker freezes the
//!   member on every vault until an operator lift signed by t.
//!
//! The draw's signed `gap` is always the books' `g`, so the next comparison is made in the
//! books' terms.
//!
//! Invariants: every draw is priced from at most what the member's books show less every
//! payout they do not show, so payouts to a member never exceed the losses its books
//! showed; the rule depends only on signed draws, legs paid on chain and the pinned block,
//! so every honest node decides the same.

use alloy::primitives::U256;

use crate::state::{CloseReason, IncidentRecord};

/// Basis points in one.
const BPS: u64 = 10_000;

/// What was paid for a member's newest covered incident, as every node can know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payout {
    /// Seq of the covered draw.
    pub seq: u64,
    /// The gap the draw was priced from (its signed `gap`).
    pub gap: U256,
    /// What the vaults paid for it: the home leg and every remote leg seen paid.
    pub paid: U256,
    /// Earlier payouts the books did not show when the draw was priced.
    pub credit: U256,
    /// The books showed this payout at a confirmed block.
    pub booked: bool,
    /// When this node closed the incident (ms, node clock).
    pub closed_ms: u64,
}

impl Payout {
    /// The payout of a closed, covered incident record; `None` for any other record.
    /// `previous` is the member's payout before it (for the credit the draw was priced with).
    pub fn of_record(
        rec: &IncidentRecord,
        previous: Option<&Payout>,
        closed_ms: u64,
        dust: U256,
        tolerance_bps: u64,
    ) -> Option<Self> {
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
                    || rec
                        .legs_done
                        .iter()
                        .any(|v| v.chain_id == leg.chainId && v.address == leg.vault)
            })
            .fold(U256::ZERO, |sum, leg| sum.saturating_add(leg.amount));
        let credit = match previous {
            Some(p) if p.seq < rec.key.seq => match p.evidence(reg.draw.gap, dust, tolerance_bps) {
                Evidence::NewLoss { .. } => p.outstanding(),
                Evidence::Booked { .. } | Evidence::NotBooked { .. } => U256::ZERO,
            },
            _ => U256::ZERO,
        };
        Some(Self {
            seq: rec.key.seq,
            gap: reg.draw.gap,
            paid,
            credit,
            booked: rec.booked,
            closed_ms,
        })
    }

    /// Everything paid that the books did not show when this draw was priced: `C + P`.
    pub fn outstanding(&self) -> U256 {
        self.credit.saturating_add(self.paid)
    }

    /// The slack allowed for rounding in the member's books.
    pub fn tolerance(&self, dust: U256, tolerance_bps: u64) -> U256 {
        let share = self
            .outstanding()
            .saturating_mul(U256::from(tolerance_bps.min(BPS)))
            / U256::from(BPS);
        dust.saturating_add(share)
    }

    /// What the member's gap `gap_now` at a later block says about this payout.
    pub fn evidence(&self, gap_now: U256, dust: U256, tolerance_bps: u64) -> Evidence {
        if self.booked {
            return Evidence::Booked { gap: gap_now };
        }
        let tol = self.tolerance(dust, tolerance_bps);
        let ceiling = self.gap.saturating_add(tol);
        let outstanding = self.outstanding();
        if gap_now.saturating_add(outstanding) <= ceiling {
            Evidence::Booked { gap: gap_now }
        } else if gap_now > ceiling {
            Evidence::NewLoss {
                net_gap: gap_now - outstanding.min(gap_now),
            }
        } else {
            Evidence::NotBooked {
                shown: self.gap.saturating_sub(gap_now),
                paid: outstanding,
            }
        }
    }
}

/// The verdict of [`Payout::evidence`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// The books show the payout; the next draw is priced from `gap`.
    Booked {
        /// The member's gap now.
        gap: U256,
    },
    /// A loss arrived after the payout; the next draw is priced from `net_gap` (the gap
    /// less everything paid that the books may not show).
    NewLoss {
        /// The gap less the payout.
        net_gap: U256,
    },
    /// The books show `shown` of the `paid`: no draw.
    NotBooked {
        /// How much the gap fell since the payout's draw (zero when it did not).
        shown: U256,
        /// What was paid that the books must show (`C + P`).
        paid: U256,
    },
}

impl Evidence {
    /// The gap a next draw may be priced from, or `None` when no draw may be priced.
    pub fn priced_gap(&self) -> Option<U256> {
        match *self {
            Self::Booked { gap } => Some(gap),
            Self::NewLoss { net_gap } => Some(net_gap),
            Self::NotBooked { .. } => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DUST: u64 = 10;

    fn payout(gap: u64, paid: u64) -> Payout {
        Payout {
            seq: 0,
            gap: U256::from(gap),
            paid: U256::from(paid),
            credit: U256::ZERO,
            booked: false,
            closed_ms: 0,
        }
    }

    fn ev(p: &Payout, gap_now: u64) -> Evidence {
        p.evidence(U256::from(gap_now), U256::from(DUST), 10)
    }

    #[test]
    fn a_booked_payout_prices_the_residual_gap() {
        // Gap 300, 200 paid (deductible 100 borne): booked, the books show 100.
        let p = payout(300, 200);
        assert_eq!(
            ev(&p, 100),
            Evidence::Booked {
                gap: U256::from(100)
            }
        );
        assert_eq!(ev(&p, 0), Evidence::Booked { gap: U256::ZERO });
    }

    #[test]
    fn the_edges_of_the_tolerance() {
        // tol = dust 10 + 200 * 10 bps = 10 (the share rounds down to 0).
        let p = payout(300, 200);
        assert_eq!(p.tolerance(U256::from(DUST), 10), U256::from(10));
        assert_eq!(
            ev(&p, 110),
            Evidence::Booked {
                gap: U256::from(110)
            }
        );
        assert!(matches!(ev(&p, 111), Evidence::NotBooked { .. }));
        // Large payouts: 0.1 % of 1,000,000 is 1,000.
        let big = payout(3_000_000, 1_000_000);
        assert_eq!(big.tolerance(U256::from(DUST), 10), U256::from(1_010));
        assert!(matches!(ev(&big, 2_001_010), Evidence::Booked { .. }));
        assert!(matches!(ev(&big, 2_001_011), Evidence::NotBooked { .. }));
        // An absurd tolerance is clamped to 100 %.
        assert_eq!(big.tolerance(U256::ZERO, u64::MAX), U256::from(1_000_000));
    }

    #[test]
    fn an_unbooked_or_partly_booked_payout_prices_nothing() {
        let p = payout(300, 200);
        let never = ev(&p, 300);
        assert_eq!(
            never,
            Evidence::NotBooked {
                shown: U256::ZERO,
                paid: U256::from(200)
            }
        );
        assert_eq!(never.priced_gap(), None);
        assert_eq!(
            ev(&p, 200),
            Evidence::NotBooked {
                shown: U256::from(100),
                paid: U256::from(200)
            }
        );
        // Exactly at the ceiling G + tol: no new loss, not booked.
        assert!(matches!(ev(&p, 310), Evidence::NotBooked { .. }));
    }

    #[test]
    fn a_new_loss_is_priced_net_of_the_payout() {
        let p = payout(300, 200);
        // 311 > 300 + 10: a loss arrived; only 311 - 200 is unpaid.
        assert_eq!(
            ev(&p, 311),
            Evidence::NewLoss {
                net_gap: U256::from(111)
            }
        );
        assert_eq!(ev(&p, 1_000).priced_gap(), Some(U256::from(800)));
    }

    #[test]
    fn a_member_that_books_one_payout_of_two_is_not_paid_the_other_again() {
        // Seq 0: gap 300, 200 paid, never booked. A new loss of 100: the books show 400,
        // seq 1 is priced from 400 - 200 = 200 and pays 100 (credit 200).
        let p0 = payout(300, 200);
        assert_eq!(ev(&p0, 400).priced_gap(), Some(U256::from(200)));
        let p1 = Payout {
            seq: 1,
            gap: U256::from(400),
            paid: U256::from(100),
            credit: U256::from(200),
            booked: false,
            closed_ms: 0,
        };
        // Books that show only seq 1's 100: not booked (seq 0's 200 is still missing).
        assert!(matches!(ev(&p1, 300), Evidence::NotBooked { .. }));
        // Books that show both: booked, priced from what remains.
        assert_eq!(
            ev(&p1, 100),
            Evidence::Booked {
                gap: U256::from(100)
            }
        );
        // Unbooked still, and nothing new: no draw.
        assert!(matches!(ev(&p1, 400), Evidence::NotBooked { .. }));
    }

    #[test]
    fn once_booked_a_later_gap_is_a_new_loss() {
        // Booked at some block (gap back to 0), then a loss as large as the first.
        let mut p = payout(300, 200);
        assert!(matches!(ev(&p, 300), Evidence::NotBooked { .. }));
        p.booked = true;
        assert_eq!(
            ev(&p, 300),
            Evidence::Booked {
                gap: U256::from(300)
            }
        );
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
            }),
            legs_done: vec![remote],
            closed: None,
            booked: false,
        };
        let of = |rec: &IncidentRecord, prev: Option<&Payout>| {
            Payout::of_record(rec, prev, 5, U256::from(DUST), 10)
        };
        assert_eq!(of(&rec, None), None);
        rec.closed = Some(CloseReason::Resolved);
        assert_eq!(of(&rec, None), None);
        rec.closed = Some(CloseReason::Covered);
        // The leg on chain 3 expired unpaid: the member was paid 100 + 200.
        let p4 = of(&rec, None).unwrap();
        assert_eq!(
            p4,
            Payout {
                seq: 4,
                gap: U256::from(1_000),
                paid: U256::from(300),
                credit: U256::ZERO,
                booked: false,
                closed_ms: 5,
            }
        );
        // Seq 4 was priced after seq 3 (gap 600, 250 paid): 1,000 > 610 is a new loss, so
        // the 250 of seq 3 was credited; had the books shown 350, none was.
        let mut p3 = payout(600, 250);
        p3.seq = 3;
        assert_eq!(of(&rec, Some(&p3)).unwrap().credit, U256::from(250));
        assert_eq!(of(&rec, Some(&p3)).unwrap().outstanding(), U256::from(550));
        rec.registration.as_mut().unwrap().draw.gap = U256::from(350);
        assert_eq!(of(&rec, Some(&p3)).unwrap().credit, U256::ZERO);
    }
}
