//! Drawing primitives for the monthly PDF: embedded fonts, measured and fitted text, tables and
//! the messages-per-day bar chart, on top of krilla's page surface (origin top left, y down, pt).

use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::num::NormalizedF32;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};

/// Longest text, in characters, that is ever measured or drawn: names and provider error texts
/// are free-form, and a pathological one must not make shaping costly or overflow the page.
const MAX_CHARS: usize = 200;

pub(crate) const INK: Rgb = Rgb(0x22, 0x22, 0x22);
pub(crate) const MUTED: Rgb = Rgb(0x66, 0x66, 0x66);
pub(crate) const ACCENT: Rgb = Rgb(0x1F, 0x4E, 0x79);
const RULE: Rgb = Rgb(0xD0, 0xD4, 0xD9);
const GRID: Rgb = Rgb(0xE4, 0xE7, 0xEB);
const HEADER_BG: Rgb = Rgb(0xE9, 0xEF, 0xF5);
const ZEBRA_BG: Rgb = Rgb(0xF7, 0xF8, 0xFA);
const WEEKEND_BG: Rgb = Rgb(0xF3, 0xF4, 0xF6);
const SENT: Rgb = Rgb(0xBD, 0xD7, 0xEE);
const DELIVERED: Rgb = Rgb(0x5B, 0x9B, 0xD5);
const READ: Rgb = ACCENT;
const FAILED: Rgb = Rgb(0xC0, 0x50, 0x4D);

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Weight {
    Regular,
    Bold,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// Noto Sans regular and bold, compiled into the binary so rendering never depends on the fonts
/// of the machine; krilla embeds only the glyphs a document uses. The rustybuzz faces (already
/// built for krilla's own shaping) answer which characters exist and how wide they are.
pub(crate) struct Fonts {
    regular: Font,
    bold: Font,
    regular_face: rustybuzz::Face<'static>,
    bold_face: rustybuzz::Face<'static>,
}

impl Fonts {
    pub(crate) fn load() -> Option<Self> {
        Some(Self {
            regular: Font::new(notosans::REGULAR_TTF.into(), 0)?,
            bold: Font::new(notosans::BOLD_TTF.into(), 0)?,
            regular_face: rustybuzz::Face::from_slice(notosans::REGULAR_TTF, 0)?,
            bold_face: rustybuzz::Face::from_slice(notosans::BOLD_TTF, 0)?,
        })
    }

    fn face(&self, weight: Weight) -> &rustybuzz::Face<'static> {
        match weight {
            Weight::Regular => &self.regular_face,
            Weight::Bold => &self.bold_face,
        }
    }

    /// Width in points of `text` set in `weight` at `size`: the sum of the glyphs' advances.
    /// This leaves out the kerning krilla's shaping adds when drawing, a fraction of a point per
    /// line; Noto Sans digits are tabular and unkerned, so right-aligned numbers line up exactly.
    /// Summing advances instead of shaping keeps measuring cheap even in unoptimised builds.
    pub(crate) fn width(&self, weight: Weight, size: f32, text: &str) -> f32 {
        let face = self.face(weight);
        let units: u32 = text.chars().map(|c| advance(face, c)).sum();
        units as f32 * size / face.units_per_em() as f32
    }

    /// `text` made safe to draw: capped in length, control characters as spaces, and characters
    /// the font has no glyph for (emoji, CJK) as '?' rather than an empty box.
    pub(crate) fn sanitize(&self, text: &str) -> String {
        let face = &self.regular_face;
        text.chars()
            .take(MAX_CHARS)
            .map(|c| match c {
                c if c.is_control() => ' ',
                c if face.glyph_index(c).is_none() => '?',
                c => c,
            })
            .collect()
    }

    /// `text` sanitised and, if wider than `max`, cut at a character boundary with an ellipsis.
    pub(crate) fn fit(&self, weight: Weight, size: f32, text: &str, max: f32) -> String {
        let text = self.sanitize(text);
        if self.width(weight, size, &text) <= max {
            return text;
        }
        let face = self.face(weight);
        let per_unit = size / face.units_per_em() as f32;
        let mut room = max - self.width(weight, size, "…");
        let mut cut = String::new();
        for c in text.chars() {
            room -= advance(face, c) as f32 * per_unit;
            if room < 0.0 {
                break;
            }
            cut.push(c);
        }
        cut.trim_end().to_owned() + "…"
    }

    /// Greedy word wrap of `text` into lines no wider than `max`.
    pub(crate) fn wrap(&self, weight: Weight, size: f32, text: &str, max: f32) -> Vec<String> {
        let mut lines = Vec::new();
        let mut line = String::new();
        for word in text.split_whitespace() {
            let candidate = if line.is_empty() {
                word.to_owned()
            } else {
                format!("{line} {word}")
            };
            if line.is_empty() || self.width(weight, size, &candidate) <= max {
                line = candidate;
            } else {
                lines.push(std::mem::replace(&mut line, word.to_owned()));
            }
        }
        if !line.is_empty() {
            lines.push(line);
        }
        lines
    }
}

