//! Early-warning math: precursors of a member's failure, computed over bounded histories.
//!
//! - [`blocks_to_insolvency`]: when a member's equity, on its least-squares trend, reaches
//!   zero;
//! - [`volatility_bps`]: the volatility of an oracle's price series;
//! - [`Window`]: the bounded history (per member, per oracle) these are computed over.
//!
//! These use `f64`: their results are a detector's decision (confirmed by p nodes before
//! anything happens), never an amount paid. Amounts are converted to `f64` approximately
//! (53 bits of precision, finite for every `U256`), and any result that is not a finite
//! number is refused (`None`), so no input panics.

use crate::BPS;
use alloy::primitives::U256;
use std::collections::VecDeque;

/// Fewest samples a trend is fitted to.
pub const MIN_TREND_SAMPLES: usize = 3;
/// Fewest prices a volatility is computed from.
pub const MIN_VOLATILITY_SAMPLES: usize = 3;

/// Blocks until the equity (assets - liabilities) of a member reaches zero on the least-squares
/// line through `samples` (block number, assets, liabilities), oldest first, counted from the
/// newest sample's block and rounded up (0 when the line is already at or below zero there).
///
/// `None` when there are fewer than [`MIN_TREND_SAMPLES`] samples, all at one block, the line
/// does not fall, or the newest equity is already ≤ 0 (the gap detector handles that).
pub fn blocks_to_insolvency(samples: &[(u64, U256, U256)]) -> Option<u64> {
    if samples.len() < MIN_TREND_SAMPLES {
        return None;
    }
    let &(first, ..) = samples.first()?;
    let &(newest, assets, liabilities) = samples.last()?;
    if assets <= liabilities {
        return None;
    }
    // Blocks relative to the first sample, so large block numbers keep their precision.
    let points = || {
        samples
            .iter()
            .map(|&(b, a, l)| (offset(b, first), equity(a, l)))
    };
    let n = samples.len() as f64;
    let (mean_x, mean_y) = points().fold((0.0, 0.0), |(x, y), (px, py)| (x + px / n, y + py / n));
    let (sxx, sxy) = points().fold((0.0, 0.0), |(sxx, sxy), (x, y)| {
        let dx = x - mean_x;
        (sxx + dx * dx, sxy + dx * (y - mean_y))
    });
    let slope = sxy / sxx;
    if !(sxx > 0.0 && slope < 0.0 && slope.is_finite()) {
        return None;
    }
    let zero_at = mean_x - mean_y / slope;
    let blocks = zero_at - offset(newest, first);
    // A relative 1e-9 absorbs the float error of an exact fit (10.000000000002 is 10).
    let blocks = (blocks - blocks.abs() * 1e-9).ceil().max(0.0);
    blocks.is_finite().then_some(blocks as u64)
}

/// `block - first`, as a float.
fn offset(block: u64, first: u64) -> f64 {
    (i128::from(block) - i128::from(first)) as f64
}

/// `assets - liabilities`, as a float.
fn equity(assets: U256, liabilities: U256) -> f64 {
    if assets >= liabilities {
        f64::from(assets - liabilities)
    } else {
        -f64::from(liabilities - assets)
    }
}

/// Volatility of a price series, oldest first: the (population) standard deviation of the
/// relative change between consecutive prices, in basis points, rounded to nearest.
///
/// `None` with fewer than [`MIN_VOLATILITY_SAMPLES`] prices or a zero price.
pub fn volatility_bps(prices: &[U256]) -> Option<u64> {
    if prices.len() < MIN_VOLATILITY_SAMPLES || prices.iter().any(|p| p.is_zero()) {
        return None;
    }
    let changes = || {
        prices
            .windows(2)
            .map(|w| f64::from(w[1]) / f64::from(w[0]) - 1.0)
    };
    let n = (prices.len() - 1) as f64;
    let mean = changes().sum::<f64>() / n;
    let variance = changes().map(|c| (c - mean) * (c - mean)).sum::<f64>() / n;
    let bps = (variance.sqrt() * BPS as f64).round();
    bps.is_finite().then_some(bps as u64)
}

