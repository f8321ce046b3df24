//! The frames a producer streams: one image, decoded once, scrolled by the frame number and stamped with it.
//!
//! Frame `f` is the source image cut into horizontal bands and rotated by
//! `f` bands (it scrolls up, one band per frame), with `f` drawn in its top
//! left corner. Making it costs one copy of the pixels into the slot, the
//! same work as copying any raw frame, and its CRC-32 costs almost nothing:
//! the bands' CRCs are computed once, and each frame's is combined from them
//! (`crc32fast::Hasher::combine`) and from the few stamped rows.

use std::io::{Read as _, Seek as _};
use std::path::Path;

use crc32fast::Hasher;

use super::ring::Shape;
use super::PixelFormat;
use crate::copy::{copy_payload, CopyMode};
use crate::error::{Error, Result};
use crate::png::{self, Limits};

/// The most bands an image is cut into.
const BANDS: u32 = 16;

/// A 3×5 font for the digits 0-9: five rows of three bits each.
const DIGITS: [[u8; 5]; 10] = [
    [0b111, 0b101, 0b101, 0b101, 0b111],
    [0b010, 0b110, 0b010, 0b010, 0b111],
    [0b111, 0b001, 0b111, 0b100, 0b111],
    [0b111, 0b001, 0b111, 0b001, 0b111],
    [0b101, 0b101, 0b111, 0b001, 0b001],
    [0b111, 0b100, 0b111, 0b001, 0b111],
    [0b111, 0b100, 0b111, 0b101, 0b111],
    [0b111, 0b001, 0b010, 0b010, 0b010],
    [0b111, 0b101, 0b111, 0b101, 0b111],
    [0b111, 0b101, 0b111, 0b001, 0b111],
];

/// One band: where it is in the source, and the CRC-32 of all of it and of
/// the part below the stamp.
#[derive(Clone)]
struct Band {
    start: usize,
    len: usize,
    crc: Hasher,
    below_stamp: Hasher,
}

/// An image ready to be streamed.
#[derive(Clone)]
pub struct Source {
    pixels: Vec<u8>,
    shape: Shape,
    bands: Vec<Band>,
    /// Rows at the top of each frame that hold the stamp.
    stamp_rows: u32,
    /// Size of one font pixel, in image pixels.
    scale: u32,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("shape", &self.shape)
            .field("bands", &self.bands.len())
            .finish()
    }
}

