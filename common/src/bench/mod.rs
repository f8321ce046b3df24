//! The benchmark's statistics: what the measured samples of each case say.
//!
//! - [`stats`] computes percentiles, mean, deviation and spread warnings.

pub mod stats;
