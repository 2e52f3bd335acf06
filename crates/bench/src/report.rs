//! Latency percentiles and the final report.

use std::time::Duration;

use serde_json::json;

/// The `p`-th percentile (0 < p ≤ 100) of `sorted` by the nearest-rank method; `None` when
/// there are no samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted.get(index).copied()
}

/// The median of `values` (sorting them): the middle one, or the mean of the two middle ones;
/// `None` when there are none. NaN sorts last.
pub fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_unstable_by(|a, b| a.total_cmp(b));
    let middle = values.len() / 2;
    match values.len() {
        0 => None,
        len if len % 2 == 1 => values.get(middle).copied(),
        _ => Some((values.get(middle - 1)? + values.get(middle)?) / 2.0),
    }
}

/// Latency summary, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    /// Summarises `samples` (sorting them); `None` when there are none.
    pub fn from_samples(samples: &mut [Duration]) -> Option<Self> {
        samples.sort_unstable();
        let ms = |p: f64| percentile(samples, p).map(|d| d.as_secs_f64() * 1000.0);
        Some(Self {
            p50: ms(50.0)?,
            p90: ms(90.0)?,
            p99: ms(99.0)?,
            max: ms(100.0)?,
        })
    }
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub n: usize,
    pub concurrency: usize,
    /// What a success is, in the throughput line: "certs", "responses".
    pub unit: &'static str,
    pub successes: usize,
    pub failures: usize,
    pub wall: Duration,
    /// Latency of the successful requests.
    pub latency: Option<Latency>,
    /// CPU the server used during the timed section (with `--pid`).
    pub server_cpu: Option<Duration>,
    /// CPU this process used during the timed section.
    pub client_cpu: Option<Duration>,
    /// The first few error messages.
    pub errors: Vec<String>,
}

impl Report {
    pub fn certs_per_second(&self) -> f64 {
        let secs = self.wall.as_secs_f64();
        if secs > 0.0 {
            self.successes as f64 / secs
        } else {
            0.0
        }
    }

    /// Server CPU per successful certificate, µs.
    pub fn server_cpu_us_per_cert(&self) -> Option<f64> {
        let cpu = self.server_cpu?;
        (self.successes > 0).then(|| cpu.as_secs_f64() * 1e6 / self.successes as f64)
    }

