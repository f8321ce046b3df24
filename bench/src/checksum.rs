//! The benchmark's payload: a fixed pattern, a sequence stamp and a fast checksum.
//!
//! The benchmark's payload: a fixed pattern, a sequence stamp in its first
//! 8 bytes, and a checksum that the receiver computes over every byte.
//!
//! The checksum is the wrapping sum of the payload read as little-endian
//! `u64` words, plus the last 1 to 7 bytes (if any) read as one zero-padded
//! little-endian word. Addition modulo 2^64 is associative and commutative, so
//! [`checksum`] may add in eight lanes, which the compiler turns into vector
//! instructions: reading a payload this way runs at memory speed, and the
//! receiver's cost stays small next to the copy the sender makes.
//!
//! Because the stamp is the first word, a payload stamped with `seq` has the
//! checksum `base + seq`, where `base` is the checksum of the pattern with its
//! first word zeroed ([`Expected`]): the receiver checks both the stamp (a stale
//! payload is detected) and the checksum (a torn or corrupt one is) without
//! keeping its own copy of the pattern. `scripts/python_baseline.py` uses the
//! same definition.

/// The stamp that asks the receiver to stop: no more payloads follow.
pub const STOP: u64 = u64::MAX;

/// Wrapping sum of `bytes` as little-endian `u64` words, the zero-padded
/// tail included.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut lanes = [0u64; 8];
    let mut blocks = bytes.chunks_exact(64);
    for block in &mut blocks {
        for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            *lane = lane.wrapping_add(word_at(word));
        }
    }
    let mut sum = lanes.iter().fold(0u64, |a, &b| a.wrapping_add(b));
    let mut words = blocks.remainder().chunks_exact(8);
    for word in &mut words {
        sum = sum.wrapping_add(word_at(word));
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let mut padded = [0u8; 8];
        padded[..tail.len()].copy_from_slice(tail);
        sum = sum.wrapping_add(u64::from_le_bytes(padded));
    }
    sum
}

#[inline(always)]
fn word_at(word: &[u8]) -> u64 {
    u64::from_le_bytes(word.try_into().expect("8-byte chunk"))
}

/// Fills `buf` with the benchmark pattern: word `i` (little-endian) is
/// `i * 0x9E3779B97F4A7C15 + 0x0123456789ABCDEF`, truncated at the end.
/// Every byte position gets a different-looking value, so a torn or shifted
/// payload changes the checksum.
pub fn fill(buf: &mut [u8]) {
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let word = (i as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(0x0123_4567_89AB_CDEF);
        chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
    }
}

/// A page-aligned heap buffer holding the pattern.
///
/// Every buffer a payload is copied from or into in this benchmark starts
/// on a page boundary, as a segment's payload does. On some CPUs `memcpy`
/// (its `rep movsb` path, used from a few KiB up) runs 20 to 30 times slower
/// when the destination sits a few bytes after the source modulo 4096; a
/// heap buffer's position is an accident of the allocator, so without this
/// the figures at 4 KiB to 64 KiB would depend on luck.
pub struct PageBuf {
    storage: Vec<u8>,
    offset: usize,
    len: usize,
}

impl PageBuf {
    /// A buffer of `len` bytes filled with the pattern.
    pub fn pattern(len: usize) -> PageBuf {
        PageBuf::pattern_at(len, 0)
    }

    /// A buffer of `len` bytes filled with the pattern, starting `skew`
    /// bytes (modulo 4096) after a page boundary: for copies into a
    /// destination that sits at that offset within its page.
    pub fn pattern_at(len: usize, skew: usize) -> PageBuf {
        let skew = skew % 4096;
        let storage = vec![0u8; len + 2 * 4096];
        let offset = storage.as_ptr().align_offset(4096).min(4096) + skew;
        let mut buf = PageBuf {
            storage,
            offset,
            len,
        };
        fill(buf.as_mut_slice());
        buf
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.offset..self.offset + self.len]
    }

    /// The bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.offset..self.offset + self.len]
    }
}

/// Writes `seq` into the first 8 bytes of `payload` (which must hold 8).
///
/// # Panics
/// If `payload` is shorter than 8 bytes (sizes are checked at parse time).
pub fn stamp(payload: &mut [u8], seq: u64) {
    payload[..8].copy_from_slice(&seq.to_le_bytes());
}

/// The stamp in the first 8 bytes of `payload`; `None` when it is shorter.
pub fn read_stamp(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.get(..8)?.try_into().ok()?))
}

/// What a receiver expects of a payload of a given size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    /// The payload size.
    pub bytes: usize,
    /// The checksum of the pattern with its first word zeroed.
    pub base: u64,
}

impl Expected {
    /// Computes `base` for the pattern of `bytes` bytes (at least 8) by
    /// filling a scratch buffer once.
    pub fn for_size(bytes: usize) -> Expected {
        let mut pattern = vec![0u8; bytes];
        fill(&mut pattern);
        Expected::of_pattern(&mut pattern)
    }

