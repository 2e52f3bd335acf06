//! Go-style durations ("24h", "5m", "1h30m", "1.5h", "300ms"), the form step's configs and
//! flags use.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration written the way Go's `time.ParseDuration` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(pub time::Duration);

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration like \"24h\", \"5m\" or \"1h30m\"")]
pub struct DurationParseError(pub String);

impl FromStr for GoDuration {
    type Err = DurationParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = || DurationParseError(text.to_string());
        let mut rest = text.trim();
        let negative = rest.starts_with('-');
        rest = rest.trim_start_matches(['-', '+']);
        if rest == "0" {
            return Ok(GoDuration(time::Duration::ZERO));
        }
        if rest.is_empty() || negative {
            return Err(fail());
        }
        let mut total_nanos: i128 = 0;
        while !rest.is_empty() {
            let number_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(fail)?;
            let (number, tail) = rest.split_at(number_len);
            let unit_len = tail
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_len);
            let unit_nanos: i128 = match unit {
                "ns" => 1,
                "us" | "µs" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60 * 1_000_000_000,
                "h" => 3_600 * 1_000_000_000,
                _ => return Err(fail()),
            };
            let value: f64 = number.parse().map_err(|_| fail())?;
            if !value.is_finite() {
                return Err(fail());
            }
            total_nanos += (value * unit_nanos as f64).round() as i128;
            if total_nanos > i128::from(i64::MAX) {
                return Err(fail());
            }
            rest = tail;
        }
        let nanos = i64::try_from(total_nanos).map_err(|_| fail())?;
        Ok(GoDuration(time::Duration::nanoseconds(nanos)))
    }
}

impl fmt::Display for GoDuration {
    /// Formats like Go: "24h0m0s", "5m0s", "1m30s", "0s".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.whole_seconds();
        if total == 0 {
            return f.write_str("0s");
        }
        let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
        if h > 0 {
            write!(f, "{h}h{m}m{s}s")
        } else if m > 0 {
            write!(f, "{m}m{s}s")
        } else {
            write!(f, "{s}s")
        }
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_forms() {
        let cases = [
            ("24h", 86_400),
            ("5m", 300),
            ("1h30m", 5_400),
            ("1.5h", 5_400),
            ("90s", 90),
            ("0s", 0),
            ("0", 0),
            ("2160h", 2160 * 3600),
        ];
        for (text, seconds) in cases {
            assert_eq!(
                text.parse::<GoDuration>().unwrap().0.whole_seconds(),
                seconds,
                "{text}"
            );
        }
        assert_eq!(
            "300ms"
                .parse::<GoDuration>()
                .unwrap()
                .0
                .whole_milliseconds(),
            300
        );
    }

    #[test]
    fn refuses_other_forms_naming_the_input() {
        for bad in ["", "30", "5 m", "h", "1d", "-5m", "1.2.3h", "5mm"] {
            let err = bad.parse::<GoDuration>().unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn formats_like_go() {
        let d = |s: i64| GoDuration(time::Duration::seconds(s)).to_string();
        assert_eq!(d(86_400), "24h0m0s");
        assert_eq!(d(300), "5m0s");
        assert_eq!(d(90), "1m30s");
        assert_eq!(d(0), "0s");
    }
}
