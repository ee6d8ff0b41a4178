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
