//! The image side: PNG checks before sharing, and decoding with explicit limits.
//!
//! The image side: checking a file is a PNG before anything is shared, and
//! decoding a payload with explicit limits.
//!
//! The decoder reads straight from the slice it is given (the mapped segment,
//! for shared memory) through `image::ImageReader` with the PNG format forced,
//! so nothing is copied up front. Its [`Limits`] bound what a hostile image can
//! make it allocate: dimensions are checked against them as soon as the IHDR
//! chunk is read, before any pixel data is inflated, and `max_alloc` caps
//! every buffer the decoder asks for.

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat, ImageReader};

use crate::error::{Error, Result};

/// The eight bytes every PNG file starts with.
pub const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

/// An image file that passed the checks and is open for reading.
#[derive(Debug)]
pub struct SourceImage {
    /// Where it came from.
    pub path: PathBuf,
    /// The open file.
    pub file: File,
    /// Its size in bytes (at least 8).
    pub len: u64,
}

/// Opens `path` and checks that it is a non-empty regular file starting with
/// the PNG signature. Call this before creating any segment or socket.
///
/// # Errors
/// [`Error::BadImage`] saying what is wrong: missing, unreadable, a directory,
/// empty, or not a PNG.
pub fn open_source(path: &Path) -> Result<SourceImage> {
    let bad = |reason: String| Error::BadImage {
        path: path.to_owned(),
        reason,
    };
    let mut file = File::open(path).map_err(|e| {
        bad(match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_owned(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            _ => e.to_string(),
        })
    })?;
    let meta = file.metadata().map_err(|e| bad(e.to_string()))?;
    if meta.is_dir() {
        return Err(bad("is a directory".into()));
    }
    if !meta.is_file() {
        return Err(bad("is not a regular file".into()));
    }
    if meta.len() == 0 {
        return Err(bad("is empty (0 bytes)".into()));
    }
    let mut head = [0u8; 8];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(bad(e.to_string())),
        }
    }
    if head[..got] != SIGNATURE[..got] || got < SIGNATURE.len() {
        let shown: Vec<String> = head[..got].iter().map(|b| format!("{b:02x}")).collect();
        return Err(bad(format!(
            "not a PNG file (it starts with {}, a PNG with 89 50 4e 47 0d 0a 1a 0a)",
            if shown.is_empty() {
                "nothing".to_owned()
            } else {
                shown.join(" ")
            }
        )));
    }
    Ok(SourceImage {
        path: path.to_owned(),
        file,
        len: meta.len(),
    })
}

/// Bounds on what decoding may allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Widest image accepted, in pixels (`consumer --max-dim`).
    pub max_width: u32,
    /// Tallest image accepted, in pixels (`consumer --max-dim`).
    pub max_height: u32,
    /// Most bytes the decoder may allocate (`consumer --max-alloc`, in MiB).
    pub max_alloc: u64,
}

impl Default for Limits {
    /// 16384 x 16384 pixels, 1 GiB of allocations.
    fn default() -> Limits {
        Limits {
            max_width: 16_384,
            max_height: 16_384,
            max_alloc: 1 << 30,
        }
    }
}

/// A decoded image and what the reports say of it.
#[derive(Debug)]
pub struct Decoded {
    /// The pixels.
    pub image: DynamicImage,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The image crate's colour type name, e.g. "Rgb8".
    pub color: String,
}

/// Decodes PNG `bytes` in place, within `limits`.
///
/// # Errors
/// [`Error::Decode`] with the decoder's reason (or the limit exceeded).
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Decoded> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), ImageFormat::Png);
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_width);
    image_limits.max_image_height = Some(limits.max_height);
    image_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(image_limits);
    let image = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => Error::Decode(format!(
            "{e} (the limits are {} x {} pixels and {} MiB of allocations; \
             raise them with --max-dim and --max-alloc)",
            limits.max_width,
            limits.max_height,
            limits.max_alloc >> 20
        )),
        other => Error::Decode(other.to_string()),
    })?;
    Ok(Decoded {
        width: image.width(),
        height: image.height(),
        color: format!("{:?}", image.color()),
        image,
    })
}

/// Checks that `path`'s extension names a format [`save`] can write.
/// The consumer calls this before waiting, so a typo fails at once.
///
/// # Errors
/// [`Error::Output`] for an unknown or unsupported extension.
pub fn check_output(path: &Path) -> Result<ImageFormat> {
    let bad = |reason: String| Error::Output {
        path: path.to_owned(),
        reason,
    };
    let format =
        ImageFormat::from_path(path).map_err(|_| bad("unknown extension (use .png)".to_owned()))?;
    if format != ImageFormat::Png {
        return Err(bad(format!(
            "{} output is not supported (use .png)",
            format.extensions_str().first().unwrap_or(&"this")
        )));
    }
    Ok(format)
}

/// Writes `image` to `path` in the format its extension names.
///
/// # Errors
/// [`Error::Output`] for an unsupported extension or a failed write.
pub fn save(image: &DynamicImage, path: &Path) -> Result<()> {
    let format = check_output(path)?;
    image
        .save_with_format(path, format)
        .map_err(|e| Error::Output {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

/// CRC-32 of `bytes`, as zlib computes it.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_png(width: u32, height: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn decodes_and_names_the_colour_type() {
        let d = decode(&tiny_png(5, 3), &Limits::default()).unwrap();
        assert_eq!((d.width, d.height, d.color.as_str()), (5, 3, "Rgb8"));
    }

    #[test]
    fn dimensions_beyond_the_limits_are_refused() {
        let limits = Limits {
            max_width: 4,
            ..Limits::default()
        };
        let err = decode(&tiny_png(5, 3), &limits).unwrap_err();
        assert!(matches!(err, Error::Decode(_)), "{err}");
        assert!(err.to_string().contains("--max-dim"), "{err}");
    }

    #[test]
    fn crc_matches_zlib() {
        // zlib.crc32(b"123456789") == 0xcbf43926, the standard check value.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }
}
