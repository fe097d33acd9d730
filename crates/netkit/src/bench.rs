//! The `BENCH name key=value ...` line every benchmark prints: one builder,
//! so every line has the same shape (a value never holds a space, which would
//! split it) and `--json` can turn any of them into an object.

use std::fmt;

/// One `BENCH` line, built field by field.
#[derive(Debug, Clone)]
pub struct BenchLine {
    text: String,
}

impl BenchLine {
    /// `BENCH name`.
    pub fn new(name: &str) -> Self {
        Self {
            text: format!("BENCH {}", word(name)),
        }
    }

    /// `key=value`, the value as it displays (spaces become `_`).
    pub fn field(mut self, key: &str, value: impl fmt::Display) -> Self {
        self.text.push(' ');
        self.text.push_str(&word(key));
        self.text.push('=');
        self.text.push_str(&word(&value.to_string()));
        self
    }

    /// `key=value` with `decimals` digits after the point.
    pub fn num(self, key: &str, value: f64, decimals: usize) -> Self {
        self.field(key, format!("{value:.decimals$}"))
    }
}

impl fmt::Display for BenchLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn word(s: &str) -> String {
    s.replace(char::is_whitespace, "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_the_line_one_word_each() {
        let line = BenchLine::new("classic_math")
            .field("load", "100 clients, one in flight")
            .num("req_s", 203_939.4, 0)
            .num("ratio", 0.849_12, 3)
            .field("dropped", 0);
        assert_eq!(
            line.to_string(),
            "BENCH classic_math load=100_clients,_one_in_flight req_s=203939 ratio=0.849 dropped=0"
        );
    }
}
