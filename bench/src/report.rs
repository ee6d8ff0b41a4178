//! The report of the workload benches: JSON lines in, a markdown table and an SVG plot
//! out (`src/bin/workloads_report.rs`).
//!
//! Ratios are taken round by round (a library's round against sqlx's same round, run
//! minutes apart at most on the same machine state), then summarised by their median and
//! range: a single run on this 2-core machine moves a ratio by up to 30 %.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use plotters::prelude::*;
use serde::Deserialize;

/// The library every ratio is taken against.
pub const BASELINE: &str = "sqlx";

/// One JSON line of a workload bench.
#[derive(Debug, Deserialize)]
struct Line {
    #[serde(default)]
    round: u32,
    dialect: String,
    workload: String,
    library: String,
    rounds_us: Vec<f64>,
}

/// Which figure: a library on a workload of a dialect.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    dialect: (usize, String),
    workload: (usize, String),
    library: (usize, String),
}

impl Key {
    fn new(dialect: &str, workload: &str, library: &str) -> Self {
        Key {
            dialect: (rank(DIALECTS, dialect), dialect.to_string()),
            workload: (rank(WORKLOADS, workload), workload.to_string()),
            library: (rank(LIBRARIES, library), library.to_string()),
        }
    }

    /// The library's label.
    pub fn library(&self) -> &str {
        &self.library.1
    }
}

const DIALECTS: &[&str] = &["mysql", "postgres", "sqlite"];
const WORKLOADS: &[&str] = &[
    "trivial_1",
    "trivial_10",
    "trivial_100",
    "trivial_1000",
    "trivial_10000",
    "medium",
    "insert_1",
    "insert_10",
    "insert_25",
    "insert_50",
    "insert_100",
    "associations",
];
const LIBRARIES: &[&str] = &[
    "sqlx",
    "mysql_async",
    "tokio-postgres",
    "rusqlite",
    "sea_orm",
    "diesel_async",
    "beeorm",
    "beeorm+local",
    "beeorm+redis",
];

/// The position of `name` in a display order; unknown names go last.
fn rank(order: &[&str], name: &str) -> usize {
    order.iter().position(|n| *n == name).unwrap_or(order.len())
}

fn dialect_title(dialect: &str) -> &str {
    match dialect {
        "mysql" => "MariaDB",
        "postgres" => "PostgreSQL",
        "sqlite" => "SQLite",
        other => other,
    }
}

/// The median of `values` (the mean of the middle two of an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn range(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        })
}

/// Every round of every library on every workload.
#[derive(Debug, Default)]
pub struct Figures {
    /// Per key, the per-operation time (µs) of each round, by round tag.
    rounds: BTreeMap<Key, BTreeMap<(u32, usize), f64>>,
}