impl Source {
    /// Decodes the PNG at `path` once. Grey images stream as L8, images
    /// with alpha as Rgba8, the rest as Rgb8.
    ///
    /// # Errors
    /// [`Error::BadImage`] for a missing, empty or non-PNG file;
    /// [`Error::Decode`] for a corrupt one.
    pub fn from_png(path: &Path) -> Result<Source> {
        let mut source = png::open_source(path)?;
        let mut bytes = Vec::with_capacity(source.len as usize);
        // `open_source` read the signature: start again from the top.
        source
            .file
            .seek(std::io::SeekFrom::Start(0))
            .and_then(|_| source.file.read_to_end(&mut bytes))
            .map_err(|e| Error::BadImage {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        let decoded = png::decode(&bytes, &Limits::default())?;
        let image = decoded.image;
        let (format, pixels) = if !image.color().has_color() && !image.color().has_alpha() {
            (PixelFormat::L8, image.into_luma8().into_raw())
        } else if image.color().has_alpha() {
            (PixelFormat::Rgba8, image.into_rgba8().into_raw())
        } else {
            (PixelFormat::Rgb8, image.into_rgb8().into_raw())
        };
        Ok(Source::new(pixels, decoded.width, decoded.height, format))
    }

    /// A generated Rgb8 test picture of `width` × `height` pixels: colour
    /// gradients, for benchmarks at exact frame sizes.
    ///
    /// # Panics
    /// If either side is 0.
    pub fn pattern(width: u32, height: u32) -> Source {
        assert!(width > 0 && height > 0, "an empty pattern");
        let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
        for y in 0..height {
            for x in 0..width {
                pixels.push((u64::from(x) * 255 / u64::from(width)) as u8);
                pixels.push((u64::from(y) * 255 / u64::from(height)) as u8);
                pixels.push(((x / 8 + y / 8) % 2 * 64 + 96) as u8);
            }
        }
        Source::new(pixels, width, height, PixelFormat::Rgb8)
    }

    /// A source from raw pixels, rows packed (`stride = width × bpp`).
    ///
    /// # Panics
    /// If `pixels` does not hold exactly `width × height` pixels.
    pub fn new(pixels: Vec<u8>, width: u32, height: u32, format: PixelFormat) -> Source {
        let stride = width * format.bytes_per_pixel();
        assert_eq!(pixels.len(), stride as usize * height as usize);
        let band_rows = height.div_ceil(BANDS.min(height));
        let scale = (width / 240).clamp(1, 4);
        // The stamp must lie inside every band (the first band of a frame
        // may be any of them), so its rows fit the shortest band.
        let shortest = match height % band_rows {
            0 => band_rows,
            rest => rest,
        };
        let stamp_rows = (7 * scale).min(shortest);
        let stamp_bytes = stamp_rows as usize * stride as usize;
        let bands = (0..height.div_ceil(band_rows))
            .map(|i| {
                let start = (i * band_rows) as usize * stride as usize;
                let rows = band_rows.min(height - i * band_rows);
                let len = rows as usize * stride as usize;
                let hash = |bytes: &[u8]| {
                    let mut h = Hasher::new();
                    h.update(bytes);
                    h
                };
                Band {
                    start,
                    len,
                    crc: hash(&pixels[start..start + len]),
                    below_stamp: hash(&pixels[start + stamp_bytes..start + len]),
                }
            })
            .collect();
        Source {
            pixels,
            shape: Shape {
                width,
                height,
                stride,
                format,
            },
            bands,
            stamp_rows,
            scale,
        }
    }

    /// The frames' shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Writes frame `id` into `dst` (exactly `shape().len()` bytes), copying
    /// the bands as `copy` picks for the frame's size, and returns its CRC-32.
    ///
    /// # Panics
    /// If `dst` has another length.
    pub fn fill(&self, id: u64, dst: &mut [u8], copy: CopyMode) -> u32 {
        assert_eq!(
            dst.len(),
            self.pixels.len(),
            "a frame buffer of the wrong size"
        );
        // The bands are pieces of one frame: copy them all the way the
        // frame's size calls for.
        let copy = copy.resolve(dst.len());
        let n = self.bands.len();
        let first = (id % n as u64) as usize;
        let mut at = 0;
        for band in self.bands[first..].iter().chain(&self.bands[..first]) {
            copy_payload(
                &mut dst[at..at + band.len],
                &self.pixels[band.start..band.start + band.len],
                copy,
            );
            at += band.len;
        }
        let stamp_bytes = self.stamp_rows as usize * self.shape.stride as usize;
        self.stamp(id, &mut dst[..stamp_bytes]);
        let mut crc = Hasher::new();
        crc.update(&dst[..stamp_bytes]);
        crc.combine(&self.bands[first].below_stamp);
        for band in self.bands[first + 1..].iter().chain(&self.bands[..first]) {
            crc.combine(&band.crc);
        }
        crc.finalize()
    }

    /// Draws `id` in white on black over the top rows (`rows` is those rows).
    fn stamp(&self, id: u64, rows: &mut [u8]) {
        let bpp = self.shape.format.bytes_per_pixel() as usize;
        let stride = self.shape.stride as usize;
        let scale = self.scale as usize;
        let text = id.to_string();
        // A black box one font pixel wider than the digits all round.
        let box_width = ((text.len() * 4 + 1) * scale).min(self.shape.width as usize);
        for (y, row) in rows.chunks_exact_mut(stride).enumerate() {
            let font_y = (y / scale).checked_sub(1);
            for x in 0..box_width {
                let font_x = (x / scale).checked_sub(1);
                let lit = match (font_x, font_y) {
                    (Some(fx), Some(fy)) if fy < 5 && fx % 4 < 3 => text
                        .as_bytes()
                        .get(fx / 4)
                        .is_some_and(|d| DIGITS[(d - b'0') as usize][fy] >> (2 - fx % 4) & 1 == 1),
                    _ => false,
                };
                let value = if lit { 255 } else { 0 };
                let pixel = &mut row[x * bpp..(x + 1) * bpp];
                pixel.fill(value);
                if bpp == 4 {
                    pixel[3] = 255;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(source: &Source, id: u64) -> (Vec<u8>, u32) {
        let mut buf = vec![0u8; source.shape().len() as usize];
        let crc = source.fill(id, &mut buf, CopyMode::Std);
        (buf, crc)
    }

    #[test]
    fn each_frame_carries_the_crc_of_its_own_bytes() {
        for (w, h) in [(64, 48), (7, 5), (300, 17), (1, 1), (50, 3)] {
            let source = Source::pattern(w, h);
            for id in [1, 2, 15, 16, 17, 12345] {
                let (bytes, crc) = frame(&source, id);
                assert_eq!(crc, crc32fast::hash(&bytes), "{w}x{h} frame {id}");
            }
        }
    }

    #[test]
    fn frames_differ_and_scroll_by_bands() {
        let source = Source::pattern(64, 64);
        let (one, _) = frame(&source, 1);
        let (two, _) = frame(&source, 2);
        assert_ne!(one, two);
        // Below the stamp, frame 2 is frame 1 moved up one band (4 rows).
        let stride = 64 * 3;
        let stamp = source.stamp_rows as usize * stride;
        assert_eq!(
            &two[stamp..2 * stride * 2],
            &one[4 * stride + stamp..4 * stride + 4 * stride]
        );
        // After a whole turn the pixels repeat; only the stamp differs.
        let (seventeen, _) = frame(&source, 17);
        assert_eq!(one[stamp..], seventeen[stamp..]);
        assert_ne!(one[..stamp], seventeen[..stamp]);
    }

    #[test]
    fn the_stamp_draws_the_frame_number() {
        let source = Source::pattern(64, 64);
        let (bytes, _) = frame(&source, 8);
        let lit = |x: usize, y: usize| bytes[(y * 64 + x) * 3] == 255;
        // "8" is all lit in its top row and its middle column is dark in
        // rows 2 and 4 (scale 1, one pixel of margin).
        assert!((1..4).all(|x| lit(x, 1)));
        assert!(!lit(2, 2) && lit(2, 3) && !lit(2, 4));
        assert!(!lit(0, 0), "the margin is black");
    }

    #[test]
    fn every_pixel_format_streams() {
        for (format, bpp) in [
            (PixelFormat::L8, 1),
            (PixelFormat::Rgb8, 3),
            (PixelFormat::Rgba8, 4),
        ] {
            let source = Source::new(vec![9; 20 * 10 * bpp], 20, 10, format);
            assert_eq!(source.shape().stride, 20 * bpp as u32);
            let (bytes, crc) = frame(&source, 3);
            assert_eq!(crc, crc32fast::hash(&bytes));
        }
    }
}