/// An sRGB colour usable in constants (krilla's own constructor is not `const`).
#[derive(Clone, Copy)]
pub(crate) struct Rgb(u8, u8, u8);

impl Rgb {
    fn color(self) -> rgb::Color {
        rgb::Color::new(self.0, self.1, self.2)
    }
}

/// A text style: weight, size in points and colour.
#[derive(Clone, Copy)]
pub(crate) struct Pen {
    pub weight: Weight,
    pub size: f32,
    pub color: Rgb,
}

impl Pen {
    pub(crate) const fn new(weight: Weight, size: f32, color: Rgb) -> Self {
        Self {
            weight,
            size,
            color,
        }
    }
}

const LEGEND: Pen = Pen::new(Weight::Regular, 8.5, INK);
const AXIS: Pen = Pen::new(Weight::Regular, 8.0, MUTED);
const DAY: Pen = Pen::new(Weight::Regular, 7.0, MUTED);
const CAPTION: Pen = Pen::new(Weight::Regular, 8.5, MUTED);
const CELL: Pen = Pen::new(Weight::Regular, 9.5, INK);
const HEAD_CELL: Pen = Pen::new(Weight::Bold, 9.5, ACCENT);

fn solid(color: Rgb) -> Fill {
    Fill {
        paint: color.color().into(),
        opacity: NormalizedF32::ONE,
        rule: Default::default(),
    }
}

/// One column of a table: header text, width in points and alignment of its cells.
pub(crate) struct Column {
    title: &'static str,
    width: f32,
    align: Align,
}

pub(crate) const fn col(title: &'static str, width: f32, align: Align) -> Column {
    Column {
        title,
        width,
        align,
    }
}

const ROW_H: f32 = 17.0;
const CELL_PAD: f32 = 6.0;

/// One day's counts as the chart plots them.
pub(crate) struct DayBar {
    pub label: String,
    pub weekend: bool,
    pub sent: i64,
    pub failed: i64,
    pub delivered: i64,
    pub read: i64,
}

/// Horizontal advance of `c` in font units (zero where the font lacks it).
fn advance(face: &rustybuzz::Face<'static>, c: char) -> u32 {
    face.glyph_index(c)
        .and_then(|g| face.glyph_hor_advance(g))
        .map_or(0, u32::from)
}

/// Smallest "nice" axis step (1, 2 or 5 times a power of ten) that splits `max` into at most
/// `ticks` intervals, and the axis top it gives.
pub(crate) fn nice_scale(max: i64, ticks: i64) -> (i64, i64) {
    let max = max.max(1);
    let mut magnitude = 1i64;
    loop {
        for factor in [1, 2, 5] {
            let step = factor * magnitude;
            if step * ticks >= max {
                return (step, (max + step - 1) / step * step);
            }
        }
        magnitude *= 10;
    }
}

/// A page being drawn on, with the fonts to draw text in.
pub(crate) struct Canvas<'s, 'p> {
    pub surface: &'s mut Surface<'p>,
    pub fonts: &'s Fonts,
}

