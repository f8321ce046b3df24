//! The payload copy into shared memory: standard, or with non-temporal stores, chosen by size.
//!
//! The payload copy into shared memory: the standard copy, or a copy with
//! non-temporal stores, chosen by size.
//!
//! The shared-memory path makes exactly one copy of the payload, and at large
//! sizes that copy is the transfer. glibc's `memcpy` (what `copy_from_slice`
//! calls) writes through the cache: every destination line is first read
//! (for ownership), then written, then evicted to memory again when the
//! payload is larger than the cache. A **non-temporal** copy writes whole
//! lines straight to memory through write-combining buffers: no read of the
//! destination and no eviction of useful data. glibc only does that itself
//! for copies larger than about three quarters of the shared cache per thread
//! (about 190 MiB on the machine the threshold was measured on).
//!
//! The price is paid by the reader: after a non-temporal copy the payload is
//! in memory, not in the cache, so a consumer that reads it at once reads it
//! from memory. For payloads that fit the cache that costs more than the copy
//! saves, so [`CopyMode::Auto`] keeps the standard copy below
//! [`NT_THRESHOLD`]. The threshold was measured with the benchmark's
//! `shm[std]`/`shm[nt]` rows, whose samples include the receiver reading
//! every byte (docs/BENCHMARKS.md, "The copy into shared memory").
//!
//! # Ordering
//! Non-temporal stores are weakly ordered: x86's total store order does not
//! apply to them, so a later ordinary store (such as the Release store that
//! tells the consumer the payload is ready) may become visible before them.
//! Release in Rust's memory model compiles to a plain `mov` on x86-64, which
//! does not order them. [`copy_payload`] therefore ends every non-temporal
//! copy with an `sfence`, which completes all earlier stores, non-temporal
//! ones included, before any later store. Callers publish the payload with a
//! Release store after the copy returns (the hand-off's Publish
//! compare-and-swap; the benchmark's READY post), and the consumer's Acquire
//! load of that word then sees every byte.
//!
//! # Implementation
//! x86-64 only: SSE2 (`_mm_stream_si128`, part of every x86-64 CPU) or, when
//! the CPU has it, AVX2 (`_mm256_stream_si256`, detected at run time). The
//! destination's unaligned head and the tail shorter than one vector are
//! copied with the standard copy. Other CPUs always use the standard copy.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// From this many bytes on, [`CopyMode::Auto`] copies with non-temporal
/// stores (16 MiB).
///
/// Measured on a 2-vCPU AMD EPYC guest (32 MiB L3) with the benchmark's
/// shm rows, where the receiver reads every byte just after the copy
/// (median GB/s, `pin=split`; docs/BENCHMARKS.md has the run):
///
/// | size   | `shm[std]` | `shm[nt]` | `shm-pipelined[std]` | `shm-pipelined[nt]` |
/// |--------|---------:|--------:|-------------------:|------------------:|
/// | 1 MiB  |    25.47 |   16.07 |              38.49 |             21.05 |
/// | 4 MiB  |    26.11 |   15.75 |              38.72 |             20.84 |
/// | 8 MiB  |    21.93 |   14.85 |              20.01 |             20.38 |
/// | 12 MiB |    12.80 |   13.97 |              14.93 |             19.31 |
/// | 16 MiB |     8.49 |   12.55 |              10.66 |             18.37 |
/// | 32 MiB |     9.11 |   12.59 |              10.42 |             16.44 |
/// | 64 MiB |     5.57 |    7.61 |               7.26 |              9.26 |
///
/// Up to 8 MiB the standard copy leaves the payload in the cache, where the
/// receiver reads it at cache speed, and the one-slot hand-off is 1.5 to 1.7
/// times faster with it; the non-temporal copy sends the payload to memory
/// and the receiver reads it back from there. At 12 MiB the two are even
/// within this machine's noise (one-slot: 1.04 to 2.2 times in favour of
/// non-temporal stores over three runs). From 16 MiB, where the source and
/// one slot together fill the 32 MiB L3, non-temporal stores were never
/// slower in any row of the five runs made (1.0 to 2.6 times; 1.3 to 1.7
/// in the run above).
pub const NT_THRESHOLD: usize = 16 << 20;

