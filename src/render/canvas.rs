//! An RGB picture in memory: rectangles, blending, text from the shipped font, PNG.
//!
//! Why embedded: the binary must draw names and "NOT FOR CLINICAL USE" on a machine
//! with no fonts installed, so DejaVu Sans (licence in data/fonts/) is compiled in
//! and rasterised with `ab_glyph`; PNG encoding is the `png` crate's.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};

/// DejaVu Sans 2.37, see data/fonts/README.md.
pub(crate) const FONT_BYTES: &[u8] = include_bytes!("../../data/fonts/DejaVuSans.ttf");

pub(crate) type Rgb = [u8; 3];

/// A picture of `width × height` RGB pixels, row-major.
#[derive(Debug, Clone)]
pub(crate) struct Canvas {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

fn font() -> FontRef<'static> {
    FontRef::try_from_slice(FONT_BYTES).expect("the shipped DejaVu Sans parses")
}

impl Canvas {
    pub(crate) fn new(width: u32, height: u32, fill: Rgb) -> Canvas {
        let pixels = fill
            .iter()
            .copied()
            .cycle()
            .take(width as usize * height as usize * 3)
            .collect();
        Canvas {
            width,
            height,
            pixels,
        }
    }

    fn offset(&self, x: i64, y: i64) -> Option<usize> {
        (x >= 0 && y >= 0 && x < i64::from(self.width) && y < i64::from(self.height))
            .then(|| (y as usize * self.width as usize + x as usize) * 3)
    }

    pub(crate) fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if let Some(o) = self.offset(x, y) {
            self.pixels[o..o + 3].copy_from_slice(&c);
        }
    }

    /// Mix `c` over the pixel with weight `alpha` (0..=1).
    pub(crate) fn blend(&mut self, x: i64, y: i64, c: Rgb, alpha: f32) {
        if let Some(o) = self.offset(x, y) {
            let a = alpha.clamp(0.0, 1.0);
            for (i, channel) in c.iter().enumerate() {
                let old = f32::from(self.pixels[o + i]);
                self.pixels[o + i] = (old + (f32::from(*channel) - old) * a).round() as u8;
            }
        }
    }

    pub(crate) fn fill_rect(&mut self, x: i64, y: i64, w: u32, h: u32, c: Rgb) {
        for yy in y..y + i64::from(h) {
            for xx in x..x + i64::from(w) {
                self.set(xx, yy, c);
            }
        }
    }

    /// Draw `text` with its top-left at (x, y), `size` px high; returns its width.
    pub(crate) fn text(&mut self, x: f32, y: f32, size: f32, c: Rgb, text: &str) -> f32 {
        let font = font();
        let scaled = font.as_scaled(PxScale::from(size));
        let mut caret = x;
        let mut last = None;
        for ch in text.chars() {
            let id = scaled.glyph_id(ch);
            if let Some(prev) = last {
                caret += scaled.kern(prev, id);
            }
            let glyph =
                id.with_scale_and_position(size, ab_glyph::point(caret, y + scaled.ascent()));
            caret += scaled.h_advance(id);
            last = Some(id);
            if let Some(outline) = font.outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                outline.draw(|gx, gy, coverage| {
                    self.blend(
                        bounds.min.x as i64 + i64::from(gx),
                        bounds.min.y as i64 + i64::from(gy),
                        c,
                        coverage,
                    );
                });
            }
        }
        caret - x
    }

    /// The width `text` would take at `size` px.
    pub(crate) fn text_width(size: f32, text: &str) -> f32 {
        let font = font();
        let scaled = font.as_scaled(PxScale::from(size));
        text.chars()
            .map(|ch| scaled.h_advance(scaled.glyph_id(ch)))
            .sum()
    }

    /// Encode as an 8-bit RGB PNG.
    pub(crate) fn to_png(&self) -> Result<Vec<u8>, png::EncodingError> {
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, self.width, self.height);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header()?;
            writer.write_image_data(&self.pixels)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_leaves_ink_and_the_png_decodes_to_the_same_pixels() {
        let mut c = Canvas::new(120, 24, [0, 0, 0]);
        let w = c.text(2.0, 2.0, 16.0, [255, 255, 255], "NOT FOR");
        assert!(w > 40.0 && w < 118.0, "width {w}");
        let lit = c.pixels.chunks(3).filter(|p| p[0] > 128).count();
        assert!(lit > 30, "only {lit} pixels of ink");
        let png = c.to_png().unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (120, 24));
        assert_eq!(&buf[..info.buffer_size()], &c.pixels[..]);
    }
}