impl Canvas<'_, '_> {
    /// Draws `text` with its baseline at `y`; `x` is its left edge, or its right edge for
    /// [`Align::Right`]. The text must already be sanitised.
    pub(crate) fn text(&mut self, (x, y): (f32, f32), pen: Pen, align: Align, text: &str) {
        if text.is_empty() {
            return;
        }
        let x = match align {
            Align::Left => x,
            Align::Right => x - self.fonts.width(pen.weight, pen.size, text),
        };
        let font = match pen.weight {
            Weight::Regular => self.fonts.regular.clone(),
            Weight::Bold => self.fonts.bold.clone(),
        };
        self.surface.set_stroke(None);
        self.surface.set_fill(Some(solid(pen.color)));
        let at = Point::from_xy(x, y);
        let ltr = TextDirection::LeftToRight;
        self.surface.draw_text(at, font, pen.size, text, false, ltr);
    }

    /// Fills the rectangle at (`x`, `y`) of size `w` × `h`; degenerate ones draw nothing.
    pub(crate) fn rect(&mut self, (x, y): (f32, f32), (w, h): (f32, f32), color: Rgb) {
        let Some(r) = Rect::from_xywh(x, y, w, h) else {
            return;
        };
        let mut pb = PathBuilder::new();
        pb.push_rect(r);
        if let Some(path) = pb.finish() {
            self.surface.set_stroke(None);
            self.surface.set_fill(Some(solid(color)));
            self.surface.draw_path(&path);
        }
    }

    /// Strokes a straight line from `a` to `b`, `w` points wide.
    pub(crate) fn line(&mut self, a: (f32, f32), b: (f32, f32), w: f32, color: Rgb) {
        let mut pb = PathBuilder::new();
        pb.move_to(a.0, a.1);
        pb.line_to(b.0, b.1);
        if let Some(path) = pb.finish() {
            self.surface.set_fill(None);
            self.surface.set_stroke(Some(Stroke {
                paint: color.color().into(),
                width: w,
                ..Default::default()
            }));
            self.surface.draw_path(&path);
        }
    }

    fn row(&mut self, (x, y): (f32, f32), columns: &[Column], cells: &[&str], pen: Pen) {
        let mut cx = x;
        for (col, cell) in columns.iter().zip(cells) {
            let fitted = self
                .fonts
                .fit(pen.weight, pen.size, cell, col.width - 2.0 * CELL_PAD);
            let tx = match col.align {
                Align::Left => cx + CELL_PAD,
                Align::Right => cx + col.width - CELL_PAD,
            };
            self.text((tx, y + 12.0), pen, col.align, &fitted);
            cx += col.width;
        }
    }

    /// Draws a table with a shaded header row and zebra-striped body rows from `top`; cells too
    /// wide for their column are cut with an ellipsis. Returns the y below the table.
    pub(crate) fn table(
        &mut self,
        (x, top): (f32, f32),
        columns: &[Column],
        rows: &[Vec<String>],
    ) -> f32 {
        let total: f32 = columns.iter().map(|c| c.width).sum();
        self.rect((x, top), (total, ROW_H + 1.0), HEADER_BG);
        let titles: Vec<&str> = columns.iter().map(|c| c.title).collect();
        self.row((x, top + 0.5), columns, &titles, HEAD_CELL);
        let mut y = top + ROW_H + 1.0;
        for (i, row) in rows.iter().enumerate() {
            if i % 2 == 1 {
                self.rect((x, y), (total, ROW_H), ZEBRA_BG);
            }
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            self.row((x, y), columns, &cells, CELL);
            y += ROW_H;
        }
        self.line((x, y), (x + total, y), 0.75, RULE);
        y
    }

