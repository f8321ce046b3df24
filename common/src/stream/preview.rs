//! The newest frame of a stream drawn live in the terminal, two pixels per character cell.
//!
//! Each cell shows an upper half block `▀`: its foreground colour is the
//! upper pixel, its background the lower one, in 24-bit colour. The picture
//! is scaled (nearest neighbour) to fit the terminal, keeping its aspect
//! ratio; the last row holds a status line. The pixels are read in place
//! from shared memory while another process may be writing them, so every
//! read is bounds-checked and a pixel that is not there is black.

use std::io::Write;
use std::time::{Duration, Instant};

use super::format::PixelFormat;

/// Pixels to draw: a frame's bytes, read in place, and how they are laid out.
#[derive(Clone, Copy, Debug)]
pub struct Picture<'a> {
    /// The pixel bytes, top row first (may be shorter than `stride × height`).
    pub pixels: &'a [u8],
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Bytes from one row to the next.
    pub stride: u32,
    /// The pixel format.
    pub format: PixelFormat,
}

type Rgb = (u8, u8, u8);

const BLACK: Rgb = (0, 0, 0);

/// The shortest time between two draws: at most 20 a second.
const INTERVAL: Duration = Duration::from_millis(50);

/// The colour of pixel (`x`, `y`), or black when its bytes are not there.
fn pixel(picture: &Picture, x: u32, y: u32) -> Rgb {
    let bpp = picture.format.bytes_per_pixel();
    let bytes = u64::from(y)
        .checked_mul(u64::from(picture.stride))
        .and_then(|row| row.checked_add(u64::from(x) * u64::from(bpp)))
        .and_then(|at| usize::try_from(at).ok())
        .and_then(|at| picture.pixels.get(at..at.checked_add(bpp as usize)?));
    match (picture.format, bytes) {
        (PixelFormat::L8, Some(&[v])) => (v, v, v),
        (_, Some(&[r, g, b, ..])) => (r, g, b),
        _ => BLACK,
    }
}

/// The picture's size in pixels once fitted into `cols` × `2 × text_rows`
/// square half-cells, keeping its aspect ratio.
fn fit(width: u32, height: u32, cols: u16, text_rows: u16) -> (u32, u32) {
    let (w, h) = (u64::from(width), u64::from(height));
    let (cols, px_rows) = (u64::from(cols), 2 * u64::from(text_rows));
    if w == 0 || h == 0 || cols == 0 || px_rows == 0 {
        return (0, 0);
    }
    let (out_w, out_h) = if w * px_rows <= h * cols {
        (w * px_rows / h, px_rows)
    } else {
        (cols, h * cols / w)
    };
    (out_w.max(1) as u32, out_h.max(1) as u32)
}

/// Appends a colour escape (`38` foreground, `48` background) unless the
/// colour is already `current`.
fn set_colour(out: &mut String, current: &mut Option<Rgb>, layer: u8, colour: Rgb) {
    if *current != Some(colour) {
        let (r, g, b) = colour;
        out.push_str(&format!("\x1b[{layer};2;{r};{g};{b}m"));
        *current = Some(colour);
    }
}

/// The picture scaled into at most `cols` columns and `rows - 1` text rows,
/// then `status` (truncated to `cols` characters) on row `rows`, as ANSI
/// text that starts with the cursor home.
pub fn render(picture: &Picture, cols: u16, rows: u16, status: &str) -> String {
    let (out_w, out_h) = fit(picture.width, picture.height, cols, rows.saturating_sub(1));
    let source = |i: u32, n: u32, of: u32| (u64::from(i) * u64::from(of) / u64::from(n)) as u32;
    let mut out = String::from("\x1b[H");
    let (mut fg, mut bg) = (None, None);
    for text_row in 0..out_h.div_ceil(2) {
        if text_row > 0 {
            out.push_str(&format!("\x1b[{};1H", text_row + 1));
        }
        let (upper, lower) = (2 * text_row, 2 * text_row + 1);
        for x in 0..out_w {
            let sx = source(x, out_w, picture.width);
            let top = pixel(picture, sx, source(upper, out_h, picture.height));
            let bottom = if lower < out_h {
                pixel(picture, sx, source(lower, out_h, picture.height))
            } else {
                BLACK
            };
            set_colour(&mut out, &mut fg, 38, top);
            set_colour(&mut out, &mut bg, 48, bottom);
            out.push('▀');
        }
    }
    out.push_str(&format!("\x1b[0m\x1b[{};1H", rows.max(1)));
    let status = status.chars().filter(|c| !c.is_control());
    out.extend(status.take(usize::from(cols)));
    out.push_str("\x1b[K");
    out
}

/// Columns and rows of the terminal on stdout, or `None` when stdout is not
/// a terminal.
pub fn terminal_size() -> Option<(u16, u16)> {
    let stdout = std::io::stdout();
    if !rustix::termios::isatty(&stdout) {
        return None;
    }
    let size = rustix::termios::tcgetwinsize(&stdout).ok()?;
    Some((size.ws_col, size.ws_row))
}

/// A live view of a stream's newest frame on stdout, at most 20 draws a second.
///
/// Dropping it puts the terminal back: default colours, the cursor shown,
/// and the cursor below the picture.
#[derive(Debug)]
pub struct Preview {
    /// When the last draw was, if any.
    last: Option<Instant>,
    /// Terminal columns and rows, picture width and height at the last draw:
    /// when any changes, the screen is cleared.
    shape: Option<(u16, u16, u32, u32)>,
}

impl Preview {
    /// A preview, or `None` when stdout is not a terminal (no preview then).
    pub fn new() -> Option<Preview> {
        rustix::termios::isatty(std::io::stdout()).then_some(Preview {
            last: None,
            shape: None,
        })
    }

