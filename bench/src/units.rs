//! Sizes, times and ratios as people read them.
//!
//! Sizes, times and ratios as people read them, for tables, labels and
//! progress lines:
//!
//! - sizes in binary units: "64 B", "4 KiB", "8 MiB", "1.50 KiB" ([`human_bytes`]);
//! - times with three significant digits in ns, µs, ms or s: "850 ns",
//!   "12.3 µs", "1.40 ms" ([`human_ns`]); a range shares its unit when it
//!   can: "1.35–1.52 ms" ([`human_range`]);
//! - GB/s and ratios with two decimals ("6.00", "0.60"), or two significant
//!   digits below 0.1 ("0.042") ([`two_decimals`]);
//! - counts per transfer as whole numbers when they are whole ("1", "2048"),
//!   otherwise with two decimals ("0.50") ([`count`]).

/// A byte count in binary units (B, KiB, MiB ... EiB): "64 B", "4 KiB", "8 MiB", and three
/// significant digits when not whole: "1.50 KiB", "7.63 MiB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut unit = 0;
    while unit + 1 < UNITS.len() && bytes >= 1u64 << (10 * (unit + 1)) {
        unit += 1;
    }
    let scale = 1u64 << (10 * unit);
    if bytes.is_multiple_of(scale) {
        format!("{} {}", bytes / scale, UNITS[unit])
    } else {
        format!(
            "{} {}",
            three_digits(bytes as f64 / scale as f64),
            UNITS[unit]
        )
    }
}

/// A time in nanoseconds with three significant digits in the largest unit
/// that keeps it at least 1: "850 ns", "12.3 µs", "1.40 ms", "2.00 s". "–"
/// for a value that is negative or not finite.
pub fn human_ns(ns: f64) -> String {
    match time_parts(ns) {
        Some((number, unit)) => format!("{number} {unit}"),
        None => "–".to_string(),
    }
}

/// A range of two times, sharing the unit when both use the same one:
/// "1.35–1.52 ms", otherwise "950 µs–1.02 ms".
pub fn human_range(lo: f64, hi: f64) -> String {
    match (time_parts(lo), time_parts(hi)) {
        (Some((a, ua)), Some((b, ub))) if ua == ub => format!("{a}–{b} {ub}"),
        _ => format!("{}–{}", human_ns(lo), human_ns(hi)),
    }
}

fn time_parts(ns: f64) -> Option<(String, &'static str)> {
    if !ns.is_finite() || ns < 0.0 {
        return None;
    }
    const UNITS: [(&str, f64); 4] = [("s", 1e9), ("ms", 1e6), ("µs", 1e3), ("ns", 1.0)];
    // The largest unit in which the value rounds to at least 1.00, so that
    // 999.7 ns reads "1.00 µs" rather than "1000 ns".
    let (unit, scale) = UNITS
        .iter()
        .copied()
        .find(|&(_, scale)| ns / scale >= 0.9995)
        .unwrap_or(("ns", 1.0));
    Some((three_digits(ns / scale), unit))
}

/// Three significant digits for values from 1 up; below 1, two decimals.
fn three_digits(v: f64) -> String {
    if v == 0.0 {
        "0".to_string()
    } else if v >= 99.95 {
        format!("{v:.0}")
    } else if v >= 9.995 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Two decimals, or two significant digits below 0.1 so small values do not
/// read as zero: "6.00", "0.60", "0.042".
pub fn two_decimals(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_string();
    }
    if v == 0.0 || v.abs() >= 0.1 {
        return format!("{v:.2}");
    }
    let decimals = (1.0 - v.abs().log10().floor()).clamp(2.0, 12.0) as usize;
    format!("{v:.decimals$}")
}

/// A per-transfer count: whole numbers without decimals, others with two.
pub fn count(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(64), "64 B");
        assert_eq!(human_bytes(4096), "4 KiB");
        assert_eq!(human_bytes(64 << 10), "64 KiB");
        assert_eq!(human_bytes(1 << 20), "1 MiB");
        assert_eq!(human_bytes(256 << 20), "256 MiB");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
        assert_eq!(human_ns(0.0), "0 ns");
        assert_eq!(human_ns(850.0), "850 ns");
        assert_eq!(human_ns(999.7), "1.00 µs");
        assert_eq!(human_ns(12_345.0), "12.3 µs");
        assert_eq!(human_ns(1_398_101.0), "1.40 ms");
        assert_eq!(human_ns(2e9), "2.00 s");
        assert_eq!(human_ns(f64::NAN), "–");
        assert_eq!(human_range(950_000.0, 1_020_000.0), "950 µs–1.02 ms");
        assert_eq!(two_decimals(0.6), "0.60");
        assert_eq!(two_decimals(0.042), "0.042");
        assert_eq!(two_decimals(0.0031), "0.0031");
        assert_eq!(count(2048.0), "2048");
        assert_eq!(count(0.5), "0.50");
    }
}
