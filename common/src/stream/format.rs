//! What a frame is: its pixel format and the header that describes it, with the checks a reader makes.
//!
//! A frame header travels in a ring slot's control block (shared memory) or
//! in front of the pixels on a socket. Either way it was written by another
//! process, so [`FrameHeader::check`] validates it before a byte of the
//! pixels is trusted.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// How the pixels of a frame are laid out: 8 bits per channel, rows of
/// `stride` bytes, top row first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[repr(u32)]
pub enum PixelFormat {
    /// One byte per pixel: luma (grey).
    L8 = 1,
    /// Three bytes per pixel: red, green, blue.
    Rgb8 = 2,
    /// Four bytes per pixel: red, green, blue, alpha.
    Rgba8 = 3,
}

impl PixelFormat {
    /// The format for a raw code, if known.
    pub fn from_u32(code: u32) -> Option<PixelFormat> {
        Some(match code {
            1 => PixelFormat::L8,
            2 => PixelFormat::Rgb8,
            3 => PixelFormat::Rgba8,
            _ => return None,
        })
    }

    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> u32 {
        match self {
            PixelFormat::L8 => 1,
            PixelFormat::Rgb8 => 3,
            PixelFormat::Rgba8 => 4,
        }
    }

    /// The name used in reports and on the command line (`Rgb8`...).
    pub fn as_str(self) -> &'static str {
        match self {
            PixelFormat::L8 => "L8",
            PixelFormat::Rgb8 => "Rgb8",
            PixelFormat::Rgba8 => "Rgba8",
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PixelFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<PixelFormat, String> {
        [PixelFormat::L8, PixelFormat::Rgb8, PixelFormat::Rgba8]
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| format!("unknown pixel format {text:?} (L8, Rgb8 or Rgba8)"))
    }
}

/// What a frame is, as its header says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameHeader {
    /// The frame's number: 1 for the first frame of a stream, one more for each next.
    pub frame_id: u64,
    /// When the producer published it: CLOCK_MONOTONIC, in nanoseconds.
    pub timestamp_ns: u64,
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Bytes from one row to the next (at least `width` × bytes per pixel).
    pub stride: u32,
    /// A [`PixelFormat`] code.
    pub format: u32,
    /// Bytes of pixels: `stride × height`.
    pub len: u64,
    /// CRC-32 (as zlib computes it) of those bytes.
    pub crc32: u32,
}

/// A frame header that passed [`FrameHeader::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The frame's number.
    pub id: u64,
    /// Publish time, CLOCK_MONOTONIC ns.
    pub timestamp_ns: u64,
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Bytes per row.
    pub stride: u32,
    /// The pixel format.
    pub format: PixelFormat,
    /// Bytes of pixels.
    pub len: usize,
    /// Their CRC-32.
    pub crc32: u32,
}

impl FrameHeader {
    /// Validates the header against the room there is for the pixels
    /// (`capacity` bytes: a ring slot's size, or the largest frame a socket
    /// reader accepts).
    ///
    /// # Errors
    /// A one-line reason naming the first field that lies.
    pub fn check(&self, capacity: u64) -> Result<Frame, String> {
        let format = PixelFormat::from_u32(self.format)
            .ok_or_else(|| format!("unknown pixel format code {}", self.format))?;
        if self.width == 0 || self.height == 0 {
            return Err(format!(
                "a frame of {}x{} pixels has no pixels",
                self.width, self.height
            ));
        }
        let row = u64::from(self.width) * u64::from(format.bytes_per_pixel());
        if u64::from(self.stride) < row {
            return Err(format!(
                "stride {} is shorter than a row of {} {format} pixels ({row} bytes)",
                self.stride, self.width
            ));
        }
        let needed = u64::from(self.stride) * u64::from(self.height);
        if needed > capacity {
            return Err(format!(
                "stride {} x height {} = {needed} bytes does not fit a slot of {capacity}",
                self.stride, self.height
            ));
        }
        if self.len != needed {
            return Err(format!(
                "payload length {} is not stride x height = {needed}",
                self.len
            ));
        }
        Ok(Frame {
            id: self.frame_id,
            timestamp_ns: self.timestamp_ns,
            width: self.width,
            height: self.height,
            stride: self.stride,
            format,
            len: needed as usize,
            crc32: self.crc32,
        })
    }