impl Figures {
    /// Adds the JSON lines of one run; an empty line is skipped.
    pub fn add_lines(&mut self, text: &str) -> Result<(), String> {
        for (n, raw) in text.lines().enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            let line: Line =
                serde_json::from_str(raw).map_err(|e| format!("line {}: {e}", n + 1))?;
            let rounds = self
                .rounds
                .entry(Key::new(&line.dialect, &line.workload, &line.library))
                .or_default();
            for (i, us) in line.rounds_us.into_iter().enumerate() {
                if us.is_finite() && us > 0.0 {
                    rounds.insert((line.round, i), us);
                }
            }
        }
        Ok(())
    }

    /// Whether no figure was read.
    pub fn is_empty(&self) -> bool {
        self.rounds.values().all(BTreeMap::is_empty)
    }

    fn baseline(&self, key: &Key) -> Option<&BTreeMap<(u32, usize), f64>> {
        self.rounds
            .get(&Key::new(&key.dialect.1, &key.workload.1, BASELINE))
    }

    /// The per-round ratios of `key` to the baseline's same rounds.
    fn round_ratios(&self, key: &Key) -> Vec<f64> {
        let (Some(rounds), Some(base)) = (self.rounds.get(key), self.baseline(key)) else {
            return Vec::new();
        };
        rounds
            .iter()
            .filter_map(|(round, us)| base.get(round).map(|b| us / b))
            .collect()
    }

    /// The median ratio to the baseline of every figure that has one.
    pub fn ratios(&self) -> Vec<(Key, f64)> {
        self.rounds
            .keys()
            .filter_map(|k| {
                let r = median(&self.round_ratios(k));
                r.is_finite().then(|| (k.clone(), r))
            })
            .collect()
    }

    fn dialects(&self) -> Vec<String> {
        let mut d: Vec<&(usize, String)> = self.rounds.keys().map(|k| &k.dialect).collect();
        d.dedup();
        d.into_iter().map(|(_, name)| name.clone()).collect()
    }

    fn of_dialect(&self, dialect: &str) -> (Vec<String>, Vec<String>) {
        let mut workloads: Vec<(usize, String)> = Vec::new();
        let mut libraries: Vec<(usize, String)> = Vec::new();
        for k in self.rounds.keys().filter(|k| k.dialect.1 == dialect) {
            if !workloads.contains(&k.workload) {
                workloads.push(k.workload.clone());
            }
            if !libraries.contains(&k.library) {
                libraries.push(k.library.clone());
            }
        }
        workloads.sort();
        libraries.sort();
        (
            workloads.into_iter().map(|w| w.1).collect(),
            libraries.into_iter().map(|l| l.1).collect(),
        )
    }

    fn median_us(&self, key: &Key) -> f64 {
        self.rounds
            .get(key)
            .map(|r| median(&r.values().copied().collect::<Vec<_>>()))
            .unwrap_or(f64::NAN)
    }

    /// One table per dialect: per workload and library, the median time per operation,
    /// its median ratio to sqlx and that ratio's range over the rounds.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        for dialect in self.dialects() {
            let (workloads, libraries) = self.of_dialect(&dialect);
            let rounds = self
                .rounds
                .iter()
                .filter(|(k, _)| k.dialect.1 == dialect)
                .map(|(_, r)| r.len())
                .max()
                .unwrap_or(0);
            let _ = writeln!(
                out,
                "### {} ({rounds} rounds; median per operation, × {BASELINE} with its range over the rounds)\n",
                dialect_title(&dialect)
            );
            let _ = writeln!(out, "| workload | {} |", libraries.join(" | "));
            let _ = writeln!(out, "|---|{}", "---:|".repeat(libraries.len()));
            for workload in &workloads {
                let mut cells = Vec::new();
                for library in &libraries {
                    let key = Key::new(&dialect, workload, library);
                    let us = self.median_us(&key);
                    if !us.is_finite() {
                        cells.push("n/a".to_string());
                        continue;
                    }
                    let ratios = self.round_ratios(&key);
                    let (lo, hi) = range(&ratios);
                    let cell = if ratios.is_empty() {
                        format_us(us)
                    } else {
                        format!(
                            "{} · **{:.2}×** ({lo:.2}–{hi:.2})",
                            format_us(us),
                            median(&ratios)
                        )
                    };
                    cells.push(cell);
                }
                let _ = writeln!(out, "| {workload} | {} |", cells.join(" | "));
            }
            out.push('\n');
        }
        out
    }

    /// Draws one panel per dialect: median time per operation (log scale) per workload,
    /// one coloured series per library.
    pub fn svg(&self, path: &str) -> Result<(), String> {
        let dialects = self.dialects();
        if dialects.is_empty() {
            return Err("no figures to draw".into());
        }
        let height = 460 * dialects.len() as u32;
        let root = SVGBackend::new(path, (1280, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let panels = root.split_evenly((dialects.len(), 1));
        for (dialect, panel) in dialects.iter().zip(panels.iter()) {
            self.panel(dialect, panel).map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())
    }

    fn panel(
        &self,
        dialect: &str,
        area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let (workloads, libraries) = self.of_dialect(dialect);
        let values: Vec<f64> = self
            .rounds
            .keys()
            .filter(|k| k.dialect.1 == dialect)
            .map(|k| self.median_us(k))
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        let (lo, hi) = range(&values);
        if values.is_empty() || workloads.is_empty() {
            area.titled(
                &format!("{}: no figures", dialect_title(dialect)),
                ("sans-serif", 20),
            )?;
            return Ok(());
        }
        let (lo, hi) = (lo / 1.5, hi * 1.5);
        let n = workloads.len();
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!(
                    "{}: median time per operation (µs, log scale)",
                    dialect_title(dialect)
                ),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (lo..hi).log_scale())?;
        let names = workloads.clone();
        chart
            .configure_mesh()
            .x_labels(n)
            .x_label_formatter(&move |x: &f64| {
                let i = x.round();
                if (x - i).abs() < 0.01 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y: &f64| format_us(*y))
            .x_label_style(("sans-serif", 12))
            .draw()?;
        for library in &libraries {
            // One colour per library on every panel.
            let color = Palette99::pick(rank(LIBRARIES, library)).to_rgba();
            let points: Vec<(f64, f64)> = workloads
                .iter()
                .enumerate()
                .filter_map(|(x, w)| {
                    let us = self.median_us(&Key::new(dialect, w, library));
                    (us.is_finite() && us > 0.0).then_some((x as f64, us))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(library.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                });
            chart.draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 4, color.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    }
}

/// `µs` below a millisecond, `ms` above.
fn format_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else if us >= 100.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.1} µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = r#"
{"round":1,"dialect":"mysql","workload":"trivial_1","library":"sqlx","median_us":100.0,"rounds_us":[100.0]}
{"round":1,"dialect":"mysql","workload":"trivial_1","library":"beeorm","median_us":90.0,"rounds_us":[90.0]}
{"round":2,"dialect":"mysql","workload":"trivial_1","library":"sqlx","median_us":200.0,"rounds_us":[200.0]}
{"round":2,"dialect":"mysql","workload":"trivial_1","library":"beeorm","median_us":220.0,"rounds_us":[220.0]}
{"round":1,"dialect":"sqlite","workload":"medium","library":"rusqlite","median_us":5.0,"rounds_us":[5.0]}
"#;

    #[test]
    fn medians_even_odd_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert!(median(&[f64::NAN]).is_nan());
    }

    #[test]
    fn ratios_pair_rounds_with_the_baseline() {
        let mut f = Figures::default();
        f.add_lines(RUN).unwrap();
        let beeorm = Key::new("mysql", "trivial_1", "beeorm");
        let mut r = f.round_ratios(&beeorm);
        r.sort_by(f64::total_cmp);
        assert_eq!(r, vec![0.9, 1.1]);
        // A dialect without sqlx has no ratio, only times.
        assert!(f
            .round_ratios(&Key::new("sqlite", "medium", "rusqlite"))
            .is_empty());
        let md = f.markdown();
        assert!(md.contains("### MariaDB (2 rounds"), "{md}");
        assert!(md.contains("**1.00×** (0.90–1.10)"), "{md}");
        assert!(md.contains("| medium | 5.0 µs |"), "{md}");
    }

    #[test]
    fn bad_lines_are_errors_and_order_is_fixed() {
        let mut f = Figures::default();
        assert!(f
            .add_lines("{\"dialect\":1}")
            .unwrap_err()
            .contains("line 1"));
        assert!(f.is_empty());
        f.add_lines(RUN).unwrap();
        assert_eq!(f.dialects(), vec!["mysql", "sqlite"]);
        let (_, libraries) = f.of_dialect("mysql");
        assert_eq!(libraries, vec!["sqlx", "beeorm"]);
    }

    #[test]
    fn svg_draws_every_dialect_even_a_sparse_one() {
        let mut f = Figures::default();
        f.add_lines(RUN).unwrap();
        let dir = std::env::temp_dir().join(format!("report-{}.svg", std::process::id()));
        let path = dir.to_string_lossy().into_owned();
        f.svg(&path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(svg.contains("MariaDB"), "{svg}");
        assert!(svg.contains("SQLite"));
        assert!(Figures::default().svg(&path).is_err());
    }
}
