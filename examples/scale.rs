//! Federation at internet scale, in simulation (issue #20): a simulated day of 1 000
//! homeservers and 10 000 rooms, one room on the biggest resident peeked by 5 000 servers, a
//! restart of that resident at midday, and what it sees: requests per second over the day,
//! the herd after the restart, relay copies, state sizes.
//!
//! ```text
//! cargo run --release --example scale                 # the day (seed 20), charts in benches/charts/
//! cargo run --release --example scale -- --seed 7     # another seed
//! cargo run --example scale -- --smoke                # a reduced day (CI), no charts
//! cargo run --release --example scale -- --minutes    # also the minutes around the restart
//! cargo run --release --example scale -- --baseline   # the library's defaults, no per-host salt
//! cargo run --release --example scale -- --lose-peeks # the restart loses its inbound peeks
//! ```
//!
//! It prints the figures, the wall time and the peak memory (resident set), and writes two SVG
//! charts: `scale-day.svg` (the resident's requests per minute over the day, by kind) and
//! `scale-herd.svg` (the two hours around the restart, with twice the steady rate).

use std::path::PathBuf;
use std::time::Instant;

use matrix_peek::testing::{ScaleConfig, ScaleReport, run_scale};
use plotters::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut seed = 20;
    let mut smoke = false;
    let mut minutes = false;
    let mut baseline = false;
    let mut lose = false;
    let mut out = Some(PathBuf::from("benches/charts"));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => smoke = true,
            "--seed" => seed = args.next().ok_or("--seed needs a number")?.parse()?,
            "--out" => out = Some(PathBuf::from(args.next().ok_or("--out needs a folder")?)),
            "--no-charts" => out = None,
            "--minutes" => minutes = true,
            "--baseline" => baseline = true,
            "--lose-peeks" => lose = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let mut config = if smoke { ScaleConfig::smoke(seed) } else { ScaleConfig::day(seed) };
    config.progress = !smoke;
    config.restart_loses_peeks = lose;
    if baseline {
        config = config.with_library_defaults();
    }
    #[allow(clippy::disallowed_methods)] // the example reports its own wall-clock time
    let started = Instant::now();
    let report = run_scale(&config)?;
    let wall = started.elapsed();
    println!("{report}");
    if minutes {
        // Minute by minute around the restart: minute (0 = back up), PUT, renew, DELETE, 429.
        let from = report.restart_down.saturating_sub(5);
        for i in from..(report.restart_up + 70).min(report.minutes.len()) {
            let b = &report.minutes[i];
            let at = i as i64 - report.restart_up as i64;
            println!("{at:>4} {:>6} {:>6} {:>6} {:>6}", b.put, b.renew, b.delete, b.rate_limited);
        }
    }
    println!("wall time {:.1} s; peak memory (VmHWM) {}", wall.as_secs_f64(), peak_memory());
    if let Some(dir) = out.filter(|_| !smoke) {
        std::fs::create_dir_all(&dir)?;
        day_chart(&report, &dir.join("scale-day.svg"))?;
        herd_chart(&report, &dir.join("scale-herd.svg"))?;
        println!("charts: {}/scale-day.svg, {}/scale-herd.svg", dir.display(), dir.display());
    }
    let g = &report.figures;
    if g.herd_ratio > 2.0 || g.all_back_after.is_none_or(|d| d > g.renewal_interval) {
        println!("GOAL NOT MET");
    }
    Ok(())
}

/// The process's peak resident set, from `/proc/self/status` (Linux); "unknown" elsewhere.
fn peak_memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .map_or("unknown".to_owned(), |v| v.trim().to_owned())
}

type Series = (&'static str, RGBColor, fn(&matrix_peek::testing::LoadBucket) -> u64);

const SERIES: [Series; 3] =
    [("renew", BLUE, |b| b.renew), ("PUT", RED, |b| b.put), ("DELETE", GREEN, |b| b.delete)];

fn day_chart(r: &ScaleReport, path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let day = &r.minutes[r.day_start..r.day_end];
    let top = day.iter().map(|b| b.requests()).max().unwrap_or(1).max(1) as f64 * 1.1;
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Requests per minute at the biggest resident over the day (seed {})", r.seed),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..day.len() as f64 / 60.0, 0f64..top)?;
    chart.configure_mesh().x_desc("hour of the day").y_desc("requests / minute").draw()?;
    let total: Vec<(f64, f64)> =
        day.iter().enumerate().map(|(i, b)| (i as f64 / 60.0, b.requests() as f64)).collect();
    chart
        .draw_series(LineSeries::new(total, BLACK))?
        .label("all")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], BLACK));
    for (name, color, f) in SERIES {
        let pts: Vec<(f64, f64)> =
            day.iter().enumerate().map(|(i, b)| (i as f64 / 60.0, f(b) as f64)).collect();
        chart
            .draw_series(LineSeries::new(pts, color))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], color));
    }
    chart.configure_series_labels().background_style(WHITE).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

fn herd_chart(r: &ScaleReport, path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let from = r.restart_down.saturating_sub(30);
    let to = (r.restart_up + 90).min(r.minutes.len());
    let window = &r.minutes[from..to];
    let cap = 2.0 * r.figures.steady_per_minute;
    let top = window.iter().map(|b| b.requests() as f64).fold(cap, f64::max) * 1.1;
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let x0 = from as f64 - r.restart_up as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("The herd: requests per minute around the restart (seed {})", r.seed),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(x0..x0 + window.len() as f64, 0f64..top)?;
    chart
        .configure_mesh()
        .x_desc("minutes after the resident came back")
        .y_desc("requests / minute")
        .draw()?;
    let pts = |f: &dyn Fn(&matrix_peek::testing::LoadBucket) -> u64| -> Vec<(f64, f64)> {
        window.iter().enumerate().map(|(i, b)| (x0 + i as f64, f(b) as f64)).collect()
    };
    chart
        .draw_series(LineSeries::new(pts(&|b| b.requests()), BLACK))?
        .label("all")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], BLACK));
    for (name, color, f) in SERIES {
        chart
            .draw_series(LineSeries::new(pts(&f), color))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], color));
    }
    let limit = vec![(x0, cap), (x0 + window.len() as f64, cap)];
    let dashed = ShapeStyle::from(&MAGENTA).stroke_width(1);
    chart
        .draw_series(LineSeries::new(limit, dashed))?
        .label("2x steady state")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], dashed));
    chart.configure_series_labels().background_style(WHITE).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
