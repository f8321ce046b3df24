//! Rounds as the unit: a row's figure and its 95 % interval by a cluster bootstrap.
//!
//! A case runs in rounds that take turns with the other cases of its size
//! (see [`crate::report::Round`]). Within a round the samples are not independent: the
//! machine's state (frequency, cache, neighbours) is shared by all of them,
//! and a fast round makes more samples in the same time. So every statistic
//! that decides something weighs each round alike:
//!
//! - **the figure** of a row is the median of its round medians
//!   ([`Clusters::figure_ns`]); a throughput row's `gbps` is bytes / figure;
//! - **sustained time** per transfer is the total measured wall time of the
//!   rounds over the total transfers ([`Clusters::sustained_ns`]), so
//!   `gbps_sustained` = bytes × runs / Σ wall time;
//! - **the 95 % interval** of an estimate is a cluster bootstrap over rounds:
//!   [`RESAMPLES`] times, draw as many rounds as there are, with replacement,
//!   recompute the estimate from them, and take the 2.5th and 97.5th
//!   percentiles of the results (the percentile method). The interval of a
//!   ratio of two rows draws both rows' rounds independently in every
//!   resample and takes the ratio.
//!
//! With one round, or when the rounds were not recorded (all samples are then
//! treated as one round), there is nothing to resample between rounds, and
//! the bootstrap resamples transfers within the round instead, which ignores
//! drift between rounds and understates the spread. The resampled median of
//! `n` transfers is then the order statistic at rank `n × u`, with `u` the
//! median of `n` uniform draws: Beta((n+1)/2, (n+1)/2), drawn from its normal
//! approximation, mean ½ and variance 1 / (4 (n + 2)); the resampled mean
//! time is drawn from its normal approximation (the central limit theorem).
//! That costs O(1) per resample however many transfers there are.
//!
//! Every interval starts its generator (`fastrand`'s wyrand) from the same
//! recorded seed, so that a file can be re-analysed to the same numbers.

use serde::{Deserialize, Serialize};

use crate::stats;

/// Resamples per interval.
pub const RESAMPLES: usize = 2000;

/// The seed of every interval when none is given.
pub const DEFAULT_SEED: u64 = 0x7031_7032_6265_6e63;

/// A 95 % interval: the 2.5th and 97.5th percentiles of the bootstrap
/// estimates.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

impl Interval {
    /// Whether `x` lies within the interval, ends included.
    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }

    /// The interval of `f(x)` for a decreasing `f`, e.g. from times to
    /// throughputs.
    pub fn map_decreasing(self, f: impl Fn(f64) -> f64) -> Interval {
        Interval {
            lo: f(self.hi),
            hi: f(self.lo),
        }
    }
}

/// One round as the bootstrap sees it.
#[derive(Clone, Debug)]
struct Cluster {
    sorted: Vec<u64>,
    median: f64,
    /// Measured wall time; the sum of the samples when not recorded.
    wall_ns: f64,
    mean: f64,
    stddev: f64,
}

impl Cluster {
    fn of(samples: &[u64], wall_ns: u64) -> Option<Cluster> {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let median = stats::percentile_sorted(&sorted, 50.0)?;
        let sum: u128 = sorted.iter().map(|&x| u128::from(x)).sum();
        let wall_ns = if wall_ns > 0 {
            wall_ns as f64
        } else {
            sum as f64
        };
        Some(Cluster {
            median,
            wall_ns,
            mean: stats::mean(&sorted)?,
            stddev: stats::stddev(&sorted).unwrap_or(0.0),
            sorted,
        })
    }

    fn runs(&self) -> usize {
        self.sorted.len()
    }

    /// The median of `n` transfers drawn with replacement from this round.
    fn draw_median(&self, rng: &mut fastrand::Rng) -> f64 {
        let n = self.sorted.len();
        let u = 0.5 + normal(rng) / (2.0 * ((n + 2) as f64).sqrt());
        let rank = (u.clamp(0.0, 1.0) * n as f64).floor() as usize;
        self.sorted[rank.min(n - 1)] as f64
    }

