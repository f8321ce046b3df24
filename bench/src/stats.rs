//! Statistics of benchmark samples: percentiles, median, mean and spread.
//!
//! Statistics of benchmark samples: percentiles, median, mean, sample standard
//! deviation, extremes, throughput, and warnings when the samples spread too
//! widely to be trusted.
//!
//! Every function takes the raw samples (nanoseconds, any order) and returns
//! `None` for empty input instead of panicking or producing NaN.
//!
//! # Percentiles
//!
//! Percentiles interpolate linearly between the closest ranks, like numpy's
//! default (`method="linear"`) and R's type 7: with the `n` samples sorted as
//! `x[0] <= ... <= x[n-1]`, the `p`-th percentile sits at rank
//! `h = (n - 1) * p / 100`, and its value is
//! `x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])`.
//! So the median of `[1, 2, 3, 4]` is 2.5, the 10th percentile of `1..=11` is
//! 2, and every percentile of a single sample is that sample.

/// `p90 / p10` above this is reported as a wide spread.
pub const WIDE_SPREAD_RATIO: f64 = 2.0;

/// A sample whose modified z-score exceeds this is an outlier: hyperfine's
/// rule (`src/outlier_detection.rs`). The score is the distance from the
/// median in units of the median absolute deviation, `(x - median) / MAD`
/// (with `MAD` replaced by the smallest positive `f64` step, `f64::EPSILON`,
/// when it is 0); the threshold `1.4826 × 10` is 10 standard deviations, as
/// `1.4826 × MAD` estimates σ for normal data.
pub const OUTLIER_Z: f64 = 1.4826 * 10.0;

/// The modified z-score of `x` among samples of median `median` and median
/// absolute deviation `mad`, as hyperfine computes it: `(x - median) / mad`,
/// with a `mad` of 0 replaced by `f64::EPSILON` (so that, when more than half
/// the samples are equal, every other sample is an outlier).
pub fn modified_z(x: f64, median: f64, mad: f64) -> f64 {
    let mad = if mad > 0.0 { mad } else { f64::EPSILON };
    (x - median) / mad
}

/// The statistics of a non-empty set of samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// 50th percentile.
    pub median: f64,
    /// 10th percentile.
    pub p10: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (divides by n − 1); `None` for one sample.
    pub stddev: Option<f64>,
    /// Smallest sample.
    pub min: u64,
    /// Largest sample.
    pub max: u64,
    /// Median absolute deviation from the median.
    pub mad: f64,
}

impl Summary {
    /// The statistics of `samples`; `None` when there are none.
    pub fn of(samples: &[u64]) -> Option<Summary> {
        let sorted = sorted(samples);
        let median = percentile_sorted(&sorted, 50.0)?;
        Some(Summary {
            n: sorted.len(),
            median,
            p10: percentile_sorted(&sorted, 10.0)?,
            p90: percentile_sorted(&sorted, 90.0)?,
            p99: percentile_sorted(&sorted, 99.0)?,
            mean: mean(&sorted)?,
            stddev: stddev(&sorted),
            min: *sorted.first()?,
            max: *sorted.last()?,
            mad: mad_around(&sorted, median)?,
        })
    }
}

/// The `p`-th percentile (0 to 100) of `samples`, interpolated as the module
/// documentation describes. `None` when `samples` is empty or `p` is outside
/// 0..=100 (or NaN).
pub fn percentile(samples: &[u64], p: f64) -> Option<f64> {
    percentile_sorted(&sorted(samples), p)
}

/// Like [`percentile`], for samples already sorted in ascending order (saves
/// sorting again when several percentiles are wanted).
pub fn percentile_sorted(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=100.0).contains(&p) {
        return None;
    }
    let h = (sorted.len() - 1) as f64 * p / 100.0;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let (a, b) = (sorted[lo] as f64, sorted[hi] as f64);
    Some(a + (h - lo as f64) * (b - a))
}

/// The median (50th percentile) of `samples`.
pub fn median(samples: &[u64]) -> Option<f64> {
    percentile(samples, 50.0)
}

/// The arithmetic mean of `samples`.
pub fn mean(samples: &[u64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let sum: u128 = samples.iter().map(|&x| u128::from(x)).sum();
    Some(sum as f64 / samples.len() as f64)
}

/// The sample standard deviation of `samples` (dividing by n − 1); `None`
/// for fewer than two samples, where it is undefined.
pub fn stddev(samples: &[u64]) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let m = mean(samples)?;
    let squares: f64 = samples.iter().map(|&x| (x as f64 - m).powi(2)).sum();
    Some((squares / (samples.len() - 1) as f64).sqrt())
}

