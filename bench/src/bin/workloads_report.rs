//! Turns the JSON lines of the workload benches (`benches/workloads.rs` and
//! `peers/benches/workloads_peers.rs`) into a markdown table and an SVG plot.
//!
//! ```text
//! cargo run -p bench --bin workloads_report -- OUT.md OUT.svg RUN.jsonl [RUN.jsonl ...]
//! ```
//!
//! Every line is one library on one workload in one round. The figure of a library is
//! the median over all its rounds, with the slowest and fastest round beside it, and its
//! ratio to sqlx's median on the same dialect and workload (the issue's baseline: the
//! raw driver that most Rust services use). `bench/run-peers` calls this after its
//! rounds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use bench::report::Figures;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: workloads_report OUT.md OUT.svg RUN.jsonl [RUN.jsonl ...]");
        return ExitCode::from(64);
    }
    let mut figures = Figures::default();
    for path in &args[2..] {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("cannot read {path}: {e}");
                return ExitCode::from(66);
            }
        };
        if let Err(e) = figures.add_lines(&text) {
            eprintln!("{path}: {e}");
            return ExitCode::from(65);
        }
    }
    if figures.is_empty() {
        eprintln!("no figures in {}", args[2..].join(", "));
        return ExitCode::from(65);
    }
    let markdown = figures.markdown();
    if let Err(e) = std::fs::write(&args[0], &markdown) {
        eprintln!("cannot write {}: {e}", args[0]);
        return ExitCode::from(73);
    }
    if let Err(e) = figures.svg(&args[1]) {
        eprintln!("cannot draw {}: {e}", args[1]);
        return ExitCode::from(73);
    }
    let mut summary = String::new();
    let mut per_library: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (key, ratio) in figures.ratios() {
        per_library
            .entry(key.library().to_string())
            .or_default()
            .push(ratio);
    }
    for (library, ratios) in per_library {
        let _ = writeln!(
            summary,
            "{library}: median ratio to sqlx {:.2} over {} workloads",
            bench::report::median(&ratios),
            ratios.len()
        );
    }
    eprint!("{summary}");
    eprintln!("wrote {} and {}", args[0], args[1]);
    ExitCode::SUCCESS
}