    /// The wall time of this round, scaled by the mean of `n` transfers drawn
    /// with replacement over the mean of all.
    fn draw_wall(&self, rng: &mut fastrand::Rng) -> f64 {
        if self.mean <= 0.0 {
            return self.wall_ns;
        }
        let n = self.runs() as f64;
        let mean = (self.mean + normal(rng) * self.stddev / n.sqrt()).max(0.0);
        self.wall_ns * mean / self.mean
    }
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = 1.0 - rng.f64(); // in (0, 1]
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A row's rounds, ready to estimate from and to resample.
#[derive(Clone, Debug)]
pub struct Clusters {
    rounds: Vec<Cluster>,
    pooled: bool,
}

impl Clusters {
    /// The rounds of a row, each as its samples and its measured wall time
    /// (0 when unknown: the sum of its samples is used); when there are none
    /// (not recorded), all of `samples` as one round ([`Clusters::pooled`]
    /// then says so). Rounds without samples are left out. `None` when there
    /// is no sample at all.
    pub fn of<'a>(
        rounds: impl IntoIterator<Item = (&'a [u64], u64)>,
        samples: &[u64],
    ) -> Option<Clusters> {
        let kept: Vec<Cluster> = rounds
            .into_iter()
            .filter_map(|(samples, wall_ns)| Cluster::of(samples, wall_ns))
            .collect();
        if !kept.is_empty() {
            return Some(Clusters {
                rounds: kept,
                pooled: false,
            });
        }
        Some(Clusters {
            rounds: vec![Cluster::of(samples, 0)?],
            pooled: true,
        })
    }

    /// Whether the rounds were not recorded and all samples were treated as
    /// one round.
    pub fn pooled(&self) -> bool {
        self.pooled
    }

    /// How many rounds.
    pub fn len(&self) -> usize {
        self.rounds.len()
    }

    /// Always false: a [`Clusters`] has at least one round.
    pub fn is_empty(&self) -> bool {
        self.rounds.is_empty()
    }

    /// Every round's median, in order.
    pub fn medians(&self) -> Vec<f64> {
        self.rounds.iter().map(|c| c.median).collect()
    }

    /// The figure: the median of the round medians.
    pub fn figure_ns(&self) -> f64 {
        median_f64(&self.medians()).unwrap_or(0.0)
    }

    /// Total measured wall time over total transfers: the time per transfer
    /// at the sustained rate.
    pub fn sustained_ns(&self) -> f64 {
        let wall: f64 = self.rounds.iter().map(|c| c.wall_ns).sum();
        let runs: usize = self.rounds.iter().map(Cluster::runs).sum();
        wall / runs.max(1) as f64
    }

    /// One bootstrap estimate of [`Clusters::figure_ns`].
    pub fn draw_figure_ns(&self, rng: &mut fastrand::Rng) -> f64 {
        if let [only] = self.rounds.as_slice() {
            return only.draw_median(rng);
        }
        let k = self.rounds.len();
        let medians: Vec<f64> = (0..k).map(|_| self.rounds[rng.usize(..k)].median).collect();
        median_f64(&medians).unwrap_or(0.0)
    }

    /// One bootstrap estimate of [`Clusters::sustained_ns`].
    pub fn draw_sustained_ns(&self, rng: &mut fastrand::Rng) -> f64 {
        if let [only] = self.rounds.as_slice() {
            return only.draw_wall(rng) / only.runs().max(1) as f64;
        }
        let k = self.rounds.len();
        let (mut wall, mut runs) = (0.0, 0usize);
        for _ in 0..k {
            let c = &self.rounds[rng.usize(..k)];
            wall += c.wall_ns;
            runs += c.runs();
        }
        wall / runs.max(1) as f64
    }

