//! Minimal PNG charts: hand-drawn axes, an embedded 8x8 bitmap font
//! (`font8x8`), no system fonts, no network.

use std::path::Path;

use font8x8::{UnicodeFonts, BASIC_FONTS};

pub type Rgb = [u8; 3];

pub const PALETTE: [Rgb; 5] =
    [[0x1f, 0x77, 0xb4], [0xd6, 0x27, 0x28], [0x2c, 0xa0, 0x2c], [0xff, 0x7f, 0x0e], [0x94, 0x67, 0xbd]];

/// An RGB raster.
pub struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    pub fn new(w: usize, h: usize) -> Self {
        Canvas { w, h, px: vec![255; w * h * 3] }
    }

    pub fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x < 0 || y < 0 || x as usize >= self.w || y as usize >= self.h {
            return;
        }
        let i = (y as usize * self.w + x as usize) * 3;
        self.px[i..i + 3].copy_from_slice(&c);
    }

    pub fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
        for y in y0.min(y1)..=y0.max(y1) {
            for x in x0.min(x1)..=x0.max(x1) {
                self.set(x, y, c);
            }
        }
    }

    /// A line `thick` pixels wide (Bresenham with a square brush).
    pub fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), thick: i64, c: Rgb) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.rect(x - thick / 2, y - thick / 2, x + (thick - 1) / 2, y + (thick - 1) / 2, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Text at (x, y) top-left, 8x8 glyphs scaled by `scale`.
    pub fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, c: Rgb) {
        for (i, ch) in s.chars().enumerate() {
            let glyph = BASIC_FONTS.get(ch).unwrap_or([0; 8]);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        let gx = x + (i as i64 * 8 + col) * scale;
                        let gy = y + row as i64 * scale;
                        self.rect(gx, gy, gx + scale - 1, gy + scale - 1, c);
                    }
                }
            }
        }
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let file = std::fs::File::create(path)?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), self.w as u32, self.h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header()?;
        writer.write_image_data(&self.px)?;
        Ok(())
    }
}

/// One panel's series: name, colour, points (x index, y value).
pub struct Series {
    pub name: String,
    pub color: Rgb,
    pub points: Vec<(usize, f64)>,
}

/// A panel of line series over categorical x labels.
pub struct Panel {
    pub title: String,
    pub x_labels: Vec<String>,
    pub series: Vec<Series>,
    /// Optional horizontal reference line (e.g. the target).
    pub reference: Option<f64>,
}

/// Draws panels side by side with a shared y range and a legend.
pub fn chart(
    path: &Path,
    title: &str,
    y_range: (f64, f64),
    y_fmt: fn(f64) -> String,
    panels: &[Panel],
) -> anyhow::Result<()> {
    let (pw, ph) = (360i64, 300i64);
    let (ml, mt, mb) = (70i64, 50i64, 90i64);
    let w = ml + pw * panels.len() as i64 + 30;
    let h = mt + ph + mb;
    let mut c = Canvas::new(w as usize, h as usize);
    let black = [0, 0, 0];
    let grey = [200, 200, 200];
    c.text(ml, 12, title, 2, black);
    let (y0, y1) = y_range;
    let ypix = |v: f64| mt + ph - 20 - (((v - y0) / (y1 - y0)).clamp(-0.05, 1.05) * (ph - 40) as f64) as i64;
    for (pi, panel) in panels.iter().enumerate() {
        let left = ml + pi as i64 * pw;
        let right = left + pw - 30;
        // Grid and y labels.
        for t in 0..=5 {
            let v = y0 + (y1 - y0) * t as f64 / 5.0;
            let y = ypix(v);
            c.line((left, y), (right, y), 1, grey);
            if pi == 0 {
                c.text(4, y - 4, &y_fmt(v), 1, black);
            }
        }
        c.line((left, mt), (left, mt + ph - 20), 1, black);
        c.line((left, mt + ph - 20), (right, mt + ph - 20), 1, black);
        c.text(left + 10, mt - 14, &panel.title, 1, black);
        let n = panel.x_labels.len().max(2);
        let xpix = |i: usize| left + 20 + (i as i64 * (pw - 70)) / (n as i64 - 1);
        for (i, l) in panel.x_labels.iter().enumerate() {
            c.text(xpix(i) - 4 * l.len() as i64, mt + ph - 14, l, 1, black);
        }
        if let Some(r) = panel.reference {
            let y = ypix(r);
            let mut x = left;
            while x < right {
                c.line((x, y), ((x + 6).min(right), y), 1, [120, 120, 120]);
                x += 12;
            }
        }
        for s in &panel.series {
            let pts: Vec<(i64, i64)> = s.points.iter().map(|&(i, v)| (xpix(i), ypix(v))).collect();
            for win in pts.windows(2) {
                c.line(win[0], win[1], 2, s.color);
            }
            for &(x, y) in &pts {
                c.rect(x - 3, y - 3, x + 3, y + 3, s.color);
            }
        }
    }
    // Legend from the first panel.
    if let Some(p) = panels.first() {
        let mut x = ml;
        let y = mt + ph + 30;
        c.text(ml, mt + ph + 8, "x: agents (N)", 1, black);
        for s in &p.series {
            c.rect(x, y, x + 14, y + 8, s.color);
            c.text(x + 20, y, &s.name, 1, black);
            x += 28 + 8 * s.name.len() as i64 + 10;
        }
    }
    c.save(path)
}