/// A bounded history: the newest `capacity` values pushed, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window<T> {
    items: VecDeque<T>,
    capacity: usize,
}

impl<T> Window<T> {
    /// An empty window keeping at most `capacity` values (none when `capacity` is 0). Memory
    /// grows with the values pushed, not with `capacity`.
    pub fn new(capacity: usize) -> Self {
        Self {
            items: VecDeque::new(),
            capacity,
        }
    }

    /// Appends `value` as the newest; returns the value that fell out, if any (`value` itself
    /// when the capacity is 0).
    pub fn push(&mut self, value: T) -> Option<T> {
        if self.capacity == 0 {
            return Some(value);
        }
        let evicted = if self.items.len() >= self.capacity {
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(value);
        evicted
    }

    /// How many values it holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether it holds `capacity` values.
    pub fn is_full(&self) -> bool {
        self.items.len() == self.capacity
    }

    /// The most values it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The oldest value.
    pub fn oldest(&self) -> Option<&T> {
        self.items.front()
    }

    /// The newest value.
    pub fn newest(&self) -> Option<&T> {
        self.items.back()
    }

    /// The values, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.items.iter()
    }

    /// The values as one slice, oldest first (for [`blocks_to_insolvency`] and
    /// [`volatility_bps`]).
    pub fn as_slice(&mut self) -> &[T] {
        self.items.make_contiguous()
    }

    /// Removes and returns the newest value (a reorg takes back the samples of the blocks
    /// it replaced).
    pub fn pop_newest(&mut self) -> Option<T> {
        self.items.pop_back()
    }