/// Which copy to use, as `--copy std|nt|auto` says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyMode {
    /// Always the standard copy (`copy_from_slice`, glibc's `memcpy`).
    Std,
    /// Always non-temporal stores (the standard copy on CPUs without them).
    Nt,
    /// Non-temporal stores from [`NT_THRESHOLD`] bytes on, else the standard
    /// copy.
    #[default]
    Auto,
}

impl CopyMode {
    /// Every mode, in the order of the command line's `std|nt|auto`.
    pub const ALL: [CopyMode; 3] = [CopyMode::Std, CopyMode::Nt, CopyMode::Auto];

    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            CopyMode::Std => "std",
            CopyMode::Nt => "nt",
            CopyMode::Auto => "auto",
        }
    }

    /// The fixed mode (`Std` or `Nt`) this mode picks for `len` bytes: for a
    /// payload copied in pieces, which must all be copied the way the whole
    /// size calls for.
    pub fn resolve(self, len: usize) -> CopyMode {
        match self.choose(len) {
            Copied::Standard => CopyMode::Std,
            Copied::NonTemporal => CopyMode::Nt,
        }
    }

    /// The copy this mode makes of `len` bytes on this CPU.
    pub fn choose(self, len: usize) -> Copied {
        let nt = match self {
            CopyMode::Std => false,
            CopyMode::Nt => true,
            CopyMode::Auto => len >= NT_THRESHOLD,
        };
        if nt && Isa::detect().is_some() {
            Copied::NonTemporal
        } else {
            Copied::Standard
        }
    }
}

impl fmt::Display for CopyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CopyMode {
    type Err = String;

    fn from_str(s: &str) -> Result<CopyMode, String> {
        CopyMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown copy {s:?} (choose std, nt or auto)"))
    }
}

/// The copy that was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Copied {
    /// `copy_from_slice`: glibc's `memcpy`.
    Standard,
    /// Non-temporal stores, then a store fence.
    NonTemporal,
}

impl Copied {
    /// How the copy ledger and the story name it: "memcpy" or
    /// "memcpy, non-temporal".
    pub fn label(self) -> &'static str {
        match self {
            Copied::Standard => "memcpy",
            Copied::NonTemporal => "memcpy, non-temporal",
        }
    }
}

/// Copies `src` into `dst` (shared memory) as `how` chooses for its length,
/// and says which copy it made. A non-temporal copy ends with a store fence,
/// so a Release store after this call publishes every byte (see the module
/// documentation).
///
/// # Panics
/// When the lengths differ, like `copy_from_slice`.
pub fn copy_payload(dst: &mut [u8], src: &[u8], how: CopyMode) -> Copied {
    assert_eq!(dst.len(), src.len(), "copy_payload: lengths differ");
    let copied = how.choose(src.len());
    match (copied, Isa::detect()) {
        (Copied::NonTemporal, Some(isa)) => stream(dst, src, isa),
        _ => dst.copy_from_slice(src),
    }
    copied
}

/// The instruction set of the non-temporal copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    /// 16-byte `movntdq` (every x86-64 CPU).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Sse2,
    /// 32-byte `vmovntdq`, when the CPU has AVX2.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Avx2,
}