    /// The header on the wire: [`WIRE_LEN`] little-endian bytes.
    pub fn to_wire(&self) -> [u8; WIRE_LEN] {
        let mut out = [0u8; WIRE_LEN];
        out[0..8].copy_from_slice(&WIRE_MAGIC.to_le_bytes());
        out[8..16].copy_from_slice(&self.frame_id.to_le_bytes());
        out[16..24].copy_from_slice(&self.timestamp_ns.to_le_bytes());
        out[24..28].copy_from_slice(&self.width.to_le_bytes());
        out[28..32].copy_from_slice(&self.height.to_le_bytes());
        out[32..36].copy_from_slice(&self.stride.to_le_bytes());
        out[36..40].copy_from_slice(&self.format.to_le_bytes());
        out[40..48].copy_from_slice(&self.len.to_le_bytes());
        out[48..52].copy_from_slice(&self.crc32.to_le_bytes());
        out
    }

    /// Reads a header from the wire.
    ///
    /// # Errors
    /// When the magic is wrong.
    pub fn from_wire(bytes: &[u8; WIRE_LEN]) -> Result<FrameHeader, String> {
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
        if u64_at(0) != WIRE_MAGIC {
            return Err(format!(
                "wrong frame magic {:#018x} (not a p1p2 stream)",
                u64_at(0)
            ));
        }
        Ok(FrameHeader {
            frame_id: u64_at(8),
            timestamp_ns: u64_at(16),
            width: u32_at(24),
            height: u32_at(28),
            stride: u32_at(32),
            format: u32_at(36),
            len: u64_at(40),
            crc32: u32_at(48),
        })
    }
}

/// `b"P1P2FRM\0"` as a little-endian u64: the first word of a frame header on a socket.
pub const WIRE_MAGIC: u64 = u64::from_le_bytes(*b"P1P2FRM\0");

/// Bytes of a frame header on a socket. A header whose `frame_id` is 0 ends
/// the stream (no pixels follow).
pub const WIRE_LEN: usize = 64;

/// Offset of the stream's policy code (u32) in a header on a socket: the
/// producer's [`Policy`](super::Policy), so that a socket reader reports it.
pub const WIRE_POLICY: usize = 52;

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> FrameHeader {
        FrameHeader {
            frame_id: 7,
            timestamp_ns: 123,
            width: 4,
            height: 3,
            stride: 12,
            format: PixelFormat::Rgb8 as u32,
            len: 36,
            crc32: 0xdead_beef,
        }
    }

    #[test]
    fn a_true_header_passes_and_keeps_its_fields() {
        let frame = good().check(36).unwrap();
        assert_eq!((frame.id, frame.width, frame.height), (7, 4, 3));
        assert_eq!((frame.stride, frame.len), (12, 36));
        assert_eq!(frame.format, PixelFormat::Rgb8);
    }

    #[test]
    fn each_lie_is_named() {
        let cases = [
            (
                FrameHeader {
                    format: 9,
                    ..good()
                },
                "pixel format",
            ),
            (FrameHeader { width: 0, ..good() }, "no pixels"),
            (
                FrameHeader {
                    stride: 11,
                    ..good()
                },
                "shorter than a row",
            ),
            (
                FrameHeader {
                    height: 4,
                    len: 48,
                    ..good()
                },
                "does not fit a slot",
            ),
            (
                FrameHeader {
                    stride: u32::MAX,
                    height: u32::MAX,
                    ..good()
                },
                "does not fit a slot",
            ),
            (FrameHeader { len: 35, ..good() }, "payload length"),
        ];
        for (header, word) in cases {
            let err = header.check(36).unwrap_err();
            assert!(err.contains(word), "{err:?} should mention {word:?}");
        }
    }

    #[test]
    fn the_wire_form_round_trips_and_refuses_a_wrong_magic() {
        let wire = good().to_wire();
        assert_eq!(FrameHeader::from_wire(&wire), Ok(good()));
        let mut bad = wire;
        bad[0] ^= 1;
        assert!(FrameHeader::from_wire(&bad).unwrap_err().contains("magic"));
    }

    #[test]
    fn formats_parse_by_name_and_code() {
        for f in [PixelFormat::L8, PixelFormat::Rgb8, PixelFormat::Rgba8] {
            assert_eq!(f.as_str().parse::<PixelFormat>(), Ok(f));
            assert_eq!(PixelFormat::from_u32(f as u32), Some(f));
        }
        assert_eq!("rgb8".parse::<PixelFormat>(), Ok(PixelFormat::Rgb8));
        assert!("yuv".parse::<PixelFormat>().is_err());
        assert_eq!(PixelFormat::from_u32(0), None);
    }
}