    /// Computes `base` from a pattern the caller already holds (its first
    /// word is overwritten by the next [`stamp`] anyway).
    pub fn of_pattern(pattern: &mut [u8]) -> Expected {
        stamp(pattern, 0);
        Expected {
            bytes: pattern.len(),
            base: checksum(pattern),
        }
    }

    /// The checksum a payload stamped with `seq` has.
    pub fn checksum(&self, seq: u64) -> u64 {
        self.base.wrapping_add(seq)
    }

    /// Checks a received payload: its length, its stamp against `seq`, and
    /// its checksum (reading every byte). Returns a one-line reason when it
    /// is wrong.
    ///
    /// # Errors
    /// The reason, naming the stamp or the two checksums.
    pub fn verify(&self, payload: &[u8], seq: u64) -> Result<(), String> {
        if payload.len() != self.bytes {
            return Err(format!(
                "payload of {} bytes, expected {}",
                payload.len(),
                self.bytes
            ));
        }
        // Read every byte first, so the cost is the same whether or not the
        // stamp is right.
        let sum = checksum(payload);
        match read_stamp(payload) {
            Some(found) if found == seq => {}
            found => {
                return Err(format!(
                    "stale or foreign payload: stamp {found:?}, expected sequence {seq}"
                ))
            }
        }
        let want = self.checksum(seq);
        if sum != want {
            return Err(format!(
                "checksum mismatch in payload {seq}: {sum:#018x}, expected {want:#018x}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_known_values() {
        assert_eq!(checksum(&[]), 0);
        assert_eq!(checksum(&[1]), 1);
        assert_eq!(checksum(&[0, 1]), 256);
        assert_eq!(checksum(&[1, 0, 0, 0, 0, 0, 0, 0]), 1);
        // One full word of 0x01 bytes plus a one-byte tail.
        assert_eq!(checksum(&[1; 9]), 0x0101_0101_0101_0101 + 1);
        // Sixteen words of 0xff: 16 * (2^64 - 1) wraps to 2^64 - 16.
        assert_eq!(checksum(&[0xff; 128]), 0u64.wrapping_sub(16));
        // Words 1, 2, ..., 20 (spanning the eight lanes and the remainder).
        let words: Vec<u8> = (1..=20u64).flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(checksum(&words), 210);
    }

    #[test]
    fn lanes_agree_with_a_plain_sum_at_every_length() {
        let mut buf = vec![0u8; 300];
        fill(&mut buf);
        for len in 0..buf.len() {
            let bytes = &buf[..len];
            let mut plain = 0u64;
            for chunk in bytes.chunks(8) {
                let mut w = [0u8; 8];
                w[..chunk.len()].copy_from_slice(chunk);
                plain = plain.wrapping_add(u64::from_le_bytes(w));
            }
            assert_eq!(checksum(bytes), plain, "length {len}");
        }
    }

    #[test]
    fn the_pattern_is_fixed() {
        let mut buf = [0u8; 20];
        fill(&mut buf);
        assert_eq!(&buf[..8], &0x0123_4567_89AB_CDEFu64.to_le_bytes());
        let second = 0x9E37_79B9_7F4A_7C15u64.wrapping_add(0x0123_4567_89AB_CDEF);
        assert_eq!(&buf[8..16], &second.to_le_bytes());
        assert_eq!(&buf[16..], &[0x19, 0xc6, 0x40, 0x88]);
    }

    #[test]
    fn page_buffers_are_aligned_and_hold_the_pattern() {
        for len in [8, 4096, 65_536 + 3] {
            let mut buf = PageBuf::pattern(len);
            assert_eq!(buf.as_slice().as_ptr() as usize % 4096, 0);
            assert_eq!(buf.as_slice().len(), len);
            let mut want = vec![0u8; len];
            fill(&mut want);
            assert_eq!(buf.as_slice(), &want[..]);
            buf.as_mut_slice()[0] = 9;
            assert_eq!(buf.as_slice()[0], 9);
            let skewed = PageBuf::pattern_at(len, 4096 + 184);
            assert_eq!(skewed.as_slice().as_ptr() as usize % 4096, 184);
            assert_eq!(skewed.as_slice(), &want[..]);
        }
    }

    #[test]
    fn a_stamped_payload_verifies_and_damage_is_caught() {
        let expected = Expected::for_size(4096 + 3);
        let mut payload = vec![0u8; 4096 + 3];
        fill(&mut payload);
        stamp(&mut payload, 42);
        assert_eq!(checksum(&payload), expected.checksum(42));
        assert_eq!(expected.verify(&payload, 42), Ok(()));

        let stale = expected.verify(&payload, 43).unwrap_err();
        assert!(stale.contains("stamp Some(42)"), "{stale}");

        payload[1000] ^= 0x10;
        let torn = expected.verify(&payload, 42).unwrap_err();
        assert!(torn.contains("checksum mismatch"), "{torn}");

        let short = expected.verify(&payload[..100], 42).unwrap_err();
        assert!(short.contains("100 bytes"), "{short}");
        assert_eq!(read_stamp(&[1, 2, 3]), None);
    }
}