    /// Draws the messages-per-day chart into the box (`x`, `y`, `w`, `h`): a legend on top, a
    /// y-axis scale with grid lines, weekends shaded, per day a blue bar of sent messages whose
    /// darker lower parts are the delivered and read ones (both subsets of sent) and a red bar of
    /// failed sends beside it, with the day labels below and `caption` under them.
    pub(crate) fn daily_chart(
        &mut self,
        (x, y, w, h): (f32, f32, f32, f32),
        days: &[DayBar],
        caption: &str,
    ) {
        let legend = [
            ("Sent", SENT),
            ("Delivered", DELIVERED),
            ("Read", READ),
            ("Failed", FAILED),
        ];
        let mut lx = x + w;
        for (label, color) in legend.iter().rev() {
            lx -= self.fonts.width(LEGEND.weight, LEGEND.size, label);
            self.text((lx, y + 8.0), LEGEND, Align::Left, label);
            lx -= 12.0;
            self.rect((lx, y + 0.5), (8.0, 8.0), *color);
            lx -= 14.0;
        }
        self.text((x, y + 8.0), CAPTION, Align::Left, "Messages");

        let max = days
            .iter()
            .map(|d| d.sent.max(d.failed).max(d.delivered).max(d.read));
        let (step, top) = nice_scale(max.max().unwrap_or(0), 5);
        let label_w = self.fonts.width(AXIS.weight, AXIS.size, &top.to_string()) + 6.0;
        let (plot_l, plot_r) = (x + label_w, x + w);
        let (plot_t, plot_b) = (y + 20.0, y + h - 30.0);
        let scale = (plot_b - plot_t) / top as f32;
        let slot = (plot_r - plot_l) / days.len().max(1) as f32;

        for (i, _) in days.iter().enumerate().filter(|(_, d)| d.weekend) {
            let sx = plot_l + i as f32 * slot;
            self.rect((sx, plot_t), (slot, plot_b - plot_t), WEEKEND_BG);
        }
        let mut tick = 0;
        while tick <= top {
            let ty = plot_b - tick as f32 * scale;
            if tick > 0 {
                self.line((plot_l, ty), (plot_r, ty), 0.5, GRID);
            }
            self.text(
                (plot_l - 5.0, ty + 3.0),
                AXIS,
                Align::Right,
                &tick.to_string(),
            );
            tick += step;
        }

        let label_every = if slot >= 11.0 { 1 } else { 2 };
        let bar = |v: i64| v.max(0) as f32 * scale;
        for (i, d) in days.iter().enumerate() {
            let sx = plot_l + i as f32 * slot;
            let (main_x, main_w) = (sx + slot * 0.12, slot * 0.48);
            for (v, color) in [(d.sent, SENT), (d.delivered, DELIVERED), (d.read, READ)] {
                self.rect((main_x, plot_b - bar(v)), (main_w, bar(v)), color);
            }
            let fail_x = main_x + main_w + slot * 0.04;
            self.rect(
                (fail_x, plot_b - bar(d.failed)),
                (slot * 0.24, bar(d.failed)),
                FAILED,
            );
            if i % label_every == 0 {
                let lw = self.fonts.width(DAY.weight, DAY.size, &d.label);
                self.text(
                    (sx + slot * 0.44 - lw / 2.0, plot_b + 10.0),
                    DAY,
                    Align::Left,
                    &d.label,
                );
            }
        }
        self.line((plot_l, plot_b), (plot_r, plot_b), 0.8, MUTED);
        let cw = self.fonts.width(CAPTION.weight, CAPTION.size, caption);
        let cx = plot_l + (plot_r - plot_l - cw) / 2.0;
        self.text((cx, plot_b + 24.0), CAPTION, Align::Left, caption);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_scale_picks_round_steps_covering_the_maximum() {
        assert_eq!(nice_scale(0, 5), (1, 1));
        assert_eq!(nice_scale(3, 5), (1, 3));
        assert_eq!(nice_scale(4_690, 5), (1_000, 5_000));
        assert_eq!(nice_scale(100_000, 5), (20_000, 100_000));
        assert_eq!(nice_scale(100_001, 5), (50_000, 150_000));
    }

    #[test]
    fn fit_cuts_long_text_with_an_ellipsis_and_keeps_short_text() {
        let fonts = Fonts::load().expect("embedded fonts load");
        assert_eq!(
            fonts.fit(Weight::Regular, 10.0, "B 1234 XYZ", 200.0),
            "B 1234 XYZ"
        );
        let long = "Dewi Lestari Kusumawardhani binti Haji Abdurrahman".repeat(20);
        let cut = fonts.fit(Weight::Regular, 10.0, &long, 120.0);
        assert!(cut.ends_with('…'));
        assert!(fonts.width(Weight::Regular, 10.0, &cut) <= 120.0);
    }

    #[test]
    fn sanitize_replaces_characters_the_font_lacks() {
        let fonts = Fonts::load().expect("embedded fonts load");
        assert_eq!(
            fonts.sanitize("Nguyễn Thị\tHồng 🚗 王"),
            "Nguyễn Thị Hồng ? ?"
        );
    }
}
