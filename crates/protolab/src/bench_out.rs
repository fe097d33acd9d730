//! How every `bench` prints: its report as text on stdout, or with `--json`
//! one JSON object per `BENCH` line on stdout (the text goes to stderr, so
//! stdout is JSON Lines a script can read as it is).
//!
//! A `BENCH` line is `BENCH name key=value key=value ...`; the object is
//! `{"bench":"name","key":value,...}` with numbers as numbers.

/// Where a bench's lines go.
#[derive(Debug, Clone, Copy)]
pub struct BenchOut {
    json: bool,
}

impl BenchOut {
    /// Text (`json` false) or JSON Lines.
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Prints a whole report, line by line.
    pub fn report(self, text: impl std::fmt::Display) {
        for line in text.to_string().lines() {
            self.line(line);
        }
    }

    /// Prints one line of a report.
    pub fn line(self, line: &str) {
        if !self.json {
            println!("{line}");
        } else if let Some(obj) = to_json(line) {
            println!("{obj}");
        } else {
            eprintln!("{line}");
        }
    }
}

/// The JSON object of a `BENCH` line; `None` for any other line.
pub fn to_json(line: &str) -> Option<String> {
    let mut words = line.strip_prefix("BENCH ")?.split_whitespace();
    let name = words.next()?;
    let mut obj = String::from("{\"bench\":");
    quote(&mut obj, name);
    for word in words {
        let (k, v) = word.split_once('=')?;
        obj.push(',');
        quote(&mut obj, k);
        obj.push(':');
        match v.parse::<f64>() {
            Ok(n) if n.is_finite() && !v.starts_with('+') && !v.ends_with('.') => obj.push_str(v),
            _ => quote(&mut obj, v),
        }
    }
    obj.push('}');
    Some(obj)
}

fn quote(out: &mut String, s: &str) {
    out.push_str(&netkit::json::string(s));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_lines_become_objects_with_numbers_as_numbers() {
        assert_eq!(
            to_json("BENCH impair_link link_mb_s=1143 ratio=0.322 mode=\"x\" tag=a-b").unwrap(),
            r#"{"bench":"impair_link","link_mb_s":1143,"ratio":0.322,"mode":"\"x\"","tag":"a-b"}"#
        );
        assert_eq!(to_json("BENCH x").unwrap(), r#"{"bench":"x"}"#);
        assert_eq!(to_json("impair link: 268 MB per run"), None);
        assert_eq!(to_json("BENCH x novalue"), None);
        // NaN or inf would not be JSON numbers.
        assert_eq!(
            to_json("BENCH x r=NaN").unwrap(),
            r#"{"bench":"x","r":"NaN"}"#
        );
    }
}
