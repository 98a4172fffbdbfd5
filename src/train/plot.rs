//! `loss.png` beside a run's `log.csv`: the training loss per step (thin) and the
//! held-out loss (dots and line), redrawn at every checkpoint.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use super::TrainError;

/// The font plotters draws text with (ab_glyph needs one registered; nothing is loaded
/// from the system).
static FONT: &[u8] = include_bytes!("../../assets/fonts/FiraMono-subset.ttf");
static REGISTER: Once = Once::new();

/// One row of `log.csv`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogRow {
    pub step: u64,
    pub loss: f32,
    pub held_out: Option<f32>,
}

/// Wall time of the run whose `log.csv` is at `path`, summed over its resumed parts
/// (each part's clock in the `seconds` column starts at 0); `None` without a log.
pub fn log_wall_seconds(path: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    let (mut total, mut last) = (0.0, 0.0);
    for s in text.lines().skip(1).filter_map(|l| l.rsplit(',').next()?.parse::<f64>().ok()) {
        if s < last {
            total += last;
        }
        last = s;
    }
    Some(total + last)
}

/// Parses `log.csv` (`step,loss,lr,held_out_loss,seconds`); malformed rows are errors naming the line.
pub fn read_log(path: &Path) -> Result<Vec<LogRow>, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    let bad = |line: usize| {
        TrainError::Record(format!("{}:{line}: expected step,loss,lr,held_out_loss,seconds", path.display()))
    };
    text.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let cols: Vec<&str> = l.split(',').collect();
            if cols.len() != 5 {
                return Err(bad(i + 1));
            }
            Ok(LogRow {
                step: cols[0].parse().map_err(|_| bad(i + 1))?,
                loss: cols[1].parse().map_err(|_| bad(i + 1))?,
                held_out: if cols[3].is_empty() { None } else { Some(cols[3].parse().map_err(|_| bad(i + 1))?) },
            })
        })
        .collect()
}

/// Draws the loss curves of `rows` into a PNG at `png` (written atomically).
pub fn write_loss_plot(rows: &[LogRow], title: &str, png: &Path) -> Result<(), TrainError> {
    REGISTER.call_once(|| {
        // The font is compiled in and valid; a failure would only lose the text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let (w, h) = (800u32, 450u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let finite = |v: f32| v.is_finite() && v > 0.0;
    let values: Vec<f32> =
        rows.iter().flat_map(|r| std::iter::once(r.loss).chain(r.held_out)).filter(|v| finite(*v)).collect();
    if values.is_empty() {
        return Ok(());
    }
    let (lo, hi) = values.iter().fold((f32::INFINITY, 0f32), |(a, b), &v| (a.min(v), b.max(v)));
    let last = rows.last().map_or(1, |r| r.step.max(1));
    let plot_err = |e: &dyn std::fmt::Display| TrainError::Record(format!("{}: plotting: {e}", png.display()));
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0u64..last, (lo * 0.9).min(0.0)..hi * 1.05)
            .map_err(|e| plot_err(&e))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss")
            .y_label_formatter(&|v| format!("{v:.3}"))
            .draw()
            .map_err(|e| plot_err(&e))?;
        let train: Vec<(u64, f32)> = rows.iter().filter(|r| finite(r.loss)).map(|r| (r.step, r.loss)).collect();
        chart
            .draw_series(LineSeries::new(train, RGBColor(120, 160, 220).stroke_width(1)))
            .map_err(|e| plot_err(&e))?
            .label("train")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RGBColor(120, 160, 220)));
        let held: Vec<(u64, f32)> =
            rows.iter().filter_map(|r| r.held_out.filter(|v| finite(*v)).map(|v| (r.step, v))).collect();
        chart
            .draw_series(LineSeries::new(held.clone(), RGBColor(200, 60, 40).stroke_width(2)))
            .map_err(|e| plot_err(&e))?
            .label("held-out")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RGBColor(200, 60, 40)));
        chart
            .draw_series(held.into_iter().map(|p| Circle::new(p, 3, RGBColor(200, 60, 40).filled())))
            .map_err(|e| plot_err(&e))?;
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| plot_err(&e))?;
        root.present().map_err(|e| plot_err(&e))?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| TrainError::Record("plot buffer size".into()))?;
    crate::export::save_png_atomic(png, &img)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_parses_and_plots() {
        let dir = std::env::temp_dir().join(format!("latentdrive-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("log.csv");
        std::fs::write(
            &csv,
            "step,loss,lr,held_out_loss,seconds\n1,0.9,1e-4,,0.1\n2,0.5,2e-4,0.6,0.2\n3,0.3,2e-4,,0.3\n",
        )
        .unwrap();
        let rows = read_log(&csv).unwrap();
        assert_eq!(rows[1], LogRow { step: 2, loss: 0.5, held_out: Some(0.6) });
        write_loss_plot(&rows, "test", &dir.join("loss.png")).unwrap();
        let img = image::open(dir.join("loss.png")).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (800, 450));
        // Something besides the white background was drawn, including the red held-out curve.
        assert!(img.pixels().any(|p| p.0[0] > 150 && p.0[1] < 100 && p.0[2] < 100));
        std::fs::write(&csv, "step,loss\n1,x\n").unwrap();
        assert!(read_log(&csv).unwrap_err().to_string().contains("log.csv:2"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
