//! Transaction policies of a submitter: nonce tracking and EIP-1559 fee bumping (sans-IO).
//!
//! [`NonceTracker`] keeps the next nonce of one signer. It starts unknown (after a restart the
//! submitter must read the chain's pending nonce), advances only when a transaction was
//! accepted by the node, and is overwritten by the chain's pending nonce after a "nonce too
//! low" answer. [`FeePolicy`] gives the first fees and the bumped fees of a stuck transaction:
//! each bump raises both fields by at least the configured percentage (nodes refuse a
//! replacement that is not at least 10% dearer) and never goes above the configured cap.

/// EIP-1559 fees of one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fees {
    /// `maxFeePerGas`.
    pub max_fee_per_gas: u128,
    /// `maxPriorityFeePerGas`.
    pub max_priority_fee_per_gas: u128,
}

/// Next nonce of one signer.
#[derive(Clone, Debug, Default)]
pub struct NonceTracker {
    next: Option<u64>,
}

impl NonceTracker {
    /// The nonce to use next, if known.
    pub fn next(&self) -> Option<u64> {
        self.next
    }

    /// The chain's pending nonce was read: it is authoritative.
    pub fn sync(&mut self, pending: u64) {
        self.next = Some(pending);
    }

    /// A transaction with `nonce` was accepted by the node.
    pub fn sent(&mut self, nonce: u64) {
        self.next = Some(self.next.map_or(nonce + 1, |n| n.max(nonce + 1)));
    }

    /// The node answered "nonce too low" (or the state is otherwise doubtful): forget the
    /// local value; the next send re-reads the chain.
    pub fn invalidate(&mut self) {
        self.next = None;
    }
}

/// Fee policy of a submitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeePolicy {
    /// Smallest priority fee offered (wei).
    pub min_priority_fee: u128,
    /// `maxFeePerGas = base_fee_multiplier · baseFee + priority`.
    pub base_fee_multiplier: u128,
    /// Raise per bump, in percent (at least 10; replacement rule of the nodes).
    pub bump_percent: u128,
    /// No fee above this (wei).
    pub max_fee_cap: u128,
}

impl Default for FeePolicy {
    fn default() -> Self {
        Self {
            min_priority_fee: 1_000_000_000,
            base_fee_multiplier: 2,
            bump_percent: 15,
            max_fee_cap: 1_000_000_000_000,
        }
    }
}

impl FeePolicy {
    /// Fees for a new transaction given the latest base fee and the node's priority hint.
    pub fn initial(&self, base_fee: u128, priority_hint: u128) -> Fees {
        let priority = priority_hint
            .max(self.min_priority_fee)
            .min(self.max_fee_cap);
        let max_fee = base_fee
            .saturating_mul(self.base_fee_multiplier)
            .saturating_add(priority)
            .min(self.max_fee_cap);
        Fees {
            max_fee_per_gas: max_fee.max(priority),
            max_priority_fee_per_gas: priority,
        }
    }

    /// Fees replacing a stuck transaction sent with `prev`; `None` once the cap is reached.
    pub fn bump(&self, prev: Fees, base_fee: u128, priority_hint: u128) -> Option<Fees> {
        let pct = self.bump_percent.max(10);
        let raise = |v: u128| {
            v.saturating_mul(100 + pct)
                .div_ceil(100)
                .max(v.saturating_add(1))
        };
        let fresh = self.initial(base_fee, priority_hint);
        let priority = raise(prev.max_priority_fee_per_gas).max(fresh.max_priority_fee_per_gas);
        let max_fee = raise(prev.max_fee_per_gas)
            .max(
                base_fee
                    .saturating_mul(self.base_fee_multiplier)
                    .saturating_add(priority),
            )
            .max(fresh.max_fee_per_gas);
        if max_fee > self.max_fee_cap {
            return None;
        }
        Some(Fees {
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: priority,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nonce_tracker_syncs_advances_and_forgets() {
        let mut n = NonceTracker::default();
        assert_eq!(n.next(), None);
        n.sync(5);
        assert_eq!(n.next(), Some(5));
        n.sent(5);
        assert_eq!(n.next(), Some(6));
        n.sent(3); // a late answer for an older send does not move it back
        assert_eq!(n.next(), Some(6));
        n.invalidate();
        assert_eq!(n.next(), None);
        n.sync(9);
        assert_eq!(n.next(), Some(9));
    }

    #[test]
    fn bumps_raise_both_fields_by_the_percentage_until_the_cap() {
        let p = FeePolicy {
            min_priority_fee: 100,
            base_fee_multiplier: 2,
            bump_percent: 15,
            max_fee_cap: 2_000,
        };
        let f0 = p.initial(400, 10);
        assert_eq!(
            f0,
            Fees {
                max_fee_per_gas: 900,
                max_priority_fee_per_gas: 100
            }
        );
        let f1 = p.bump(f0, 400, 10).unwrap();
        assert_eq!(
            f1,
            Fees {
                max_fee_per_gas: 1_035,
                max_priority_fee_per_gas: 115
            }
        );
        // Both at least 10% above the previous (the replacement rule).
        assert!(f1.max_fee_per_gas * 10 >= f0.max_fee_per_gas * 11);
        assert!(f1.max_priority_fee_per_gas * 10 >= f0.max_priority_fee_per_gas * 11);
        // A base fee jump is followed.
        let f2 = p.bump(f1, 900, 10).unwrap();
        assert_eq!(f2.max_fee_per_gas, 2 * 900 + 133);
        assert_eq!(f2.max_priority_fee_per_gas, 133);
        assert_eq!(p.bump(f2, 900, 10), None, "cap reached");
    }
}
