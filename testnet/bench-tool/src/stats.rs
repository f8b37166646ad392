//! Order statistics over small samples.
//!
//! Percentiles are nearest-rank: the `p`-th percentile of `n` sorted values is the value of
//! rank `ceil(p / 100 · n)` (1-based). With 20 samples the p99 is therefore the largest one,
//! which the report says where it quotes a p99.

/// Nearest-rank percentile `p` (0–100) of `values`; `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

/// Median as the nearest-rank p50 (an actual sample, never an average of two).
pub fn median(values: &[f64]) -> Option<f64> {
    percentile(values, 50.0)
}

/// Smallest and largest value; `None` when empty.
pub fn range(values: &[f64]) -> Option<(f64, f64)> {
    let min = values.iter().copied().reduce(f64::min)?;
    let max = values.iter().copied().reduce(f64::max)?;
    Some((min, max))
}

/// Counts (blocks, say) as values for the statistics above.
pub fn counts(values: &[u64]) -> Vec<f64> {
    values.iter().map(|&v| v as f64).collect()
}

/// `p50 / p99 (n = …)` of `values` in the unit the caller formats with `fmt`, or "n/a".
pub fn summary(values: &[f64], fmt: impl Fn(f64) -> String) -> String {
    match (percentile(values, 50.0), percentile(values, 99.0)) {
        (Some(a), Some(b)) => format!("{} / {} (n = {})", fmt(a), fmt(b), values.len()),
        _ => "n/a".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(10.0));
        assert_eq!(percentile(&v, 99.0), Some(20.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(range(&[2.0, -1.0, 7.0]), Some((-1.0, 7.0)));
    }
}
