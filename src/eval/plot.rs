//! Line plots of the report (ablation sweeps, drift per segment), drawn with plotters
//! into PNGs written atomically. The compiled-in font is an ASCII subset: labels must
//! stay ASCII ("Frechet d^2", "+-1"), other glyphs draw as boxes.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::export::ExportError;

/// The font plotters draws text with (compiled in; nothing is loaded from the system).
static FONT: &[u8] = include_bytes!("../../assets/fonts/FiraMono-subset.ttf");
static REGISTER: Once = Once::new();

const COLOURS: [RGBColor; 4] =
    [RGBColor(200, 60, 40), RGBColor(40, 110, 200), RGBColor(40, 150, 70), RGBColor(150, 80, 170)];

/// One curve: a name and its `(x, y)` points (non-finite points are skipped).
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Draws `series` against a shared x axis into `png`. Returns `Ok(false)` (and writes
/// nothing) when no series has a finite point.
pub fn write_line_plot(
    png: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<bool, ExportError> {
    REGISTER.call_once(|| {
        // The font is compiled in and valid; a failure would only lose the text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let points: Vec<(f64, f64)> =
        series.iter().flat_map(|s| s.points.iter().copied()).filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    if points.is_empty() {
        return Ok(false);
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in &points {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    let pad_x = ((x1 - x0) * 0.05).max(0.5);
    let pad_y = ((y1 - y0) * 0.1).max(1e-3 * y1.abs().max(1.0));
    let (w, h) = (720u32, 420u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let fail = |e: &dyn std::fmt::Display| ExportError::Io {
        path: png.to_path_buf(),
        source: std::io::Error::other(format!("plotting: {e}")),
    };
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(x0 - pad_x..x1 + pad_x, (y0 - pad_y).min(0.0)..y1 + pad_y)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .y_label_formatter(&|v| format!("{v:.3}"))
            .draw()
            .map_err(|e| fail(&e))?;
        for (i, s) in series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let pts: Vec<(f64, f64)> =
                s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
                .map_err(|e| fail(&e))?
                .label(s.name.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour));
            chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, colour.filled()))).map_err(|e| fail(&e))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| fail(&"buffer size"))?;
    crate::export::save_png_atomic(png, &img)?;
    Ok(true)
}