impl Isa {
    /// The best this CPU has; `None` where there is no non-temporal copy.
    #[cfg(target_arch = "x86_64")]
    fn detect() -> Option<Isa> {
        // std caches the answer after the first call.
        Some(if is_x86_feature_detected!("avx2") {
            Isa::Avx2
        } else {
            Isa::Sse2
        })
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn detect() -> Option<Isa> {
        None
    }
}

/// The non-temporal copy with `isa`, which must be available (tests force
/// [`Isa::Sse2`] to cover CPUs without AVX2). Ends with the store fence.
#[cfg(target_arch = "x86_64")]
fn stream(dst: &mut [u8], src: &[u8], isa: Isa) {
    assert_eq!(dst.len(), src.len(), "copy_payload: lengths differ");
    match isa {
        Isa::Avx2 => {
            assert!(is_x86_feature_detected!("avx2"), "no AVX2 on this CPU");
            // SAFETY: the CPU has AVX2 (checked just above; `Isa::Avx2` is
            // only chosen after detection), the one requirement of calling
            // a `#[target_feature(enable = "avx2")]` function.
            unsafe { x86::stream_avx2(dst, src) }
        }
        Isa::Sse2 => x86::stream_sse2(dst, src),
    }
    // The streaming stores above are weakly ordered; the fence completes
    // them before any later store, in particular the Release store that
    // publishes the payload (module documentation, "Ordering").
    // SAFETY: `sfence` needs SSE, which every x86-64 CPU has (it is part of
    // the x86-64 baseline this code is compiled for); it touches no memory
    // of ours.
    unsafe { std::arch::x86_64::_mm_sfence() };
}

#[cfg(not(target_arch = "x86_64"))]
fn stream(dst: &mut [u8], src: &[u8], _isa: Isa) {
    dst.copy_from_slice(src);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        __m128i, __m256i, _mm256_loadu_si256, _mm256_stream_si256, _mm_loadu_si128,
        _mm_stream_si128,
    };

    /// A part of the destination and the same part of the source.
    type Part<'d, 's> = (&'d mut [u8], &'s [u8]);

    /// Splits `dst` at its first `align`-byte boundary and at the end of the
    /// whole vectors after it: ([head, tail], body), with the body aligned
    /// and a multiple of `align` long. `src` is split at the same offsets.
    fn split<'d, 's>(
        dst: &'d mut [u8],
        src: &'s [u8],
        align: usize,
    ) -> ([Part<'d, 's>; 2], Part<'d, 's>) {
        let head = dst.as_ptr().align_offset(align).min(dst.len());
        let body = (dst.len() - head) / align * align;
        let (d_head, rest) = dst.split_at_mut(head);
        let (d_body, d_tail) = rest.split_at_mut(body);
        let (s_head, rest) = src.split_at(head);
        let (s_body, s_tail) = rest.split_at(body);
        ([(d_head, s_head), (d_tail, s_tail)], (d_body, s_body))
    }

    /// The non-temporal copy with 32-byte AVX2 stores; no fence (the caller
    /// fences). `dst` and `src` have the same length.
    #[target_feature(enable = "avx2")]
    pub(super) fn stream_avx2(dst: &mut [u8], src: &[u8]) {
        let (ends, (d_body, s_body)) = split(dst, src, 32);
        for (d, s) in ends {
            d.copy_from_slice(s);
        }
        let mut d_blocks = d_body.chunks_exact_mut(128);
        let mut s_blocks = s_body.chunks_exact(128);
        for (d, s) in (&mut d_blocks).zip(&mut s_blocks) {
            let (d, s) = (
                d.as_mut_ptr().cast::<__m256i>(),
                s.as_ptr().cast::<__m256i>(),
            );
            // SAFETY: `s` and `d` are 128 bytes each (four vectors), in
            // bounds of their slices, which do not overlap (one is borrowed
            // mutably); `d` is 32-byte aligned, as the streaming store
            // requires, because the body starts at a 32-byte boundary and
            // every block is a multiple of 32 bytes long; the loads are
            // unaligned loads.
            unsafe {
                let v = [
                    _mm256_loadu_si256(s),
                    _mm256_loadu_si256(s.add(1)),
                    _mm256_loadu_si256(s.add(2)),
                    _mm256_loadu_si256(s.add(3)),
                ];
                _mm256_stream_si256(d, v[0]);
                _mm256_stream_si256(d.add(1), v[1]);
                _mm256_stream_si256(d.add(2), v[2]);
                _mm256_stream_si256(d.add(3), v[3]);
            }
        }
        let d_rest = d_blocks.into_remainder();
        let s_rest = s_blocks.remainder();
        for (d, s) in d_rest.chunks_exact_mut(32).zip(s_rest.chunks_exact(32)) {
            // SAFETY: as above, for one 32-byte vector at a 32-byte boundary.
            unsafe {
                let v = _mm256_loadu_si256(s.as_ptr().cast());
                _mm256_stream_si256(d.as_mut_ptr().cast(), v);
            }
        }
    }

