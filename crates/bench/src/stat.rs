//! CPU time of a process, from `/proc/PID/stat`.

use std::time::Duration;

use anyhow::{Context, bail};

/// User plus system CPU time of a process, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTicks(pub u64);

impl CpuTicks {
    /// The CPU time consumed between `self` and `later`.
    pub fn elapsed_until(self, later: CpuTicks, ticks_per_second: u64) -> Duration {
        let ticks = later.0.saturating_sub(self.0);
        let per_second = ticks_per_second.max(1);
        Duration::from_secs(ticks / per_second)
            + Duration::from_nanos((ticks % per_second) * 1_000_000_000 / per_second)
    }
}

/// Parses a `/proc/PID/stat` line: `utime` + `stime`, fields 14 and 15 (1-based).
///
/// Field 2, `comm`, is in parentheses and may itself contain spaces and `)`: the fields after it
/// are counted from the last `)` of the line.
pub fn parse_stat(line: &str) -> anyhow::Result<CpuTicks> {
    let Some(close) = line.rfind(')') else {
        bail!("malformed stat line: no \")\" closing the command name");
    };
    let rest = line.get(close + 1..).unwrap_or_default();
    // After the command name come field 3 (state), 4, ...: utime (14) and stime (15) are the
    // 12th and 13th of them.
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let mut next = |name: &str| -> anyhow::Result<u64> {
        let text = fields
            .next()
            .with_context(|| format!("malformed stat line: no {name} field"))?;
        text.parse::<u64>()
            .with_context(|| format!("malformed stat line: {name} {text:?} is not a number"))
    };
    let utime = next("utime")?;
    let stime = next("stime")?;
    Ok(CpuTicks(utime.saturating_add(stime)))
}

/// CPU ticks of process `pid` (`None`: this process).
pub fn read(pid: Option<u32>) -> anyhow::Result<CpuTicks> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let line = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_stat(&line).with_context(|| path.clone())
}

/// Clock ticks per second, from `getconf CLK_TCK`; 100 if that fails.
pub fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_with_spaces_and_parentheses() {
        let line = "4242 (my (odd) ca) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    731 269 0 0 20 0 9 0 123456 1000000 500 18446744073709551615 1 1 0 0 0 0 0 \
                    4096 17987 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(parse_stat(line).unwrap(), CpuTicks(1000));
    }

    #[test]
    fn plain_comm() {
        let line = "1 (mayfly-ca) R 0 1 1 0 -1 0 0 0 0 0 5 7 0 0 20 0 1 0 1 0 0";
        assert_eq!(parse_stat(line).unwrap(), CpuTicks(12));
    }

    #[test]
    fn malformed_lines() {
        assert!(parse_stat("").is_err());
        assert!(parse_stat("1 (x) R 0 1").is_err());
        assert!(parse_stat("1 (x) R 0 1 1 0 -1 0 0 0 0 0 a 7").is_err());
    }

    #[test]
    fn this_process() {
        assert!(read(None).is_ok());
        assert!(ticks_per_second() > 0);
    }

    #[test]
    fn elapsed() {
        assert_eq!(
            CpuTicks(100).elapsed_until(CpuTicks(350), 100),
            Duration::from_millis(2500)
        );
        assert_eq!(CpuTicks(5).elapsed_until(CpuTicks(3), 100), Duration::ZERO);
    }
}