    /// The 95 % interval of [`Clusters::figure_ns`].
    pub fn figure_interval(&self, seed: u64) -> Option<Interval> {
        interval(seed, |rng| self.draw_figure_ns(rng))
    }

    /// The 95 % interval of [`Clusters::sustained_ns`].
    pub fn sustained_interval(&self, seed: u64) -> Option<Interval> {
        interval(seed, |rng| self.draw_sustained_ns(rng))
    }
}

/// Which estimate of a row a ratio uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Estimate {
    /// The median of the round medians ([`Clusters::figure_ns`]).
    Figure,
    /// Total wall time over transfers ([`Clusters::sustained_ns`]).
    Sustained,
}

impl Estimate {
    fn value(self, c: &Clusters) -> f64 {
        match self {
            Estimate::Figure => c.figure_ns(),
            Estimate::Sustained => c.sustained_ns(),
        }
    }

    fn draw(self, c: &Clusters, rng: &mut fastrand::Rng) -> f64 {
        match self {
            Estimate::Figure => c.draw_figure_ns(rng),
            Estimate::Sustained => c.draw_sustained_ns(rng),
        }
    }
}

/// The throughput ratio `a / b` of rows moving `a_bytes` and `b_bytes` per
/// transfer, by `estimate`: (a_bytes / a's time) / (b_bytes / b's time), and
/// its 95 % interval, both rows' rounds drawn independently in every
/// resample. `None` when a time is 0 or the ratio is not finite.
pub fn throughput_ratio(
    a: &Clusters,
    a_bytes: u64,
    b: &Clusters,
    b_bytes: u64,
    estimate: Estimate,
    seed: u64,
) -> Option<(f64, Interval)> {
    let ratio = |ta: f64, tb: f64| (a_bytes as f64 / ta) / (b_bytes as f64 / tb);
    let value = ratio(estimate.value(a), estimate.value(b));
    if !value.is_finite() || value <= 0.0 {
        return None;
    }
    let ci = interval(seed, |rng| {
        ratio(estimate.draw(a, rng), estimate.draw(b, rng))
    })?;
    Some((value, ci))
}

/// The time ratio `a / b` of two latency rows by their figures, and its 95 %
/// interval (as for [`throughput_ratio`]).
pub fn time_ratio(a: &Clusters, b: &Clusters, seed: u64) -> Option<(f64, Interval)> {
    let value = a.figure_ns() / b.figure_ns();
    if !value.is_finite() {
        return None;
    }
    let ci = interval(seed, |rng| a.draw_figure_ns(rng) / b.draw_figure_ns(rng))?;
    Some((value, ci))
}

/// The 2.5th and 97.5th percentiles of [`RESAMPLES`] draws of `draw`, from
/// a generator seeded with `seed`; draws that are not finite are left out.
/// `None` when none is.
pub fn interval(seed: u64, mut draw: impl FnMut(&mut fastrand::Rng) -> f64) -> Option<Interval> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut xs: Vec<f64> = (0..RESAMPLES)
        .map(|_| draw(&mut rng))
        .filter(|x| x.is_finite())
        .collect();
    xs.sort_unstable_by(f64::total_cmp);
    Some(Interval {
        lo: percentile_sorted_f64(&xs, 2.5)?,
        hi: percentile_sorted_f64(&xs, 97.5)?,
    })
}

/// The median of `xs` (interpolated as [`stats`] does); `None` when empty.
pub fn median_f64(xs: &[f64]) -> Option<f64> {
    let mut v = xs.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    percentile_sorted_f64(&v, 50.0)
}