    /// Whether it is time for the next draw: the caller builds a
    /// [`Picture`] only then.
    pub fn due(&self) -> bool {
        self.last.is_none_or(|at| at.elapsed() >= INTERVAL)
    }

    /// Draws `picture` and `status` at the terminal's current size (in one
    /// write to stdout), and records the time.
    ///
    /// # Errors
    /// When stdout cannot be written.
    pub fn draw(&mut self, picture: &Picture, status: &str) -> std::io::Result<()> {
        let text = self.compose(picture, status);
        self.show(&text)
    }

    /// The text [`Preview::draw`] writes, without writing it: a reader
    /// builds it while it reads a frame in place, and shows it only if the
    /// frame turns out whole.
    pub fn compose(&mut self, picture: &Picture, status: &str) -> String {
        let (cols, rows) = terminal_size()
            .filter(|&(cols, rows)| cols > 0 && rows > 0)
            .unwrap_or((80, 24));
        let shape = Some((cols, rows, picture.width, picture.height));
        let mut text = String::new();
        if self.shape.is_none() {
            text.push_str("\x1b[?25l");
        }
        if self.shape != shape {
            text.push_str("\x1b[2J");
        }
        text.push_str(&render(picture, cols, rows, status));
        self.shape = shape;
        text
    }

    /// Writes text made by [`Preview::compose`] and records the time.
    ///
    /// # Errors
    /// When stdout cannot be written.
    pub fn show(&mut self, text: &str) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        self.last = Some(Instant::now());
        Ok(())
    }
}

impl Drop for Preview {
    fn drop(&mut self) {
        if let Some((_, rows, _, _)) = self.shape {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\x1b[0m\x1b[?25h\x1b[{rows};1H\r\n");
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(pixels: &[u8], width: u32, height: u32, format: PixelFormat) -> Picture<'_> {
        let stride = width * format.bytes_per_pixel();
        Picture {
            pixels,
            width,
            height,
            stride,
            format,
        }
    }

    /// The `▀` on each text row of the picture (rows start at a cursor move).
    fn cells_per_row(text: &str) -> Vec<usize> {
        let picture = &text[..text.find("\x1b[0m").unwrap()];
        picture
            .split(";1H")
            .map(|row| row.matches('▀').count())
            .collect()
    }

    #[test]
    fn two_by_two_rgb_gives_upper_and_lower_colours() {
        let pixels = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let text = render(&picture(&pixels, 2, 2, PixelFormat::Rgb8), 2, 2, "");
        let cells = "\x1b[H\x1b[38;2;1;2;3m\x1b[48;2;7;8;9m▀\x1b[38;2;4;5;6m\x1b[48;2;10;11;12m▀";
        assert!(text.starts_with(&format!("{cells}\x1b[0m")), "{text:?}");
        assert_eq!(text.matches('▀').count(), 2);
    }

    #[test]
    fn l8_is_grey_and_rgba_ignores_alpha() {
        let text = render(&picture(&[10, 200], 1, 2, PixelFormat::L8), 1, 2, "");
        assert!(text.contains("\x1b[38;2;10;10;10m\x1b[48;2;200;200;200m▀"));
        let rgba = [1, 2, 3, 0, 4, 5, 6, 255];
        let text = render(&picture(&rgba, 1, 2, PixelFormat::Rgba8), 1, 2, "");
        assert!(text.contains("\x1b[38;2;1;2;3m\x1b[48;2;4;5;6m▀"));
    }

    #[test]
    fn a_large_picture_is_scaled_to_fit_keeping_its_shape() {
        let wide = vec![128; 100 * 50 * 3];
        let text = render(&picture(&wide, 100, 50, PixelFormat::Rgb8), 20, 11, "");
        assert_eq!(cells_per_row(&text), vec![20; 5]);
        let tall = vec![128; 10 * 100];
        let text = render(&picture(&tall, 10, 100, PixelFormat::L8), 20, 11, "");
        assert_eq!(cells_per_row(&text), vec![2; 10]);
        let text = render(&picture(&tall, 10, 100, PixelFormat::L8), 7, 3, "");
        assert!(cells_per_row(&text).iter().all(|&n| n <= 7));
        assert!(cells_per_row(&text).len() <= 2);
    }

    #[test]
    fn short_or_lying_pixels_are_black_not_a_panic() {
        let mut short = picture(&[255; 5], 4, 4, PixelFormat::Rgb8);
        let text = render(&short, 4, 3, "");
        assert!(text.contains("\x1b[38;2;0;0;0m"));
        assert_eq!(text.matches('▀').count(), 8);
        short.stride = u32::MAX;
        short.height = u32::MAX;
        render(&short, 80, 24, "");
        render(&picture(&[], 0, 0, PixelFormat::L8), 0, 0, "");
    }

    #[test]
    fn the_status_line_is_truncated_to_the_columns() {
        let text = render(&picture(&[0], 1, 1, PixelFormat::L8), 5, 4, "frame 123456");
        assert!(text.ends_with("\x1b[0m\x1b[4;1Hframe\x1b[K"), "{text:?}");
    }

    #[test]
    fn equal_colours_are_not_repeated() {
        let red = [255, 0, 0].repeat(8);
        let text = render(&picture(&red, 4, 2, PixelFormat::Rgb8), 4, 2, "");
        assert_eq!(text.matches('▀').count(), 4);
        assert_eq!(text.matches("\x1b[38;2;").count(), 1);
        assert_eq!(text.matches("\x1b[48;2;").count(), 1);
    }
}
