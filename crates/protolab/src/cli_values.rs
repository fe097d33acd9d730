//! Argument values shared by several commands, checked where they are parsed
//! so a bad one is a clear usage error naming its flag.

use impair::units::Dur;

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

#[cfg(test)]
mod tests {
    use super::timeout;
    use std::time::Duration;

    #[test]
    fn zero_is_refused_and_the_rest_parse() {
        assert!(timeout("0s").unwrap_err().contains("longer than zero"));
        assert!(timeout("0ms").is_err());
        assert!(timeout("soon").is_err());
        assert_eq!(timeout("250ms").unwrap().0, Duration::from_millis(250));
    }
}
