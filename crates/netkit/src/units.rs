//! Values people type on command lines, parsed one way for every command:
//! durations (`250us`, `10ms`, `1.5s`), byte sizes (`1500`, `64KiB`, `10MB`)
//! and probabilities (`0.05` or `5%`). A bad one is an error that names what
//! was expected.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::Error;

fn bad(what: &'static str, input: &str, why: &str) -> Error {
    Error::BadValue {
        what,
        input: input.to_string(),
        why: why.to_string(),
    }
}

/// Splits `"12.5ms"` into `(12.5, "ms")`.
fn number_and_unit(s: &str) -> Option<(f64, &str)> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let n: f64 = s[..end].parse().ok()?;
    Some((n, s[end..].trim()))
}

/// Parses a duration: a number with a unit `ns`, `us`, `ms`, `s` or `m`.
/// A bare `0` is accepted as zero.
pub fn parse_duration(s: &str) -> Result<Duration, Error> {
    let (n, unit) =
        number_and_unit(s.trim()).ok_or_else(|| bad("duration", s, "expected e.g. 10ms"))?;
    let secs = match unit {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" | "min" => n * 60.0,
        "" if n == 0.0 => 0.0,
        "" => return Err(bad("duration", s, "a unit is needed (ns, us, ms, s, m)")),
        _ => return Err(bad("duration", s, "unknown unit (ns, us, ms, s, m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad("duration", s, "out of range"))
}

/// Parses a byte count: a number with an optional unit `B`, `K`/`KB` (1000),
/// `KiB` (1024), `M`/`MB`, `MiB`, `G`/`GB`, `GiB`.
pub fn parse_bytes(s: &str) -> Result<u64, Error> {
    let (n, unit) =
        number_and_unit(s.trim()).ok_or_else(|| bad("size", s, "expected e.g. 64KiB"))?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(bad(
                "size",
                s,
                "unknown unit (B, KB, KiB, MB, MiB, GB, GiB)",
            ));
        }
    };
    let v = n * mult;
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return Err(bad("size", s, "out of range"));
    }
    Ok(v.round() as u64)
}

/// A probability in `0..=1`, written `0.05` or `5%`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Probability(f64);

impl Probability {
    /// Never.
    pub const ZERO: Probability = Probability(0.0);

    /// A probability; `None` outside `0..=1`.
    pub fn new(p: f64) -> Option<Self> {
        (0.0..=1.0).contains(&p).then_some(Self(p))
    }

    /// The value in `0..=1`.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl FromStr for Probability {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let t = s.trim();
        let v = if let Some(pct) = t.strip_suffix('%') {
            pct.trim().parse::<f64>().map(|p| p / 100.0)
        } else {
            t.parse::<f64>()
        }
        .map_err(|_| bad("probability", s, "expected e.g. 0.05 or 5%"))?;
        Probability::new(v).ok_or_else(|| bad("probability", s, "must be between 0 and 1"))
    }
}

impl fmt::Display for Probability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A duration value, for `FromStr`-driven argument parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        parse_duration(s).map(Dur)
    }
}

/// A byte count value, for `FromStr`-driven argument parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bytes(pub u64);

impl FromStr for Bytes {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        parse_bytes(s).map(Bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10ms").unwrap(), Duration::from_millis(10));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1500").unwrap(), 1500);
        assert_eq!(parse_bytes("64KiB").unwrap(), 65536);
        assert_eq!(parse_bytes("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_bytes("1GiB").unwrap(), 1 << 30);
        assert!(parse_bytes("12 bananas").is_err());
        assert!(parse_bytes("").is_err());
    }

    #[test]
    fn probabilities() {
        assert!(("0.25".parse::<Probability>().unwrap().get() - 0.25).abs() < 1e-12);
        assert!(("5%".parse::<Probability>().unwrap().get() - 0.05).abs() < 1e-12);
        assert!("1.5".parse::<Probability>().is_err());
        assert!("-0.1".parse::<Probability>().is_err());
        assert!("NaN".parse::<Probability>().is_err());
    }
}