/// The smallest sample.
pub fn min(samples: &[u64]) -> Option<u64> {
    samples.iter().copied().min()
}

/// The largest sample.
pub fn max(samples: &[u64]) -> Option<u64> {
    samples.iter().copied().max()
}

/// The median absolute deviation: the median of `|x - median(samples)|`.
pub fn mad(samples: &[u64]) -> Option<f64> {
    mad_around(samples, median(samples)?)
}

/// Throughput in GB/s (10^9 bytes per second) of `bytes` moved in `ns`
/// nanoseconds; 0 when `ns` is not a positive finite number.
pub fn gbps(bytes: u64, ns: f64) -> f64 {
    if ns.is_finite() && ns > 0.0 {
        // bytes / (ns / 1e9) / 1e9 = bytes / ns.
        bytes as f64 / ns
    } else {
        0.0
    }
}

/// Human warnings about samples too spread out to trust, in the spirit of
/// hyperfine's: each names what was seen and what might help. Empty when the
/// samples look fine or are too few to judge (fewer than two).
///
/// - a wide spread: `p90 / p10` above [`WIDE_SPREAD_RATIO`];
/// - a slow first run, when there were no warm-up runs (`warmup == 0`) and the
///   first sample is an outlier;
/// - other outliers: samples whose modified z-score ([`modified_z`]) exceeds
///   [`OUTLIER_Z`] in absolute value: hyperfine's rule, 10 σ-estimates from
///   the median.
pub fn warnings(samples: &[u64], warmup: usize) -> Vec<String> {
    let mut out = Vec::new();
    if samples.len() < 2 {
        return out;
    }
    let Some(s) = Summary::of(samples) else {
        return out;
    };
    if s.p10 > 0.0 && s.p90 / s.p10 > WIDE_SPREAD_RATIO {
        out.push(format!(
            "wide spread: p90 is {:.1}x p10; the machine may be busy, consider more runs or --pin",
            s.p90 / s.p10
        ));
    }
    let z = |x: u64| modified_z(x as f64, s.median, s.mad);
    let slow_first = warmup == 0 && z(samples[0]) > OUTLIER_Z;
    if slow_first {
        out.push(format!(
            "the first run took {:.1}x the median; caches were probably cold, consider warm-up runs",
            samples[0] as f64 / s.median
        ));
    }
    let skip = usize::from(slow_first);
    let outliers = samples[skip..]
        .iter()
        .filter(|&&x| z(x).abs() > OUTLIER_Z)
        .count();
    if outliers > 0 {
        out.push(format!(
            "{outliers} of {} runs are far from the median (modified z-score above {OUTLIER_Z:.3}, \
             i.e. 10 σ-estimates); other programs may have interfered, consider a quieter machine or more runs",
            s.n
        ));
    }
    out
}

fn sorted(samples: &[u64]) -> Vec<u64> {
    let mut v = samples.to_vec();
    v.sort_unstable();
    v
}

