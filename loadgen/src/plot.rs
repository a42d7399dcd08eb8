//! The bench plot, one line per server against clients (log scale): own-echo
//! p99 (solid, with the min–max of the runs) and p50 (dashed); records
//! received per second against full delivery; server CPU ns per delivered record. Text goes through
//! `ab_glyph` with the font shipped in `assets/fonts/`, so no system font
//! library is needed.

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::combinators::WithKeyPoints;
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
const PANEL_WIDTH: u32 = 620;
const HEIGHT: u32 = 560;

type Series = [(String, Vec<Point>)];

/// Draws `series` (server name, points sorted by clients) to a PNG.
pub fn draw(series: &Series, slo_p99_ms: f64, output: &Path) -> Result<(), RunError> {
    let fail = |e: &dyn std::fmt::Display| RunError(format!("plot {}: {e}", output.display()));
    register_font("sans-serif", FontStyle::Normal, FONT).map_err(|_| fail(&"bad font"))?;
    let root = BitMapBackend::new(output, (3 * PANEL_WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let panels = root.split_evenly((1, 3));
    let all: Vec<&Point> = series.iter().flat_map(|(_, p)| p).collect();
    let range = range(all.iter().map(|p| p.clients), 1.3).unwrap_or((10.0, 100.0));
    let mut counts: Vec<f64> = all.iter().map(|p| p.clients).collect();
    counts.sort_by(f64::total_cmp);
    counts.dedup();
    let clients = Clients { range, counts };
    latency(&panels[0], series, &clients, slo_p99_ms).map_err(|e| fail(&e))?;
    records(&panels[1], series, &clients).map_err(|e| fail(&e))?;
    ns_per_record(&panels[2], series, &clients).map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// The x axis of every chart: log scale, labelled at the counts measured.
struct Clients {
    range: (f64, f64),
    counts: Vec<f64>,
}

impl Clients {
    fn axis(&self) -> WithKeyPoints<LogCoord<f64>> {
        (self.range.0..self.range.1)
            .log_scale()
            .with_key_points(self.counts.clone())
    }
}

type DrawResult<T> = Result<T, Box<dyn std::error::Error>>;
type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Smallest and largest of `values` (all > 0), widened by `factor` each way.
fn range(values: impl Iterator<Item = f64>, factor: f64) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| *v > 0.0 && v.is_finite())
        .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    (hi > 0.0).then_some((lo / factor, hi * factor))
}

fn count_label(v: &f64) -> String {
    match *v {
        v if v >= 1e6 => format!("{:.0}M", v / 1e6),
        v if v >= 1e3 => format!("{:.0}k", v / 1e3),
        v if v >= 1.0 => format!("{v:.0}"),
        v => format!("{v:.2}"),
    }
}

fn latency(area: &Area<'_>, series: &Series, clients: &Clients, slo: f64) -> DrawResult<()> {
    let values = series
        .iter()
        .flat_map(|(_, p)| p)
        .flat_map(|p| [p.p50_ms.median, p.p99_ms.max, p.p99_ms.min]);
    let (lo, hi) = range(values.chain([slo]), 2.0).unwrap_or((0.1, 100.0));
    let mut chart = ChartBuilder::on(area)
        .caption(
            "own-echo ms: p99 (bars: min-max), p50 dashed",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(clients.axis(), (lo.max(0.01)..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("clients (log)")
        .y_desc("ms (log)")
        .x_label_formatter(&count_label)
        .y_label_formatter(&count_label)
        .label_style(("sans-serif", 15))
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            [(clients.range.0, slo), (clients.range.1, slo)],
            BLACK.mix(0.4).stroke_width(1),
        ))?
        .label(format!("SLO {slo} ms"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.4)));
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let p99: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.clients, p.p99_ms.median))
            .collect();
        chart
            .draw_series(LineSeries::new(p99.clone(), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(p99.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        chart.draw_series(points.iter().map(|p| {
            let s = p.p99_ms;
            ErrorBar::new_vertical(p.clients, s.min, s.median, s.max, color.stroke_width(1), 8)
        }))?;
        let p50: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.clients, p.p50_ms.median))
            .collect();
        chart.draw_series(DashedLineSeries::new(
            p50.clone(),
            8,
            5,
            color.stroke_width(2),
        ))?;
        chart.draw_series(
            p50.iter()
                .map(|&p| Circle::new(p, 3, color.stroke_width(1))),
        )?;
    }
    legend(&mut chart)?;
    Ok(())
}

fn records(area: &Area<'_>, series: &Series, clients: &Clients) -> DrawResult<()> {
    let values = series
        .iter()
        .flat_map(|(_, p)| p)
        .flat_map(|p| [p.records_per_s, p.full_per_s]);
    let (lo, hi) = range(values, 2.0).unwrap_or((1.0, 1e6));
    let mut chart = ChartBuilder::on(area)
        .caption("records received per second", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(clients.axis(), (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("clients (log)")
        .y_desc("records/s (log)")
        .x_label_formatter(&count_label)
        .y_label_formatter(&count_label)
        .label_style(("sans-serif", 15))
        .draw()?;
    let mut full: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|(_, p)| p)
        .filter(|p| p.full_per_s > 0.0)
        .map(|p| (p.clients, p.full_per_s))
        .collect();
    full.sort_by(|a, b| a.0.total_cmp(&b.0));
    full.dedup_by(|a, b| a.0 == b.0);
    let gray = BLACK.mix(0.4);
    chart
        .draw_series(DashedLineSeries::new(full, 6, 4, gray.stroke_width(1)))?
        .label("full delivery")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], gray));
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let line: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.records_per_s > 0.0)
            .map(|p| (p.clients, p.records_per_s))
            .collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(line.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    legend(&mut chart)?;
    Ok(())
}

fn ns_per_record(area: &Area<'_>, series: &Series, clients: &Clients) -> DrawResult<()> {
    let values = series
        .iter()
        .flat_map(|(_, p)| p)
        .filter_map(|p| p.ns_per_record);
    let (lo, hi) = range(values, 2.0).unwrap_or((10.0, 1e4));
    let mut chart = ChartBuilder::on(area)
        .caption("server CPU ns per delivered record", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(clients.axis(), (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("clients (log)")
        .y_desc("ns/record (log)")
        .x_label_formatter(&count_label)
        .y_label_formatter(&count_label)
        .label_style(("sans-serif", 15))
        .draw()?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let line: Vec<(f64, f64)> = points
            .iter()
            .filter_map(|p| Some((p.clients, p.ns_per_record?)))
            .collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(line.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    legend(&mut chart)?;
    Ok(())
}

/// The series legend every chart has, top left.
fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
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
