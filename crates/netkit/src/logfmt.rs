//! The action log line: `action: X | result: Y | key: value | ...`.
//!
//! The course programs (and their graders) read logs line by line and split on
//! ` | `, so the format is strict:
//! - the first field is `action`, the second `result`, which is only `success`,
//!   `fail` or `in_progress` ([`Outcome`]);
//! - values never contain `|` (replaced by `/`) nor line breaks (replaced by a
//!   space), so one event is always one line with the expected number of fields.
//!
//! Use [`LogLine`] directly, or the [`log_action!`](crate::log_action) macro which
//! emits it as a tracing event.

use std::fmt::{self, Display, Write as _};

/// The `result` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `success`
    Success,
    /// `fail`
    Fail,
    /// `in_progress`
    InProgress,
}

impl Outcome {
    /// The word written in the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Fail => "fail",
            Outcome::InProgress => "in_progress",
        }
    }
}

impl Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One action log line, built field by field.
#[derive(Debug, Clone)]
pub struct LogLine {
    line: String,
}

impl LogLine {
    /// `action: <action> | result: <outcome>`.
    pub fn new(action: &str, outcome: Outcome) -> Self {
        let mut line = String::with_capacity(64);
        line.push_str("action: ");
        push_clean(&mut line, action);
        line.push_str(" | result: ");
        line.push_str(outcome.as_str());
        Self { line }
    }

    /// Appends ` | <key>: <value>`, with `|` and line breaks removed from the value.
    pub fn kv(mut self, key: &str, value: impl Display) -> Self {
        self.line.push_str(" | ");
        push_clean(&mut self.line, key);
        self.line.push_str(": ");
        let start = self.line.len();
        // Display straight into the line, then clean only the new part.
        let _ = write!(self.line, "{value}");
        if self.line[start..].contains(['|', '\n', '\r']) {
            let value = self.line.split_off(start);
            push_clean(&mut self.line, &value);
        }
        self
    }

    /// The finished line.
    pub fn as_str(&self) -> &str {
        &self.line
    }
}

impl Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

fn push_clean(out: &mut String, s: &str) {
    for c in s.chars() {
        out.push(match c {
            '|' => '/',
            '\n' | '\r' => ' ',
            c => c,
        });
    }
}

/// Emits an action log line as a tracing event.
///
/// ```
/// netkit::log_action!(info, "apuesta_almacenada", Success, dni = "30904465", numero = 7574);
/// ```
#[macro_export]
macro_rules! log_action {
    ($level:ident, $action:expr, $outcome:ident $(, $key:ident = $value:expr)* $(,)?) => {
        ::tracing::$level!(
            "{}",
            $crate::logfmt::LogLine::new($action, $crate::logfmt::Outcome::$outcome)
                $(.kv(stringify!($key), &$value))*
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_course_format() {
        let l = LogLine::new("apuesta_enviada", Outcome::Success)
            .kv("dni", "30904465")
            .kv("numero", 7574);
        assert_eq!(
            l.as_str(),
            "action: apuesta_enviada | result: success | dni: 30904465 | numero: 7574"
        );
        assert_eq!(
            LogLine::new("sorteo", Outcome::InProgress).to_string(),
            "action: sorteo | result: in_progress"
        );
        assert_eq!(
            LogLine::new("x", Outcome::Fail)
                .kv("error", "boom")
                .to_string(),
            "action: x | result: fail | error: boom"
        );
    }

    #[test]
    fn values_never_break_the_line_or_the_fields() {
        let l = LogLine::new("a|b", Outcome::Fail).kv("reason", "bad | input\r\nmore");
        let s = l.to_string();
        assert_eq!(s, "action: a/b | result: fail | reason: bad / input  more");
        assert_eq!(s.matches(" | ").count(), 2);
        assert!(!s.contains('\n'));
    }

    #[test]
    fn macro_builds_the_same_line() {
        // The macro must compile for every outcome; the text is LogLine's.
        log_action!(info, "probe", Success, n = 1);
        log_action!(warn, "probe", Fail, why = "x");
        log_action!(debug, "probe", InProgress);
    }
}
