use std::process::ExitCode;

use clap::Parser;
use loadgen::cli::{Cli, Command, ReportArgs};
use loadgen::{idle, math, plot, positions, report};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Report(args) => make_report(&args),
        command => match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime.block_on(run(command)),
            Err(e) => Err(format!("cannot start the runtime: {e}")),
        },
    };
    match result {
        Ok(verdict) => ExitCode::from(loadgen::exit_code(verdict)),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the report; returns its verdict.
async fn run(command: Command) -> Result<&'static str, String> {
    let (output, verdict) = match command {
        Command::Positions(args) => {
            let report = positions::run(args.config()?)
                .await
                .map_err(|e| e.to_string())?;
            (
                render(args.common.json, &report, report::positions_table),
                report.verdict,
            )
        }
        Command::Math(args) => {
            let report = math::run(args.config()?).await.map_err(|e| e.to_string())?;
            (
                render(args.common.json, &report, report::math_table),
                report.verdict,
            )
        }
        Command::Idle(args) => {
            let report = idle::run(args.config()?).await.map_err(|e| e.to_string())?;
            (
                render(args.common.json, &report, report::idle_table),
                report.verdict,
            )
        }
        Command::Report(_) => unreachable!("handled without a runtime"),
    };
    print!("{}", output?);
    Ok(verdict)
}

fn render<T: serde::Serialize>(
    json: bool,
    report: &T,
    table: fn(&T) -> String,
) -> Result<String, String> {
    if json {
        serde_json::to_string(report)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string())
    } else {
        Ok(table(report))
    }
}

fn make_report(args: &ReportArgs) -> Result<&'static str, String> {
    let text = std::fs::read_to_string(&args.input)
        .map_err(|e| format!("cannot read {}: {e}", args.input.display()))?;
    let entries = report::parse_entries(&text);
    if let Some(path) = &args.markdown {
        std::fs::write(path, report::markdown(&entries))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        let series: Vec<_> = report::servers(&entries)
            .into_iter()
            .map(|server| {
                let points = report::points(&entries, &server);
                (server, points)
            })
            .filter(|(_, points)| !points.is_empty())
            .collect();
        plot::draw(&series, report::slo_p99_ms(&entries), path).map_err(|e| e.to_string())?;
    }
    Ok("pass")
}
