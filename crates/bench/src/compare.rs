//! `mayfly-bench compare`: the sign load of `mayfly-bench sign` against two CAs in paired runs.
//!
//! The machine's speed drifts by ±10 % from minute to minute (other VMs, other builds), which is
//! as much as most changes being judged. Runs of A and B are therefore interleaved: pair i runs
//! A then B, pair i+1 runs B then A, so a drift favours neither side, and the ratio is taken
//! within each pair as well as between the medians.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use serde_json::json;

use crate::report::{Report, median};
use crate::{SignCa, SignTarget, load, measure, one_line};

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// URL of CA A, https://host[:port] (required).
    #[arg(long, value_name = "URL")]
    pub a_url: Option<String>,
    /// CA A's root certificate, PEM or DER (required): the connection trusts only it, and the
    /// tokens carry its fingerprint.
    #[arg(long, value_name = "FILE")]
    pub a_root: Option<PathBuf>,
    /// CA A's JWK provisioner [default: its only one, or the one whose key --a-provisioner-key
    /// is].
    #[arg(long, value_name = "NAME")]
    pub a_provisioner: Option<String>,
    /// CA A's provisioner private key, a JWK or a PBES2 JWE of one [default: the encrypted key
    /// CA A publishes in /provisioners].
    #[arg(long, value_name = "FILE")]
    pub a_provisioner_key: Option<PathBuf>,
    /// File holding CA A's provisioner password.
    #[arg(long, value_name = "FILE")]
    pub a_password_file: Option<PathBuf>,
    /// PID of CA A's server process, to report its CPU time per certificate (Linux /proc).
    #[arg(long, value_name = "PID")]
    pub a_pid: Option<u32>,
    /// What to call CA A in the report.
    #[arg(long, value_name = "NAME", default_value = "A")]
    pub a_name: String,
    /// URL of CA B, https://host[:port] (required).
    #[arg(long, value_name = "URL")]
    pub b_url: Option<String>,
    /// CA B's root certificate, PEM or DER (required).
    #[arg(long, value_name = "FILE")]
    pub b_root: Option<PathBuf>,
    /// CA B's JWK provisioner [default: as for A].
    #[arg(long, value_name = "NAME")]
    pub b_provisioner: Option<String>,
    /// CA B's provisioner private key [default: as for A].
    #[arg(long, value_name = "FILE")]
    pub b_provisioner_key: Option<PathBuf>,
    /// File holding CA B's provisioner password.
    #[arg(long, value_name = "FILE")]
    pub b_password_file: Option<PathBuf>,
    /// PID of CA B's server process.
    #[arg(long, value_name = "PID")]
    pub b_pid: Option<u32>,
    /// What to call CA B in the report.
    #[arg(long, value_name = "NAME", default_value = "B")]
    pub b_name: String,
    /// Pairs of runs; each pair runs both CAs once, the order swapped from one pair to the next.
    #[arg(long, value_name = "P", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub pairs: u32,
    /// Certificates requested in each run.
    #[arg(short = 'n', long = "requests", value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub requests: u32,
    /// Requests in flight at once in each run.
    #[arg(short = 'c', long, value_name = "C", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Certificates requested from each CA before the first pair, not measured (connections,
    /// caches and allocators warm up).
    #[arg(long, value_name = "N", default_value_t = 300)]
    pub warmup: u32,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One CA of the comparison.
struct Side {
    /// "a" or "b", as in the flags and the JSON.
    key: &'static str,
    name: String,
    target: SignTarget,
}

impl CompareArgs {
    /// Both sides, or a one-line error naming the first required flag missing.
    fn sides(&self) -> anyhow::Result<[Side; 2]> {
        let side = |key: &'static str,
                    name: &str,
                    url: &Option<String>,
                    root: &Option<PathBuf>,
                    provisioner: &Option<String>,
                    provisioner_key: &Option<PathBuf>,
                    password_file: &Option<PathBuf>,
                    pid: Option<u32>|
         -> anyhow::Result<Side> {
            let Some(url) = url else {
                bail!("compare needs two CAs: --{key}-url is missing");
            };
            let Some(root) = root else {
                bail!("compare needs each CA's root: --{key}-root is missing");
            };
            Ok(Side {
                key,
                name: name.to_owned(),
                target: SignTarget {
                    ca_url: url.clone(),
                    root: root.clone(),
                    provisioner: provisioner.clone(),
                    provisioner_key: provisioner_key.clone(),
                    password_file: password_file.clone(),
                    pid,
                },
            })
        };
        let a = side(
            "a",
            &self.a_name,
            &self.a_url,
            &self.a_root,
            &self.a_provisioner,
            &self.a_provisioner_key,
            &self.a_password_file,
            self.a_pid,
        )?;
        let b = side(
            "b",
            &self.b_name,
            &self.b_url,
            &self.b_root,
            &self.b_provisioner,
            &self.b_provisioner_key,
            &self.b_password_file,
            self.b_pid,
        )?;
        Ok([a, b])
    }
}

