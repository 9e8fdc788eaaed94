//! The cohort plot: one row per class, each volume in the cohort a dot on a log mL
//! axis, the verifier's volume bounds drawn as a band where the caller has them, so
//! outliers stand out (`cohort_volumes.png` beside `cohort_volumes.csv`).
//!
//! Why plotters: axes, ticks and log scaling are its job; it draws into an RGB buffer
//! with the shipped font registered (no system fonts), and the PNG is encoded here.

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::canvas::{Canvas, FONT_BYTES};

/// One class of the plot.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CohortRow {
    pub class: String,
    /// (volume id, mL) of each volume where the class is present.
    pub volumes: Vec<(String, f64)>,
    /// (min, max) mL the verifier accepts, when it has bounds for the class.
    pub bounds: Option<(f64, f64)>,
}

const FONT: &str = "ctmr-sans";
const ROW_PX: u32 = 22;
const WIDTH: u32 = 960;

fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let registered = register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok();
        assert!(registered, "the shipped font parses");
    });
}

/// The x range (log mL) covering every volume and bound.
fn x_range(rows: &[CohortRow]) -> (f64, f64) {
    let values = rows.iter().flat_map(|r| {
        r.volumes
            .iter()
            .map(|(_, v)| *v)
            .chain(r.bounds.into_iter().flat_map(|(a, b)| [a, b]))
    });
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo.is_finite() {
        (lo / 1.5, hi * 1.5)
    } else {
        (0.1, 10.0)
    }
}

/// Draw the plot as a PNG (`title` names the cohort).
pub(crate) fn cohort_plot(rows: &[CohortRow], title: &str) -> Result<Vec<u8>, String> {
    register();
    let n = rows.len().max(1) as i32;
    let height = 110 + ROW_PX * n as u32;
    let mut canvas = Canvas::new(WIDTH, height, [255, 255, 255]);
    let (lo, hi) = x_range(rows);
    {
        let root =
            BitMapBackend::with_buffer(&mut canvas.pixels, (WIDTH, height)).into_drawing_area();
        let err = |e: &dyn std::fmt::Display| format!("cannot draw the cohort plot: {e}");
        let names: Vec<&str> = rows.iter().map(|r| r.class.as_str()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(230)
            .build_cartesian_2d((lo..hi).log_scale(), -1..n)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .y_labels(n as usize + 2)
            .y_label_formatter(&|y| {
                usize::try_from(*y)
                    .ok()
                    .and_then(|i| names.get(i))
                    .map_or_else(String::new, |s| s.to_string())
            })
            .x_desc("volume (mL, log scale)")
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| err(&e))?;
        for (i, row) in rows.iter().enumerate() {
            let y = i as i32;
            if let Some((min, max)) = row.bounds {
                chart
                    .draw_series(LineSeries::new(
                        [(min.max(lo), y), (max.min(hi), y)],
                        RGBColor(170, 220, 170).stroke_width(10),
                    ))
                    .map_err(|e| err(&e))?;
            }
            let dots = row.volumes.iter().filter(|(_, v)| *v > 0.0).map(|(_, v)| {
                let outside = row.bounds.is_some_and(|(min, max)| *v < min || *v > max);
                let colour = if outside { RED } else { RGBColor(30, 80, 200) };
                Circle::new((*v, y), 4, colour.filled())
            });
            chart.draw_series(dots).map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    let note = "green: verifier volume bounds; red: outside them. NOT FOR CLINICAL USE";
    canvas.text(12.0, (height - 16) as f32, 11.0, [200, 0, 0], note);
    canvas.to_png().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outliers_are_red_and_in_bounds_dots_blue() {
        let rows = vec![
            CohortRow {
                class: "liver".into(),
                volumes: vec![("a".into(), 1500.0), ("b".into(), 9000.0)],
                bounds: Some((800.0, 3500.0)),
            },
            CohortRow {
                class: "spleen".into(),
                volumes: vec![("a".into(), 150.0)],
                bounds: None,
            },
        ];
        let png = cohort_plot(&rows, "test cohort").unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let px: Vec<&[u8]> = buf[..info.buffer_size()].chunks(3).collect();
        assert!(px.iter().any(|p| *p == [255, 0, 0]), "no red outlier dot");
        assert!(
            px.iter().filter(|p| **p == [30, 80, 200]).count() > 20,
            "no blue dots"
        );
        assert!(px.iter().any(|p| *p == [170, 220, 170]), "no bounds band");
    }
}
