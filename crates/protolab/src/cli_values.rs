//! Argument values shared by several commands, checked where they are parsed
//! so a bad one is a clear usage error naming its flag.

use impair::direction::DirValue;
use netkit::units::Dur;

/// A timeout or interval: a duration (`60s`, `500ms`) that is not zero. Zero
/// would cut every connection at once, or retransmit or ping in a busy loop,
/// which nobody asking for a timeout means.
pub fn timeout(s: &str) -> Result<Dur, String> {
    let d: Dur = s.parse().map_err(|e| format!("{e}"))?;
    if d.0.is_zero() {
        return Err("it must be longer than zero".into());
    }
    Ok(d)
}

/// A count of things (flows, connections, bytes per write) that must be at
/// least one: zero would drop or refuse everything.
pub fn count(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    if n == 0 {
        return Err("it must be at least 1".into());
    }
    Ok(n)
}

/// A 1-based position (`--drop-nth`) or a limit on how many (`[DIR=]N`):
/// zero would do nothing while looking like it does something.
pub fn nth(s: &str) -> Result<DirValue<u64>, String> {
    let v: DirValue<u64> = s.parse().map_err(|e| format!("{e}"))?;
    if v.value == 0 {
        return Err("it counts from 1".into());
    }
    Ok(v)
}

/// A count per direction (`[DIR=]N`) that must be at least one.
pub fn dir_count(s: &str) -> Result<DirValue<usize>, String> {
    let v: DirValue<usize> = s.parse().map_err(|e| format!("{e}"))?;
    if v.value == 0 {
        return Err("it must be at least 1".into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::{count, dir_count, nth, timeout};
    use std::time::Duration;

    #[test]
    fn zero_is_refused_and_the_rest_parse() {
        assert!(timeout("0s").unwrap_err().contains("longer than zero"));
        assert!(timeout("0ms").is_err());
        assert!(timeout("soon").is_err());
        assert_eq!(timeout("250ms").unwrap().0, Duration::from_millis(250));
        assert!(count("0").unwrap_err().contains("at least 1"));
        assert_eq!(count("3"), Ok(3));
        assert!(nth("up=0").unwrap_err().contains("counts from 1"));
        assert_eq!(nth("down=2").unwrap().value, 2);
        assert!(dir_count("0").is_err());
        assert_eq!(dir_count("up=1").unwrap().value, 1);
    }
}