    /// Forgets every value.
    pub fn clear(&mut self) {
        self.items.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn u(x: u64) -> U256 {
        U256::from(x)
    }

    /// Samples of equity `equities[i]` at block `start + i`, as assets over fixed liabilities.
    fn trend(start: u64, equities: &[i64]) -> Vec<(u64, U256, U256)> {
        let base = 1_000_000u64;
        let at = |e: i64| u(base.checked_add_signed(e).unwrap());
        equities
            .iter()
            .enumerate()
            .map(|(i, &e)| (start + i as u64, at(e), u(base)))
            .collect()
    }

    #[test]
    fn linear_fall_reaches_zero_on_time() {
        // Falling 10 a block, at 100 now: 10 blocks.
        assert_eq!(blocks_to_insolvency(&trend(0, &[120, 110, 100])), Some(10));
        assert_eq!(
            blocks_to_insolvency(&trend(19_000_000, &[140, 130, 120, 110, 100])),
            Some(10)
        );
        // Rounded up: 95 at -10 a block is 9.5 blocks.
        assert_eq!(blocks_to_insolvency(&trend(7, &[115, 105, 95])), Some(10));
        // Liabilities rising do the same.
        let rising = [
            (5, u(500), u(380)),
            (6, u(500), u(390)),
            (7, u(500), u(400)),
        ];
        assert_eq!(blocks_to_insolvency(&rising), Some(10));
        // Gaps between samples count in blocks.
        let sparse = [(0, u(160), u(0)), (2, u(140), u(0)), (6, u(100), u(0))];
        assert_eq!(blocks_to_insolvency(&sparse), Some(10));
    }

    #[test]
    fn no_trend_to_insolvency() {
        assert_eq!(blocks_to_insolvency(&trend(0, &[100, 110, 120])), None);
        assert_eq!(blocks_to_insolvency(&trend(0, &[100, 100, 100])), None);
        assert_eq!(blocks_to_insolvency(&trend(0, &[110, 100])), None);
        assert_eq!(blocks_to_insolvency(&[]), None);
        // Already insolvent: the gap detector's case.
        assert_eq!(blocks_to_insolvency(&trend(0, &[20, 10, 0])), None);
        assert_eq!(blocks_to_insolvency(&trend(0, &[20, 10, -5])), None);
        // All at one block: no line.
        let same = [(3, u(30), u(0)), (3, u(20), u(0)), (3, u(10), u(0))];
        assert_eq!(blocks_to_insolvency(&same), None);
    }

    #[test]
    fn line_below_zero_already() {
        // The line's zero is behind the newest sample (which is still positive): 0 blocks.
        assert_eq!(
            blocks_to_insolvency(&trend(0, &[1_000, 1_000, 1, 1])),
            Some(0)
        );
    }

    #[test]
    fn noisy_fall_is_about_right() {
        let noise = [3, -2, 1, -3, 2, 0, -1, 3, -2, 1];
        let equities: Vec<i64> = (0..30)
            .map(|i| 1_000 - 10 * i + noise[i as usize % 10])
            .collect();
        // On the noiseless line: 710 at the newest block, 71 blocks.
        let blocks = blocks_to_insolvency(&trend(100, &equities)).unwrap();
        assert!((68..=74).contains(&blocks), "{blocks}");
    }

    #[test]
    fn extreme_trends_do_not_panic() {
        let huge = [
            (0, U256::MAX, U256::ZERO),
            (1, U256::MAX / u(2), U256::ZERO),
            (2, u(1), U256::ZERO),
        ];
        assert!(matches!(blocks_to_insolvency(&huge), Some(0 | 1)));
        let far = [
            (0, u(3), u(0)),
            (u64::MAX / 2, u(2), u(0)),
            (u64::MAX, u(1), u(0)),
        ];
        assert!(blocks_to_insolvency(&far).is_some());
        let backwards = [(u64::MAX, u(10), u(0)), (0, u(20), u(0)), (5, u(5), u(0))];
        let _ = blocks_to_insolvency(&backwards);
    }

    #[test]
    fn volatility_of_series() {
        assert_eq!(volatility_bps(&[u(100); 10]), Some(0));
        // Alternating +10% and -10%: 1_000 bps.
        let mut prices = vec![U256::from(10u64.pow(18))];
        for i in 0..20 {
            let p = *prices.last().unwrap();
            prices.push(if i % 2 == 0 {
                p * u(11) / u(10)
            } else {
                p * u(9) / u(10)
            });
        }
        let v = volatility_bps(&prices).unwrap();
        assert!((995..=1_005).contains(&v), "{v}");
        // Back and forth between 100 and 110: +10%, -9.09%: about 955.
        let v = volatility_bps(&[u(100), u(110), u(100), u(110), u(100)]).unwrap();
        assert!((950..=960).contains(&v), "{v}");
        assert_eq!(volatility_bps(&[u(100), u(110)]), None);
        assert_eq!(volatility_bps(&[u(100), U256::ZERO, u(110)]), None);
        assert!(volatility_bps(&[u(1), U256::MAX, u(1), U256::MAX]).is_some());
    }

    #[test]
    fn window_keeps_the_newest() {
        let mut w = Window::new(3);
        assert!(w.is_empty());
        assert_eq!(w.push(1), None);
        assert_eq!(w.push(2), None);
        assert_eq!(w.push(3), None);
        assert!(w.is_full());
        assert_eq!(w.push(4), Some(1));
        assert_eq!(w.len(), 3);
        assert_eq!((w.oldest(), w.newest()), (Some(&2), Some(&4)));
        assert_eq!(w.iter().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(w.as_slice(), &[2, 3, 4]);
        w.clear();
        assert!(w.is_empty());
        let mut none = Window::new(0);
        assert_eq!(none.push(7), Some(7));
        assert!(none.is_empty());
        assert_eq!(none.capacity(), 0);
    }

    #[test]
    fn window_feeds_the_detectors() {
        let mut w = Window::new(3);
        for (b, e) in [(1u64, 200u64), (2, 130), (3, 120), (4, 110), (5, 100)] {
            w.push((b, u(e), U256::ZERO));
        }
        assert_eq!(blocks_to_insolvency(w.as_slice()), Some(10));
    }
}