    /// The non-temporal copy with 16-byte SSE2 stores (every x86-64 CPU); no
    /// fence (the caller fences). `dst` and `src` have the same length.
    pub(super) fn stream_sse2(dst: &mut [u8], src: &[u8]) {
        let (ends, (d_body, s_body)) = split(dst, src, 16);
        for (d, s) in ends {
            d.copy_from_slice(s);
        }
        let mut d_blocks = d_body.chunks_exact_mut(64);
        let mut s_blocks = s_body.chunks_exact(64);
        for (d, s) in (&mut d_blocks).zip(&mut s_blocks) {
            let (d, s) = (
                d.as_mut_ptr().cast::<__m128i>(),
                s.as_ptr().cast::<__m128i>(),
            );
            // SAFETY: `s` and `d` are 64 bytes each (four vectors), in
            // bounds of their non-overlapping slices; `d` is 16-byte aligned
            // (the body starts at a 16-byte boundary, blocks are multiples
            // of 16 bytes); the loads are unaligned loads. SSE2 is part of
            // x86-64.
            unsafe {
                let v = [
                    _mm_loadu_si128(s),
                    _mm_loadu_si128(s.add(1)),
                    _mm_loadu_si128(s.add(2)),
                    _mm_loadu_si128(s.add(3)),
                ];
                _mm_stream_si128(d, v[0]);
                _mm_stream_si128(d.add(1), v[1]);
                _mm_stream_si128(d.add(2), v[2]);
                _mm_stream_si128(d.add(3), v[3]);
            }
        }
        let d_rest = d_blocks.into_remainder();
        let s_rest = s_blocks.remainder();
        for (d, s) in d_rest.chunks_exact_mut(16).zip(s_rest.chunks_exact(16)) {
            // SAFETY: as above, for one 16-byte vector at a 16-byte boundary.
            unsafe {
                let v = _mm_loadu_si128(s.as_ptr().cast());
                _mm_stream_si128(d.as_mut_ptr().cast(), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` bytes of a pattern that differs from one offset to the next.
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
            .collect()
    }

    /// Every ISA this CPU can run, plus the standard copy.
    fn paths() -> Vec<Option<Isa>> {
        let mut v = vec![None];
        #[cfg(target_arch = "x86_64")]
        {
            v.push(Some(Isa::Sse2));
            if is_x86_feature_detected!("avx2") {
                v.push(Some(Isa::Avx2));
            }
        }
        v
    }

    /// Copies `len` bytes from `src` offset `s_off` into a buffer at offset
    /// `d_off` with `path`, and checks the copy and that the bytes around
    /// it are untouched.
    fn check(path: Option<Isa>, len: usize, s_off: usize, d_off: usize) {
        let src = pattern(len + 64, 7);
        let mut dst = vec![0xA5u8; len + 128];
        let mut want = dst.clone();
        want[d_off..d_off + len].copy_from_slice(&src[s_off..s_off + len]);
        let d = &mut dst[d_off..d_off + len];
        match path {
            None => d.copy_from_slice(&src[s_off..s_off + len]),
            Some(isa) => stream(d, &src[s_off..s_off + len], isa),
        }
        assert!(
            dst == want,
            "{path:?}: {len} bytes from offset {s_off} to offset {d_off} differ"
        );
    }

    #[test]
    fn every_length_to_4_kib_at_every_misalignment_copies_exactly() {
        for path in paths() {
            for len in 0..=4096 {
                // Every length at a few alignments; the misalignments in
                // full for a spread of lengths.
                for (s_off, d_off) in [(0, 0), (1, 0), (0, 1), (13, 29), (63, 33)] {
                    check(path, len, s_off, d_off);
                }
            }
            for len in [0, 1, 15, 16, 17, 31, 32, 33, 127, 128, 129, 1000, 4096] {
                for s_off in 0..64 {
                    for d_off in 0..64 {
                        check(path, len, s_off, d_off);
                    }
                }
            }
        }
    }

    #[test]
    fn a_payload_in_pieces_is_copied_as_its_whole_size_calls_for() {
        assert_eq!(CopyMode::Std.resolve(1 << 30), CopyMode::Std);
        assert_eq!(CopyMode::Auto.resolve(NT_THRESHOLD - 1), CopyMode::Std);
        let nt = if Isa::detect().is_some() {
            CopyMode::Nt
        } else {
            CopyMode::Std
        };
        assert_eq!(CopyMode::Auto.resolve(NT_THRESHOLD), nt);
        assert_eq!(CopyMode::Nt.resolve(1), nt);
        // A resolved mode no longer depends on the size of a piece.
        let whole = CopyMode::Auto.resolve(NT_THRESHOLD);
        assert_eq!(whole.choose(4096), whole.choose(NT_THRESHOLD));
    }

    #[test]
    fn large_copies_are_exact() {
        let len = (8 << 20) + 13;
        let src = pattern(len + 5, 3);
        for path in paths() {
            for (s_off, d_off) in [(0, 0), (5, 3)] {
                let mut dst = vec![0u8; len + 3];
                let s = &src[s_off..s_off + len];
                let d = &mut dst[d_off..d_off + len];
                match path {
                    None => d.copy_from_slice(s),
                    Some(isa) => stream(d, s, isa),
                }
                assert!(dst[d_off..d_off + len] == *s, "{path:?} {s_off}/{d_off}");
                assert!(dst[..d_off]
                    .iter()
                    .chain(&dst[d_off + len..])
                    .all(|&b| b == 0));
            }
        }
    }

    #[test]
    fn copy_payload_makes_the_copy_it_reports() {
        let src = pattern(100_000, 9);
        for mode in CopyMode::ALL {
            let mut dst = vec![0u8; src.len()];
            let copied = copy_payload(&mut dst, &src, mode);
            assert!(dst == src, "{mode}");
            let nt_here = Isa::detect().is_some();
            let want = match mode {
                CopyMode::Nt if nt_here => Copied::NonTemporal,
                _ => Copied::Standard,
            };
            assert_eq!(copied, want, "{mode}");
        }
        assert_eq!(Copied::NonTemporal.label(), "memcpy, non-temporal");
        assert_eq!(Copied::Standard.label(), "memcpy");
    }

    #[test]
    #[should_panic(expected = "lengths differ")]
    fn different_lengths_panic_like_copy_from_slice() {
        let mut dst = [0u8; 4];
        copy_payload(&mut dst, &[1, 2, 3], CopyMode::Nt);
    }

    #[test]
    fn auto_switches_at_the_threshold() {
        let nt = if Isa::detect().is_some() {
            Copied::NonTemporal
        } else {
            Copied::Standard
        };
        assert_eq!(CopyMode::Auto.choose(NT_THRESHOLD - 1), Copied::Standard);
        assert_eq!(CopyMode::Auto.choose(NT_THRESHOLD), nt);
        assert_eq!(CopyMode::Auto.choose(0), Copied::Standard);
        assert_eq!(CopyMode::Std.choose(1 << 30), Copied::Standard);
        assert_eq!(CopyMode::Nt.choose(1), nt);
    }

    #[test]
    fn modes_parse_and_print() {
        for mode in CopyMode::ALL {
            assert_eq!(mode.as_str().parse::<CopyMode>(), Ok(mode));
            assert_eq!(mode.to_string(), mode.as_str());
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(json, format!("\"{mode}\""));
            assert_eq!(serde_json::from_str::<CopyMode>(&json).unwrap(), mode);
        }
        assert_eq!(CopyMode::default(), CopyMode::Auto);
        let err = "fast".parse::<CopyMode>().unwrap_err();
        assert_eq!(err, "unknown copy \"fast\" (choose std, nt or auto)");
        assert!("NT".parse::<CopyMode>().is_err());
    }
}