fn mad_around(samples: &[u64], center: f64) -> Option<f64> {
    let mut deviations: Vec<f64> = samples.iter().map(|&x| (x as f64 - center).abs()).collect();
    if deviations.is_empty() {
        return None;
    }
    deviations.sort_unstable_by(f64::total_cmp);
    let h = (deviations.len() - 1) as f64 / 2.0;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    Some((deviations[lo] + deviations[hi]) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn percentiles_interpolate_between_closest_ranks() {
        assert_eq!(median(&[1, 2, 3, 4]), Some(2.5));
        assert_eq!(median(&[4, 1, 3]), Some(3.0));
        let eleven: Vec<u64> = (1..=11).collect();
        assert_eq!(percentile(&eleven, 10.0), Some(2.0));
        assert_eq!(percentile(&eleven, 90.0), Some(10.0));
        // Rank 0.75 between 1 and 2.
        assert_eq!(percentile(&[4, 3, 2, 1], 25.0), Some(1.75));
        // p99 of 1..=100: rank 98.01, between 99 and 100.
        let hundred: Vec<u64> = (1..=100).collect();
        assert!(close(percentile(&hundred, 99.0).unwrap(), 99.01));
        assert_eq!(percentile(&eleven, 0.0), Some(1.0));
        assert_eq!(percentile(&eleven, 100.0), Some(11.0));
    }

    #[test]
    fn one_sample_and_no_samples() {
        assert_eq!(percentile(&[7], 10.0), Some(7.0));
        assert_eq!(median(&[7]), Some(7.0));
        assert_eq!(mean(&[7]), Some(7.0));
        assert_eq!(stddev(&[7]), None);
        assert_eq!(mad(&[7]), Some(0.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(median(&[]), None);
        assert_eq!(mean(&[]), None);
        assert_eq!(stddev(&[]), None);
        assert_eq!(min(&[]), None);
        assert_eq!(max(&[]), None);
        assert_eq!(mad(&[]), None);
        assert_eq!(Summary::of(&[]), None);
        assert!(warnings(&[], 0).is_empty());
        assert!(warnings(&[5], 0).is_empty());
        assert_eq!(percentile(&[1, 2], f64::NAN), None);
        assert_eq!(percentile(&[1, 2], 101.0), None);
    }

    #[test]
    fn mean_deviation_and_extremes() {
        let xs = [2, 4, 4, 4, 5, 5, 7, 9];
        assert_eq!(mean(&xs), Some(5.0));
        // Squared deviations sum to 32; 32 / 7 = 4.571428...
        assert!(close(stddev(&xs).unwrap(), (32.0f64 / 7.0).sqrt()));
        assert!(close(stddev(&xs).unwrap(), 2.138_089_935_299_395));
        assert_eq!((min(&xs), max(&xs)), (Some(2), Some(9)));
        // Deviations from the median 2: [0, 0, 1, 1, 2, 4, 7], median 1.
        assert_eq!(mad(&[1, 1, 2, 2, 4, 6, 9]), Some(1.0));
        // Large values do not overflow the sum.
        assert_eq!(mean(&[u64::MAX, u64::MAX]), Some(u64::MAX as f64));
        let s = Summary::of(&xs).unwrap();
        assert_eq!((s.n, s.median, s.min, s.max), (8, 4.5, 2, 9));
    }

    #[test]
    fn throughput_is_bytes_per_nanosecond() {
        assert_eq!(gbps(1_000_000_000, 1e9), 1.0);
        assert_eq!(gbps(6_000_000, 1e6), 6.0);
        assert!((gbps(8_388_608, 1_398_101.0) - 6.0).abs() < 1e-5);
        assert_eq!(gbps(4096, 0.0), 0.0);
        assert_eq!(gbps(4096, f64::NAN), 0.0);
        assert_eq!(gbps(4096, -1.0), 0.0);
    }

    #[test]
    fn quiet_samples_raise_no_warning() {
        assert!(warnings(&[1000, 1001, 999, 1000, 1002, 998], 0).is_empty());
    }

    #[test]
    fn wide_spread_is_reported_with_the_ratio() {
        let xs: Vec<u64> = (1..=11).map(|x| x * 100).collect();
        let w = warnings(&xs, 3);
        assert_eq!(
            w,
            ["wide spread: p90 is 5.0x p10; the machine may be busy, consider more runs or --pin"]
        );
    }

    #[test]
    fn outliers_and_a_slow_first_run_are_reported() {
        let mut xs = vec![1000, 1010, 990, 1005, 995, 1000, 1002, 998, 1001, 999];
        xs.push(100_000);
        let w = warnings(&xs, 1);
        assert!(w
            .iter()
            .any(|w| w.starts_with("1 of 11 runs are far from the median")));
        assert!(!w.iter().any(|w| w.contains("first run")));

        xs.rotate_right(1);
        let w = warnings(&xs, 0);
        assert!(w
            .iter()
            .any(|w| w.starts_with("the first run took 100.0x the median")));
        assert!(!w.iter().any(|w| w.contains("far from the median")));
    }

    #[test]
    fn outliers_follow_hyperfines_rule_of_ten_sigma_estimates() {
        // Median 100, median absolute deviation 10: the last sample's
        // modified z-score is (X - 100) / 10.
        let with = |x: u64| vec![80, 90, 95, 100, 100, 105, 110, 120, x];
        assert_eq!(Summary::of(&with(280)).unwrap().mad, 10.0);
        // 18 > 14.826: an outlier (a rule of 14.8 σ-estimates would not flag it).
        assert!(warnings(&with(280), 1)
            .iter()
            .any(|w| w.starts_with("1 of 9 runs are far from the median")));
        // 14 < 14.826: none.
        assert!(warnings(&with(240), 1).is_empty());
        assert_eq!(modified_z(280.0, 100.0, 10.0), 18.0);
        // A MAD of 0 makes every sample off the median an outlier, as in hyperfine.
        assert!(modified_z(101.0, 100.0, 0.0) > OUTLIER_Z);
        assert_eq!(modified_z(100.0, 100.0, 0.0), 0.0);
    }
}
