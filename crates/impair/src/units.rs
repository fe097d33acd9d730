//! The values only impair's rules take: byte patterns (`FIN`, `hex:0a0d`) and
//! triggers (`100` bytes or `2s`). Durations, sizes and probabilities are
//! netkit's ([`netkit::units`]), shared by every command.

use std::str::FromStr;
use std::time::Duration;

pub use netkit::units::{Bytes, Dur, Probability, parse_bytes, parse_duration};

use crate::Error;

fn bad(what: &'static str, input: &str, why: &str) -> Error {
    Error::BadValue {
        what,
        input: input.to_string(),
        why: why.to_string(),
    }
}

/// A byte pattern: literal text, or `hex:` followed by hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(pub Vec<u8>);

impl FromStr for Pattern {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bytes = if let Some(hex) = s.strip_prefix("hex:") {
            // Work on bytes: slicing a str at odd offsets panics on non-ASCII
            // input (found by the impair_values fuzz target).
            let digits = hex.as_bytes();
            if digits.len() % 2 != 0 {
                return Err(bad("pattern", s, "odd number of hex digits"));
            }
            digits
                .chunks(2)
                .map(|pair| Some(hex_val(pair[0])? << 4 | hex_val(pair[1])?))
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| bad("pattern", s, "not hex"))?
        } else {
            s.as_bytes().to_vec()
        };
        if bytes.is_empty() {
            return Err(bad("pattern", s, "empty pattern"));
        }
        Ok(Pattern(bytes))
    }
}

fn hex_val(d: u8) -> Option<u8> {
    (d as char).to_digit(16).map(|v| v as u8)
}

/// When a TCP rule fires: after N bytes of a direction, or T after the
/// connection was accepted. Written as a byte count (`100`, `4KiB`) or a duration
/// (`2s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// After exactly this many bytes were forwarded in the direction.
    Bytes(u64),
    /// This long after the connection was accepted.
    After(Duration),
}

impl FromStr for Trigger {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let t = s.trim();
        let unit_start = t.find(|c: char| !(c.is_ascii_digit() || c == '.'));
        let is_time = unit_start
            .map(|i| t[i..].trim())
            .is_some_and(|u| matches!(u, "ns" | "us" | "µs" | "ms" | "s" | "m" | "min"));
        if is_time {
            parse_duration(t).map(Trigger::After).map_err(Error::from)
        } else {
            parse_bytes(t).map(Trigger::Bytes).map_err(|_| {
                bad(
                    "trigger",
                    s,
                    "expected a byte count (100, 4KiB) or a time (2s)",
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_triggers() {
        assert_eq!("FIN".parse::<Pattern>().unwrap().0, b"FIN");
        assert_eq!("hex:00ff".parse::<Pattern>().unwrap().0, vec![0, 255]);
        assert!("hex:0".parse::<Pattern>().is_err());
        assert!("hex:zz".parse::<Pattern>().is_err());
        assert!(
            "hex:é0".parse::<Pattern>().is_err(),
            "non-ASCII is an error, not a panic"
        );
        assert_eq!("hex:AbCd".parse::<Pattern>().unwrap().0, vec![0xab, 0xcd]);
        assert_eq!("100".parse::<Trigger>().unwrap(), Trigger::Bytes(100));
        assert_eq!("4KiB".parse::<Trigger>().unwrap(), Trigger::Bytes(4096));
        assert_eq!(
            "2s".parse::<Trigger>().unwrap(),
            Trigger::After(Duration::from_secs(2))
        );
        assert!("soon".parse::<Trigger>().is_err());
    }
}