/// One measured run.
struct Run {
    pair: u32,
    /// Index into the sides: 0 for A, 1 for B.
    side: usize,
    report: Report,
}

pub fn run(args: CompareArgs) -> anyhow::Result<ExitCode> {
    // Checked before anything is started: a missing flag is a usage error, not a failed run.
    let sides = args.sides()?;
    let n = usize::try_from(args.requests).context("--requests is too large")?;
    let concurrency = usize::try_from(args.concurrency)
        .context("--concurrency is too large")?
        .min(n);
    let warmup = usize::try_from(args.warmup).context("--warmup is too large")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut cas = Vec::with_capacity(2);
    for side in &sides {
        let prefix = format!("{}-", side.key);
        let ca = runtime
            .block_on(SignCa::connect(&side.target, &prefix))
            .with_context(|| format!("{} (--{}-url)", side.name, side.key))?;
        if !args.json {
            note!(
                "{}: {} provisioner {} [kid: {}]",
                side.name,
                ca.ca_url,
                ca.provisioner.name,
                ca.provisioner.kid
            );
        }
        cas.push(ca);
    }

    if warmup > 0 {
        for (side, ca) in sides.iter().zip(&cas) {
            if !args.json {
                note!("{}: warming up with {warmup} requests...", side.name);
            }
            let requests = Arc::new(ca.prepare(warmup)?);
            let outcome =
                runtime.block_on(load(ca.client.clone(), requests, concurrency.min(warmup)));
            if outcome.failures > 0 {
                let first = outcome.errors.first().map_or("", String::as_str);
                bail!(
                    "{}: {} of {warmup} warm-up requests failed; first error: {}",
                    side.name,
                    outcome.failures,
                    one_line(first)
                );
            }
        }
    }

    let mut runs = Vec::new();
    for pair in 1..=args.pairs {
        // Odd pairs A then B, even pairs B then A.
        let order = if pair % 2 == 1 { [0, 1] } else { [1, 0] };
        for side in order {
            let ca = &cas[side];
            // Tokens are one-time: every run gets fresh ones, made before its clock starts.
            let requests = Arc::new(ca.prepare(n)?);
            let report = measure(sides[side].target.pid, n, concurrency, "certs", || {
                runtime.block_on(load(ca.client.clone(), Arc::clone(&requests), concurrency))
            })
            .with_context(|| format!("{} (--{}-pid)", sides[side].name, sides[side].key))?;
            let run = Run { pair, side, report };
            if !args.json {
                say!("{}", run_line(&run, &sides));
            }
            runs.push(run);
        }
    }

    let summary = Summary::of(&runs);
    if args.json {
        say!("{}", to_json(&args, &sides, &cas, &runs, &summary));
    } else {
        write_ignoring_errors(&summary.to_text(&sides));
    }
    let failed: Vec<&Run> = runs.iter().filter(|r| r.report.failures > 0).collect();
    if let Some(first) = failed.first() {
        let message = first.report.errors.first().map_or("", String::as_str);
        note!(
            "mayfly-bench: {} of {} runs had failed requests; first error ({}): {}",
            failed.len(),
            runs.len(),
            sides[first.side].name,
            one_line(message)
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn write_ignoring_errors(text: &str) {
    crate::write_ignoring_errors(&mut std::io::stdout(), text);
}

fn run_line(run: &Run, sides: &[Side; 2]) -> String {
    let report = &run.report;
    let cpu = report
        .server_cpu_us_per_cert()
        .map_or_else(|| "-".to_owned(), |us| format!("{us:.0}"));
    let p50 = report
        .latency
        .map_or_else(|| "-".to_owned(), |l| format!("{:.2}", l.p50));
    format!(
        "pair {:>3}  {:<12} {:>10.1} certs/s  server CPU {:>7} µs/cert  p50 {:>7} ms  \
         failures {}",
        run.pair,
        sides[run.side].name,
        report.certs_per_second(),
        cpu,
        p50,
        report.failures
    )
}

/// Each side's medians and the ratios B/A.
struct Summary {
    /// Median certificates per second, A then B.
    certs_per_second: [Option<f64>; 2],
    /// Median server CPU per certificate, µs, A then B (with its PID given).
    server_cpu_us: [Option<f64>; 2],
    /// B/A of each pair, throughput: median, lowest, highest.
    paired_throughput: Option<Spread>,
    /// B/A of each pair, server CPU per certificate.
    paired_cpu: Option<Spread>,
}

/// The median and range of a few values.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(mut values: Vec<f64>) -> Option<Spread> {
        let min = values.iter().copied().reduce(f64::min)?;
        let max = values.iter().copied().reduce(f64::max)?;
        Some(Spread {
            median: median(&mut values)?,
            min,
            max,
        })
    }
}

/// B/A, when both were measured: CPU comes in clock ticks (10 ms), and a run that used less
/// than one shows 0, which is no figure to divide by or to put over anything.
fn ratio(b: Option<f64>, a: Option<f64>) -> Option<f64> {
    let (b, a) = (b?, a?);
    (a > 0.0 && b > 0.0).then(|| b / a)
}

impl Summary {
    fn of(runs: &[Run]) -> Summary {
        let per_side = |side: usize, figure: fn(&Report) -> Option<f64>| {
            let mut values: Vec<f64> = runs
                .iter()
                .filter(|r| r.side == side)
                .filter_map(|r| figure(&r.report))
                .collect();
            median(&mut values)
        };
        let throughput = |r: &Report| Some(r.certs_per_second());
        let cpu = |r: &Report| r.server_cpu_us_per_cert();
        let paired = |figure: fn(&Report) -> Option<f64>| {
            let mut ratios = Vec::new();
            let pairs: std::collections::BTreeSet<u32> = runs.iter().map(|r| r.pair).collect();
            for pair in pairs {
                let of = |side: usize| {
                    runs.iter()
                        .find(|r| r.pair == pair && r.side == side)
                        .and_then(|r| figure(&r.report))
                };
                if let Some(r) = ratio(of(1), of(0)) {
                    ratios.push(r);
                }
            }
            Spread::of(ratios)
        };
        Summary {
            certs_per_second: [per_side(0, throughput), per_side(1, throughput)],
            server_cpu_us: [per_side(0, cpu), per_side(1, cpu)],
            paired_throughput: paired(throughput),
            paired_cpu: paired(cpu),
        }
    }

    fn to_text(&self, sides: &[Side; 2]) -> String {
        use std::fmt::Write as _;
        let figure = |x: Option<f64>, digits: usize| {
            x.map_or_else(|| "-".to_owned(), |x| format!("{x:.digits$}"))
        };
        let spread = |s: Option<Spread>| {
            s.map_or_else(
                || "-".to_owned(),
                |s| format!("{:.3} ({:.3}-{:.3})", s.median, s.min, s.max),
            )
        };
        let (a, b) = (&sides[0].name, &sides[1].name);
        let mut out = String::new();
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<28} {:>14} {:>14} {:>16}",
            "median of the runs",
            a,
            b,
            format!("{b}/{a}")
        );
        let _ = writeln!(
            out,
            "{:<28} {:>14} {:>14} {:>16}",
            "certificates/s",
            figure(self.certs_per_second[0], 1),
            figure(self.certs_per_second[1], 1),
            figure(ratio(self.certs_per_second[1], self.certs_per_second[0]), 3)
        );
        let _ = writeln!(
            out,
            "{:<28} {:>14} {:>14} {:>16}",
            "server CPU µs/certificate",
            figure(self.server_cpu_us[0], 0),
            figure(self.server_cpu_us[1], 0),
            figure(ratio(self.server_cpu_us[1], self.server_cpu_us[0]), 3)
        );
        let _ = writeln!(
            out,
            "{b}/{a} within each pair, median (range): certificates/s {}; server CPU µs/certificate {}",
            spread(self.paired_throughput),
            spread(self.paired_cpu)
        );
        out
    }
}

