//! The bench plot: own-echo p99 and records received/s against clients, one
//! line per server. Text goes through `ab_glyph` with the font shipped in
//! `assets/fonts/`, so no system font library is needed.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::RunError;
use crate::report::Point;

const FONT: &[u8] = include_bytes!("../../assets/fonts/FiraMono-subset.ttf");
const COLORS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
];

/// Draws `series` (server name, points sorted by clients) to a PNG.
pub fn draw(
    series: &[(String, Vec<Point>)],
    slo_p99_ms: f64,
    output: &Path,
) -> Result<(), RunError> {
    let fail = |e: &dyn std::fmt::Display| RunError(format!("plot {}: {e}", output.display()));
    register_font("sans-serif", FontStyle::Normal, FONT).map_err(|_| fail(&"bad font"))?;
    let root = BitMapBackend::new(output, (1400, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (left, right) = root.split_horizontally(700);

    let all: Vec<&Point> = series.iter().flat_map(|(_, p)| p).collect();
    let max_clients = all.iter().map(|p| p.clients).fold(10.0, f64::max) * 1.05;
    let max_p99 = all.iter().map(|p| p.p99_ms).fold(slo_p99_ms, f64::max) * 2.0;
    let min_p99 = all
        .iter()
        .map(|p| p.p50_ms)
        .filter(|v| *v > 0.0)
        .fold(slo_p99_ms, f64::min)
        / 2.0;
    let max_records = all.iter().map(|p| p.records_per_s).fold(1.0, f64::max) * 1.1;

    let mut latency = ChartBuilder::on(&left)
        .caption(
            "own-echo latency, median of runs: p99 solid, p50 dashed",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..max_clients, (min_p99.max(0.01)..max_p99).log_scale())
        .map_err(|e| fail(&e))?;
    latency
        .configure_mesh()
        .x_desc("clients")
        .y_desc("ms (log)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| {
            if *v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        })
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(|e| fail(&e))?;
    latency
        .draw_series(LineSeries::new(
            [(0.0, slo_p99_ms), (max_clients, slo_p99_ms)],
            BLACK.mix(0.4).stroke_width(1),
        ))
        .map_err(|e| fail(&e))?
        .label(format!("SLO {slo_p99_ms} ms"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.4)));

    let mut records = ChartBuilder::on(&right)
        .caption("records received per second", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..max_clients, 0f64..max_records)
        .map_err(|e| fail(&e))?;
    records
        .configure_mesh()
        .x_desc("clients")
        .y_desc("records/s")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| match *v {
            v if v >= 1e6 => format!("{:.1}M", v / 1e6),
            v if v >= 1e3 => format!("{:.0}k", v / 1e3),
            v => format!("{v:.0}"),
        })
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(|e| fail(&e))?;

    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let style = color.stroke_width(2);
        let p99: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.clients, p.p99_ms.max(min_p99)))
            .collect();
        latency
            .draw_series(LineSeries::new(p99.clone(), style))
            .map_err(|e| fail(&e))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        latency
            .draw_series(p99.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| fail(&e))?;
        let p50: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.clients, p.p50_ms.max(min_p99)))
            .collect();
        latency
            .draw_series(DashedLineSeries::new(
                p50.clone(),
                8,
                5,
                color.stroke_width(2),
            ))
            .map_err(|e| fail(&e))?;
        latency
            .draw_series(
                p50.iter()
                    .map(|&p| Circle::new(p, 3, color.stroke_width(1))),
            )
            .map_err(|e| fail(&e))?;
        let rec: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.clients, p.records_per_s))
            .collect();
        records
            .draw_series(LineSeries::new(rec.clone(), style))
            .map_err(|e| fail(&e))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        records
            .draw_series(rec.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| fail(&e))?;
    }
    draw_legend(&mut latency).map_err(|e| fail(&e))?;
    draw_legend(&mut records).map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// The series legend both charts share, top left.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
}
