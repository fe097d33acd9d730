//! The checker's report: the dialect first, one line per scenario (verdict,
//! the seed's step, the reason), a summary table; or the same as JSON for
//! teachers who grade many students. A failed run's sequence diagram and the
//! program's output are kept in the trace directory.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use netkit::json::string;

use super::scenarios::{Role, Scenario};
use super::session::Run;
use super::{Outcome, Report, Section, Verdict};

/// Writes a failed run's diagram (and their program's output beside it);
/// returns the diagram's path.
pub(super) fn keep(dir: &Path, role: Role, s: &Scenario, run: &Run) -> Option<PathBuf> {
    let base = format!("{}-{}", role.name(), s.id);
    let svg = dir.join(format!("{base}.svg"));
    if let Some(p) = &run.program {
        let _ = std::fs::write(dir.join(format!("{base}.stdout")), p.stdout());
        let _ = std::fs::write(dir.join(format!("{base}.stderr")), p.stderr());
    }
    std::fs::write(&svg, run.trace.svg()).ok().map(|()| svg)
}

impl Verdict {
    fn label(&self) -> &'static str {
        match self {
            Verdict::Pass(_) => "pass",
            Verdict::Fail(_) => "fail",
            Verdict::NotApplicable(_) => "n/a",
        }
    }

    fn reason(&self) -> &str {
        match self {
            Verdict::Pass(r) | Verdict::Fail(r) => r,
            Verdict::NotApplicable(r) => r,
        }
    }
}

impl Section {
    fn dialect_line(&self) -> String {
        match &self.dialect {
            None => "unknown (no scenario passed far enough to tell)".to_string(),
            Some((reading, learned)) if learned.is_empty() => {
                format!("{reading} (it behaved as the seed describes)")
            }
            Some((reading, learned)) => {
                let what: Vec<String> = learned.iter().map(ToString::to_string).collect();
                format!("{reading} ({})", what.join("; "))
            }
        }
    }

    fn count(&self, label: &str) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.verdict.label() == label)
            .count()
    }
}

/// One scenario's line, as printed while the run goes on.
pub fn line(o: &Outcome) -> String {
    let mut s = format!(
        "{:<5} {:<19} step {:<6} {}: {}",
        o.verdict.label().to_uppercase(),
        o.scenario.id,
        o.scenario.step,
        o.scenario.title,
        o.verdict.reason()
    );
    if matches!(o.verdict, Verdict::Fail(_)) {
        let _ = write!(s, "\n      rule: {}", o.rule);
    }
    if let Some(t) = &o.trace {
        let _ = write!(s, "\n      trace: {}", t.display());
    }
    s
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for section in &self.sections {
            writeln!(f, "their {}: {}", section.role.name(), section.command)?;
            writeln!(f, "dialect: {}", section.dialect_line())?;
            for o in &section.outcomes {
                writeln!(f, "{}", line(o))?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "{:<8} {:>6} {:>6} {:>4}",
            "program", "passed", "failed", "n/a"
        )?;
        for s in &self.sections {
            writeln!(
                f,
                "{:<8} {:>6} {:>6} {:>4}",
                s.role.name(),
                s.count("pass"),
                s.count("fail"),
                s.count("n/a")
            )?;
        }
        write!(f, "impair seed {}", self.seed)
    }
}

impl Report {
    /// The report as one JSON document.
    pub fn json(&self) -> String {
        let mut j = String::new();
        let _ = write!(
            j,
            "{{\"passed\":{},\"failed\":{},\"not_applicable\":{},\"seed\":{},\"programs\":[",
            self.count(|v| matches!(v, Verdict::Pass(_))),
            self.failures(),
            self.count(|v| matches!(v, Verdict::NotApplicable(_))),
            self.seed
        );
        for (i, s) in self.sections.iter().enumerate() {
            if i > 0 {
                j.push(',');
            }
            let (reading, learned) = match &s.dialect {
                Some((r, l)) => (
                    string(&r.to_string()),
                    l.iter()
                        .map(|w| string(&w.to_string()))
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                None => ("null".to_string(), String::new()),
            };
            let _ = write!(
                j,
                "{{\"role\":{},\"command\":{},\"dialect\":{reading},\"learned\":[{learned}],\"scenarios\":[",
                string(s.role.name()),
                string(&s.command)
            );
            for (k, o) in s.outcomes.iter().enumerate() {
                if k > 0 {
                    j.push(',');
                }
                let _ = write!(
                    j,
                    "{{\"id\":{},\"title\":{},\"step\":{},\"rule\":{},\"verdict\":{},\"reason\":{},\"trace\":{},\"seconds\":{:.3}}}",
                    string(o.scenario.id),
                    string(o.scenario.title),
                    string(o.scenario.step),
                    string(o.rule),
                    string(o.verdict.label()),
                    string(o.verdict.reason()),
                    o.trace
                        .as_ref()
                        .map_or("null".to_string(), |t| string(&t.display().to_string())),
                    o.took.as_secs_f64()
                );
            }
            j.push_str("]}");
        }
        j.push_str("]}");
        j
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::SCENARIOS;
    use super::*;
    use crate::dialect::{Learned, Reading};

    fn report() -> Report {
        Report {
            seed: 7,
            sections: vec![Section {
                role: Role::Server,
                command: "python3 \"s.py\" {port}".into(),
                dialect: Some((Reading::SEED, vec![Learned::FourWayClose])),
                outcomes: vec![
                    Outcome {
                        scenario: &SCENARIOS[0],
                        rule: "r0",
                        verdict: Verdict::Pass("1000 bytes intact".into()),
                        trace: None,
                        took: Duration::from_millis(250),
                    },
                    Outcome {
                        scenario: &SCENARIOS[5],
                        rule: "the edge case",
                        verdict: Verdict::Fail("no answer\tat all".into()),
                        trace: Some("t/server-x.svg".into()),
                        took: Duration::from_secs(2),
                    },
                ],
            }],
        }
    }

    #[test]
    fn json_escapes_and_counts() {
        let j = report().json();
        assert!(j.starts_with("{\"passed\":1,\"failed\":1,\"not_applicable\":0,\"seed\":7,"));
        assert!(j.contains("\"command\":\"python3 \\\"s.py\\\" {port}\""));
        assert!(j.contains("\"reason\":\"no answer\\tat all\""));
        assert!(j.contains("\"trace\":\"t/server-x.svg\""));
        assert!(j.contains("\"rule\":\"the edge case\""));
        assert!(j.contains("\"learned\":[\"a four-segment close\"]"));
        assert_eq!(string("\u{1}"), "\"\\u0001\"");
    }

    #[test]
    fn text_names_the_dialect_first_and_ends_with_the_table() {
        let t = report().to_string();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "their server: python3 \"s.py\" {port}");
        assert!(lines[1].starts_with("dialect: seed (a four-segment close)"));
        assert!(lines[2].starts_with("PASS  clean "));
        assert!(
            lines[3].starts_with("FAIL  lost-handshake-ack"),
            "{}",
            lines[3]
        );
        assert!(lines[3].contains("step 7"));
        assert_eq!(lines[4], "      rule: the edge case");
        assert_eq!(lines[5], "      trace: t/server-x.svg");
        assert!(t.contains("server        1      1    0"), "{t}");
    }
}
