//! An interleaving harness for comparisons on a shared, noisy machine: every library
//! runs the same workload in turn, sample by sample, so drift (another build, a
//! busy core) hits them alike; the figure of a round is the median of its samples,
//! and a run reports the median of the rounds with their spread.
//!
//! Criterion measures one function at a time, for seconds: two libraries measured a
//! minute apart can differ by 30 % on these 2 shared cores with nothing changed.

use std::time::{Duration, Instant};

/// One library's way to run a workload once; returns the time the operation took
/// (measured by the closure around the operation only).
pub type Op<'a> = Box<dyn FnMut() -> Duration + 'a>;

/// A library in the comparison.
pub struct Case<'a> {
    /// Its label, e.g. `beeorm`, `mysql_async`.
    pub library: &'static str,
    /// The workload.
    pub op: Op<'a>,
}

/// The result of one library on one workload.
#[derive(Debug, Clone)]
pub struct Figure {
    /// The library.
    pub library: &'static str,
    /// The median per-operation time of each round.
    pub rounds: Vec<Duration>,
}

impl Figure {
    /// The median of the rounds.
    pub fn median(&self) -> Duration {
        median(&self.rounds)
    }

    /// The fastest and slowest round.
    pub fn spread(&self) -> (Duration, Duration) {
        let min = self.rounds.iter().min().copied().unwrap_or_default();
        let max = self.rounds.iter().max().copied().unwrap_or_default();
        (min, max)
    }
}

/// The median of `values` (the upper one of an even count); zero when empty.
pub fn median(values: &[Duration]) -> Duration {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// How long a run takes.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Rounds (≥ 5 for a published figure).
    pub rounds: usize,
    /// Samples per library per round.
    pub samples: usize,
    /// The time one sample aims at (the iteration count is calibrated once, per
    /// library, during warm-up).
    pub sample_time: Duration,
}

/// Runs `cases` interleaved: per round and sample, each library in turn (the
/// starting library rotates), `iterations` operations each.
pub fn run(plan: Plan, cases: &mut [Case<'_>]) -> Vec<Figure> {
    // Warm-up and calibration: operations until one sample time has passed.
    let mut iterations = Vec::with_capacity(cases.len());
    for c in cases.iter_mut() {
        let start = Instant::now();
        let mut spent = Duration::ZERO;
        let mut n = 0u32;
        while start.elapsed() < plan.sample_time || n < 2 {
            spent += (c.op)();
            n += 1;
        }
        let per_op = spent / n.max(1);
        let fit = plan.sample_time.as_nanos() / per_op.as_nanos().max(1);
        iterations.push(u32::try_from(fit).unwrap_or(u32::MAX).clamp(1, 100_000));
    }
    let mut rounds: Vec<Vec<Duration>> = vec![Vec::with_capacity(plan.rounds); cases.len()];
    for round in 0..plan.rounds {
        let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(plan.samples); cases.len()];
        for sample in 0..plan.samples {
            for k in 0..cases.len() {
                let i = (k + round + sample) % cases.len();
                let mut spent = Duration::ZERO;
                for _ in 0..iterations[i] {
                    spent += (cases[i].op)();
                }
                samples[i].push(spent / iterations[i]);
            }
        }
        for (i, s) in samples.iter().enumerate() {
            rounds[i].push(median(s));
        }
    }
    cases
        .iter()
        .zip(rounds)
        .map(|(c, rounds)| Figure {
            library: c.library,
            rounds,
        })
        .collect()
}

/// One workload's figures on one dialect, as the workload benches report them.
pub struct Line {
    /// `mysql`, `postgres` or `sqlite`.
    pub dialect: &'static str,
    /// The workload's name, e.g. `trivial_100`.
    pub workload: String,
    /// One figure per library.
    pub figures: Vec<Figure>,
}

/// Prints `lines` as a markdown table (median, range of the rounds, ratio to the
/// dialect's `baseline` library) and writes them as JSON lines tagged with `round`:
/// appended to `$WORKLOADS_OUT` when set, else replacing
/// `$CARGO_TARGET_DIR/<default_file>`. Shared by `benches/workloads.rs` and
/// `peers/benches/workloads_peers.rs` (which includes this file by path).
pub fn publish(
    lines: &[Line],
    baseline: impl Fn(&str) -> &'static str,
    round: usize,
    default_file: &str,
) {
    let us = |d: Duration| d.as_nanos() as f64 / 1000.0;
    let mut json = String::new();
    println!("| dialect | workload | library | median µs | rounds min–max µs | ÷ baseline |");
    println!("|---|---|---|---:|---:|---:|");
    for line in lines {
        let base = line
            .figures
            .iter()
            .find(|f| f.library == baseline(line.dialect))
            .map(|f| us(f.median()))
            .unwrap_or(f64::NAN);
        for f in &line.figures {
            let (lo, hi) = f.spread();
            println!(
                "| {} | {} | {} | {:.1} | {:.1}–{:.1} | {:.2} |",
                line.dialect,
                line.workload,
                f.library,
                us(f.median()),
                us(lo),
                us(hi),
                us(f.median()) / base
            );
            let rounds: Vec<String> = f.rounds.iter().map(|r| format!("{:.3}", us(*r))).collect();
            json.push_str(&format!(
                "{{\"round\":{round},\"dialect\":\"{}\",\"workload\":\"{}\",\"library\":\"{}\",\"median_us\":{:.3},\"rounds_us\":[{}]}}\n",
                line.dialect,
                line.workload,
                f.library,
                us(f.median()),
                rounds.join(",")
            ));
        }
    }
    let written = match std::env::var("WORKLOADS_OUT") {
        Ok(path) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, json.as_bytes()))
            .map(|()| path),
        Err(_) => {
            let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
            let path = std::path::Path::new(&target).join(default_file);
            std::fs::write(&path, json).map(|()| path.display().to_string())
        }
    };
    match written {
        Ok(path) => eprintln!("JSON lines: {path}"),
        Err(e) => eprintln!("cannot write the JSON lines: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_interleaving() {
        assert_eq!(median(&[]), Duration::ZERO);
        let d = |ms| Duration::from_millis(ms);
        assert_eq!(median(&[d(3), d(1), d(2)]), d(2));
        let mut order = Vec::new();
        {
            let mut a = || {
                order.push('a');
                Duration::from_micros(10)
            };
            let mut cases = vec![Case {
                library: "a",
                op: Box::new(&mut a),
            }];
            let figures = run(
                Plan {
                    rounds: 2,
                    samples: 2,
                    sample_time: Duration::from_micros(50),
                },
                &mut cases,
            );
            assert_eq!(figures[0].rounds.len(), 2);
            assert_eq!(figures[0].median(), Duration::from_micros(10));
        }
        assert!(order.len() > 4);
    }
}