fn to_json(
    args: &CompareArgs,
    sides: &[Side; 2],
    cas: &[SignCa],
    runs: &[Run],
    summary: &Summary,
) -> serde_json::Value {
    let round = |x: Option<f64>, digits: i32| {
        let scale = 10f64.powi(digits);
        x.map(|x| (x * scale).round() / scale)
    };
    let spread = |s: Option<Spread>| {
        s.map(|s| {
            json!({
                "median": round(Some(s.median), 4),
                "min": round(Some(s.min), 4),
                "max": round(Some(s.max), 4),
            })
        })
    };
    let side = |i: usize| {
        json!({
            "name": sides[i].name,
            "url": cas.get(i).map(|ca| ca.ca_url.as_str()),
            "pid": sides[i].target.pid,
            "median_certs_per_second": round(summary.certs_per_second[i], 1),
            "median_server_cpu_us_per_cert": round(summary.server_cpu_us[i], 1),
        })
    };
    json!({
        "pairs": args.pairs,
        "n": args.requests,
        "concurrency": args.concurrency,
        "warmup": args.warmup,
        "a": side(0),
        "b": side(1),
        "ratio_b_over_a": {
            "certs_per_second": round(ratio(summary.certs_per_second[1], summary.certs_per_second[0]), 4),
            "server_cpu_us_per_cert": round(ratio(summary.server_cpu_us[1], summary.server_cpu_us[0]), 4),
            "paired_certs_per_second": spread(summary.paired_throughput),
            "paired_server_cpu_us_per_cert": spread(summary.paired_cpu),
        },
        "runs": runs.iter().map(|run| {
            let mut report = run.report.to_json();
            if let Some(object) = report.as_object_mut() {
                object.insert("pair".into(), run.pair.into());
                object.insert("side".into(), sides[run.side].key.into());
                object.insert("name".into(), sides[run.side].name.clone().into());
            }
            report
        }).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn report(successes: usize, wall_ms: u64, server_cpu_ms: Option<u64>) -> Report {
        Report {
            n: successes,
            concurrency: 1,
            unit: "certs",
            successes,
            failures: 0,
            wall: Duration::from_millis(wall_ms),
            latency: None,
            server_cpu: server_cpu_ms.map(Duration::from_millis),
            client_cpu: None,
            errors: Vec::new(),
        }
    }

    #[test]
    fn a_run_below_one_clock_tick_gives_no_ratio() {
        assert_eq!(ratio(Some(0.0), Some(100.0)), None);
        assert_eq!(ratio(Some(100.0), Some(0.0)), None);
        assert_eq!(ratio(Some(50.0), Some(100.0)), Some(0.5));
        assert_eq!(ratio(None, Some(100.0)), None);
    }

    #[test]
    fn medians_and_paired_ratios() {
        // A: 1000, 500, 2000 certs/s; B: 500, 250, 500. CPU: A 100, 200, 300 µs; B 400 each.
        let runs = vec![
            Run {
                pair: 1,
                side: 0,
                report: report(100, 100, Some(10)),
            },
            Run {
                pair: 1,
                side: 1,
                report: report(100, 200, Some(40)),
            },
            Run {
                pair: 2,
                side: 1,
                report: report(100, 400, Some(40)),
            },
            Run {
                pair: 2,
                side: 0,
                report: report(100, 200, Some(20)),
            },
            Run {
                pair: 3,
                side: 0,
                report: report(100, 50, Some(30)),
            },
            Run {
                pair: 3,
                side: 1,
                report: report(100, 200, Some(40)),
            },
        ];
        let summary = Summary::of(&runs);
        assert_eq!(summary.certs_per_second, [Some(1000.0), Some(500.0)]);
        assert_eq!(summary.server_cpu_us, [Some(200.0), Some(400.0)]);
        // Throughput B/A per pair: 0.5, 0.5, 0.25.
        assert_eq!(
            summary.paired_throughput,
            Some(Spread {
                median: 0.5,
                min: 0.25,
                max: 0.5
            })
        );
        // CPU B/A per pair: 4, 2, 4/3.
        let cpu = summary.paired_cpu.unwrap();
        assert_eq!(cpu.median, 2.0);
        assert_eq!(cpu.max, 4.0);
    }

    #[test]
    fn no_pid_no_cpu_figures() {
        let runs = vec![
            Run {
                pair: 1,
                side: 0,
                report: report(10, 10, None),
            },
            Run {
                pair: 1,
                side: 1,
                report: report(10, 20, Some(1)),
            },
        ];
        let summary = Summary::of(&runs);
        assert_eq!(summary.server_cpu_us[0], None);
        assert!(summary.paired_cpu.is_none());
        assert!(summary.paired_throughput.is_some());
    }
}