    /// Client CPU per request sent, µs.
    pub fn client_cpu_us_per_request(&self) -> Option<f64> {
        let cpu = self.client_cpu?;
        let sent = self.successes + self.failures;
        (sent > 0).then(|| cpu.as_secs_f64() * 1e6 / sent as f64)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let round = |x: f64, digits: i32| {
            let scale = 10f64.powi(digits);
            (x * scale).round() / scale
        };
        let ms = |f: fn(&Latency) -> f64| self.latency.as_ref().map(|l| round(f(l), 3));
        json!({
            "n": self.n,
            "concurrency": self.concurrency,
            "successes": self.successes,
            "failures": self.failures,
            "wall_seconds": round(self.wall.as_secs_f64(), 6),
            "unit": self.unit,
            "certs_per_second": round(self.certs_per_second(), 1),
            "latency_p50_ms": ms(|l| l.p50),
            "latency_p90_ms": ms(|l| l.p90),
            "latency_p99_ms": ms(|l| l.p99),
            "latency_max_ms": ms(|l| l.max),
            "server_cpu_seconds": self.server_cpu.map(|d| round(d.as_secs_f64(), 3)),
            "server_cpu_us_per_cert": self.server_cpu_us_per_cert().map(|x| round(x, 1)),
            "client_cpu_seconds": self.client_cpu.map(|d| round(d.as_secs_f64(), 3)),
            "client_cpu_us_per_request": self.client_cpu_us_per_request().map(|x| round(x, 1)),
            "errors": self.errors,
        })
    }

    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "requests:        {} (concurrency {})",
            self.n, self.concurrency
        );
        let _ = writeln!(out, "successes:       {}", self.successes);
        let _ = writeln!(out, "failures:        {}", self.failures);
        let _ = writeln!(out, "wall time:       {:.3} s", self.wall.as_secs_f64());
        let _ = writeln!(
            out,
            "throughput:      {:.1} {}/s",
            self.certs_per_second(),
            self.unit
        );
        match &self.latency {
            Some(l) => {
                let _ = writeln!(
                    out,
                    "latency (ms):    p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
                    l.p50, l.p90, l.p99, l.max
                );
            }
            None => {
                let _ = writeln!(out, "latency (ms):    no successful request");
            }
        }
        if let Some(cpu) = self.server_cpu {
            let per = self
                .server_cpu_us_per_cert()
                .map_or_else(|| "-".to_string(), |x| format!("{x:.0}"));
            let _ = writeln!(
                out,
                "server CPU:      {:.3} s, {per} µs per {}",
                cpu.as_secs_f64(),
                self.unit.trim_end_matches('s')
            );
        }
        if let Some(cpu) = self.client_cpu {
            let per = self
                .client_cpu_us_per_request()
                .map_or_else(|| "-".to_string(), |x| format!("{x:.0}"));
            let _ = writeln!(
                out,
                "client CPU:      {:.3} s, {per} µs per request",
                cpu.as_secs_f64()
            );
        }
        for error in &self.errors {
            let _ = writeln!(out, "error:           {error}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&samples, 90.0), Some(Duration::from_millis(90)));
        assert_eq!(percentile(&samples, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(
            percentile(&samples, 100.0),
            Some(Duration::from_millis(100))
        );
        assert_eq!(percentile(&samples, 0.0), Some(Duration::from_millis(1)));
    }

    #[test]
    fn small_and_empty() {
        assert_eq!(percentile(&[], 50.0), None);
        let one = ms(&[7]);
        assert_eq!(percentile(&one, 50.0), Some(Duration::from_millis(7)));
        assert_eq!(percentile(&one, 99.0), Some(Duration::from_millis(7)));
        let three = ms(&[1, 2, 3]);
        assert_eq!(percentile(&three, 50.0), Some(Duration::from_millis(2)));
        assert_eq!(percentile(&three, 99.0), Some(Duration::from_millis(3)));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0]), Some(3.0));
        assert_eq!(median(&mut [5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn latency_sorts() {
        let mut samples = ms(&[30, 10, 20, 40]);
        let latency = Latency::from_samples(&mut samples).unwrap();
        assert_eq!(latency.p50, 20.0);
        assert_eq!(latency.max, 40.0);
        assert!(Latency::from_samples(&mut []).is_none());
    }

    #[test]
    fn report_figures() {
        let report = Report {
            unit: "certs",
            n: 10,
            concurrency: 2,
            successes: 8,
            failures: 2,
            wall: Duration::from_secs(2),
            latency: Latency::from_samples(&mut ms(&[1, 2, 3, 4])),
            server_cpu: Some(Duration::from_millis(4)),
            client_cpu: Some(Duration::from_millis(10)),
            errors: vec!["boom".into()],
        };
        assert_eq!(report.certs_per_second(), 4.0);
        assert_eq!(report.server_cpu_us_per_cert(), Some(500.0));
        assert_eq!(report.client_cpu_us_per_request(), Some(1000.0));
        let json = report.to_json();
        assert_eq!(json["successes"], 8);
        assert_eq!(json["server_cpu_us_per_cert"], 500.0);
        assert_eq!(json["latency_p50_ms"], 2.0);
        assert!(report.to_text().contains("500 µs per cert"));
    }

    #[test]
    fn no_successes() {
        let report = Report {
            unit: "certs",
            n: 1,
            concurrency: 1,
            successes: 0,
            failures: 1,
            wall: Duration::ZERO,
            latency: None,
            server_cpu: Some(Duration::from_millis(4)),
            client_cpu: None,
            errors: vec![],
        };
        assert_eq!(report.certs_per_second(), 0.0);
        assert_eq!(report.server_cpu_us_per_cert(), None);
        assert!(report.to_json()["latency_p50_ms"].is_null());
    }
}