fn percentile_sorted_f64(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let h = (sorted.len() - 1) as f64 * p / 100.0;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Round;
    use crate::testdata::rounds_with_medians;

    fn parts(rounds: &[Round]) -> impl Iterator<Item = (&[u64], u64)> {
        rounds.iter().map(|r| (r.samples_ns.as_slice(), r.wall_ns))
    }

    #[test]
    fn the_figure_is_the_median_of_round_medians_not_of_the_pool() {
        // The 64 MiB shm row: a fast round with more samples.
        let rounds = rounds_with_medians(&[(9.0, 11), (12.5, 8), (15.5, 8)], 1e6);
        let pool: Vec<u64> = rounds.iter().flat_map(|r| r.samples_ns.clone()).collect();
        let c = Clusters::of(parts(&rounds), &pool).unwrap();
        assert!(!c.pooled());
        assert_eq!(c.len(), 3);
        assert_eq!(c.medians(), [9e6, 12.5e6, 15.5e6]);
        assert_eq!(c.figure_ns(), 12.5e6);
        // The pooled median leans to the fast round.
        assert!(stats::median(&pool).unwrap() < 12.5e6);
        // With three rounds, the interval runs from the fastest round's
        // median to the slowest's.
        let ci = c.figure_interval(DEFAULT_SEED).unwrap();
        assert_eq!((ci.lo, ci.hi), (9e6, 15.5e6));
    }

    #[test]
    fn sustained_time_is_wall_time_over_transfers() {
        let mut rounds = rounds_with_medians(&[(10.0, 10), (20.0, 10)], 1.0);
        rounds[0].wall_ns = 150;
        rounds[1].wall_ns = 250;
        let c = Clusters::of(parts(&rounds), &[]).unwrap();
        assert_eq!(c.sustained_ns(), 400.0 / 20.0);
        let ci = c.sustained_interval(1).unwrap();
        assert!(ci.lo >= 15.0 && ci.hi <= 25.0 && ci.lo < ci.hi, "{ci:?}");
    }

    #[test]
    fn without_rounds_all_samples_are_one_round_resampled_within() {
        let samples: Vec<u64> = (0..1001).map(|i| 1000 + i).collect();
        let c = Clusters::of([], &samples).unwrap();
        assert!(c.pooled());
        assert_eq!(c.figure_ns(), 1500.0);
        // The median of 1001 uniform values on 1000..=2000 has a standard
        // error of about 1000 / (2 √1003) ≈ 15.8: an interval of about ±31.
        let ci = c.figure_interval(7).unwrap();
        assert!(ci.contains(1500.0), "{ci:?}");
        assert!(ci.hi - ci.lo > 40.0 && ci.hi - ci.lo < 90.0, "{ci:?}");
        assert!(Clusters::of([], &[]).is_none());
    }

    #[test]
    fn a_ratio_interval_contains_the_true_ratio() {
        // Row a: rounds around 2 µs; row b: around 1 µs, same bytes. The true
        // throughput ratio a/b is 0.5.
        let a = rounds_with_medians(
            &[(1.9, 20), (2.0, 20), (2.1, 20), (2.05, 20), (1.95, 20)],
            1e3,
        );
        let b = rounds_with_medians(
            &[(0.95, 20), (1.0, 20), (1.05, 20), (1.02, 20), (0.98, 20)],
            1e3,
        );
        let (a, b) = (
            Clusters::of(parts(&a), &[]).unwrap(),
            Clusters::of(parts(&b), &[]).unwrap(),
        );
        let (value, ci) = throughput_ratio(&a, 4096, &b, 4096, Estimate::Figure, 3).unwrap();
        assert!((value - 0.5).abs() < 1e-12, "{value}");
        assert!(ci.contains(0.5) && ci.lo > 0.4 && ci.hi < 0.6, "{ci:?}");
        // The same seed gives the same interval.
        assert_eq!(
            throughput_ratio(&a, 4096, &b, 4096, Estimate::Figure, 3)
                .unwrap()
                .1,
            ci
        );
        let (t, tci) = time_ratio(&a, &b, 3).unwrap();
        assert!((t - 2.0).abs() < 1e-12 && tci.contains(2.0), "{tci:?}");
    }
}
