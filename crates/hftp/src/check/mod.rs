//! The conformance checker (spec: hftp.md, "Conformance checker"): a suite of
//! rules run against any HFTP server, ours or anyone's. It writes its fixture
//! files into the directory that server serves, talks to the server only over
//! TCP, and reports each rule as passed (with warnings), failed or skipped.
//!
//! It grades what the course grades: the status code and the body. A status
//! line whose text differs (`0 OK \r\n`, a translated text) passes with a
//! warning. Two lab profiles: `2026` (this spec: `help` and raw slices) and
//! `2025` (the older lab, which has neither: those rules are skipped); by
//! default the profile is detected by asking for `help`. Each rule runs on
//! its own connections and within its own bound, so one slow answer fails
//! that rule only, with "no answer within ...", and the rest go on.

mod rules;
mod talk;

use std::fmt;
use std::path::Path;
use std::time::Duration;

use rules::write_fixtures;
pub use rules::{Needs, RULES, Rule};
use talk::Ctx;

use crate::proto::Status;

/// Longest wait for any one answer, by default.
pub const WAIT: Duration = Duration::from_secs(10);

/// Which lab's protocol the server implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lab {
    /// Ask the server (`help`: `0` means 2026, `200` means 2025).
    Auto,
    /// The older lab: no `help`, no raw slices.
    L2025,
    /// This spec: `help` and raw slices.
    L2026,
}

impl std::str::FromStr for Lab {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Lab::Auto),
            "2025" => Ok(Lab::L2025),
            "2026" => Ok(Lab::L2026),
            _ => Err(format!("unknown lab {s:?}: auto, 2025 or 2026")),
        }
    }
}

impl fmt::Display for Lab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lab::Auto => "auto",
            Lab::L2025 => "2025",
            Lab::L2026 => "2026",
        })
    }
}

/// How the checker runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Longest wait for any one step of a rule.
    pub wait: Duration,
    /// The lab profile.
    pub lab: Lab,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            wait: WAIT,
            lab: Lab::Auto,
        }
    }
}

/// What happened to one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Passed; the warnings say what differed in ways the course does not grade.
    Pass(Vec<String>),
    /// Failed, with what was seen.
    Fail(String),
    /// Not part of the lab profile.
    Skip(&'static str),
}

/// The result of one rule.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The rule.
    pub rule: &'static str,
    /// Its verdict.
    pub verdict: Verdict,
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The profile the rules were graded against.
    pub lab: Lab,
    /// How the profile was chosen.
    pub lab_note: String,
    /// One outcome per rule.
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// Rules failed.
    pub fn failures(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Fail(_)))
    }
    /// Rules passed (with or without warnings).
    pub fn passed(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Pass(_)))
    }
    /// Rules skipped.
    pub fn skipped(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Skip(_)))
    }
    /// Warnings in all.
    pub fn warnings(&self) -> usize {
        self.outcomes
            .iter()
            .map(|o| match &o.verdict {
                Verdict::Pass(w) => w.len(),
                _ => 0,
            })
            .sum()
    }
    fn count(&self, f: impl Fn(&Verdict) -> bool) -> usize {
        self.outcomes.iter().filter(|o| f(&o.verdict)).count()
    }

    /// The report as one JSON document: the counts, then each rule with its
    /// verdict (`pass`, `fail`, `skip`), the reason and the warnings.
    pub fn json(&self) -> String {
        use netkit::json::string;
        let rules: Vec<String> = self
            .outcomes
            .iter()
            .map(|o| {
                let (verdict, reason, warnings): (&str, &str, &[String]) = match &o.verdict {
                    Verdict::Pass(w) => ("pass", "", w),
                    Verdict::Fail(why) => ("fail", why, &[]),
                    Verdict::Skip(why) => ("skip", why, &[]),
                };
                let warnings: Vec<String> = warnings.iter().map(|w| string(w)).collect();
                format!(
                    "{{\"rule\":{},\"verdict\":\"{verdict}\",\"reason\":{},\"warnings\":[{}]}}",
                    string(o.rule),
                    string(reason),
                    warnings.join(",")
                )
            })
            .collect();
        format!(
            "{{\"lab\":{},\"lab_note\":{},\"passed\":{},\"failed\":{},\"skipped\":{},\"warnings\":{},\"rules\":[{}]}}",
            string(&self.lab.to_string()),
            string(&self.lab_note),
            self.passed(),
            self.failures(),
            self.skipped(),
            self.warnings(),
            rules.join(",")
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "lab profile {} ({})", self.lab, self.lab_note)?;
        for o in &self.outcomes {
            match &o.verdict {
                Verdict::Pass(warnings) => {
                    writeln!(f, "PASS  {}", o.rule)?;
                    for w in warnings {
                        writeln!(f, "      warning: {w}")?;
                    }
                }
                Verdict::Fail(why) => writeln!(f, "FAIL  {}\n      {why}", o.rule)?,
                Verdict::Skip(why) => writeln!(f, "SKIP  {} ({why})", o.rule)?,
            }
        }
        write!(f, "{} passed, {} failed", self.passed(), self.failures())?;
        if self.skipped() > 0 {
            write!(f, ", {} skipped", self.skipped())?;
        }
        if self.warnings() > 0 {
            write!(f, ", {} warnings", self.warnings())?;
        }
        writeln!(f)
    }
}

/// Which lab the server speaks: `help` answered `0` is 2026, `200` is 2025.
async fn detect(ctx: &Ctx) -> (Lab, String) {
    let asked = async {
        let mut s = ctx.connect().await?;
        ctx.send(&mut s, b"help\r\n").await?;
        if ctx.status(&mut s, Status::InvalidCommand).await.is_ok() {
            return Ok::<_, String>(Lab::L2025);
        }
        Ok(Lab::L2026)
    };
    match tokio::time::timeout(ctx.wait * 2, asked).await {
        Ok(Ok(Lab::L2025)) => (Lab::L2025, "detected: help is 200 NO SUCH COMMAND".into()),
        Ok(Ok(_)) => (Lab::L2026, "detected: the server knows help".into()),
        Ok(Err(e)) => (Lab::L2026, format!("assumed: asking for help failed: {e}")),
        Err(_) => (
            Lab::L2026,
            format!("assumed: no answer to help within {:?}", ctx.wait * 2),
        ),
    }
}

/// Writes the fixtures into `dir`, then runs every rule against `server`.
pub async fn run(server: &str, dir: &Path, opts: Options) -> Result<Report, std::io::Error> {
    write_fixtures(dir)?;
    let ctx = Ctx::new(server, opts.wait);
    let (lab, lab_note) = match opts.lab {
        Lab::Auto => detect(&ctx).await,
        lab => (lab, "chosen".to_string()),
    };
    let _ = ctx.take_warnings();
    // A rule takes a few steps, each bounded by the wait; the whole rule is
    // bounded too, so a server that trickles bytes cannot hold the run.
    let rule_bound = opts.wait * 4 + Duration::from_secs(1);
    let mut outcomes = Vec::new();
    for rule in RULES {
        let verdict = match (rule.needs, lab) {
            (Needs::Help, Lab::L2025) => Verdict::Skip("the 2025 lab has no help"),
            (Needs::Raw, Lab::L2025) => Verdict::Skip("the 2025 lab has no raw slices"),
            _ => match tokio::time::timeout(rule_bound, (rule.run)(&ctx)).await {
                Ok(Ok(())) => Verdict::Pass(ctx.take_warnings()),
                Ok(Err(why)) => Verdict::Fail(why),
                Err(_) => Verdict::Fail(format!(
                    "no answer within {rule_bound:?} for the whole rule"
                )),
            },
        };
        let _ = ctx.take_warnings();
        outcomes.push(Outcome {
            rule: rule.name,
            verdict,
        });
    }
    Ok(Report {
        lab,
        lab_note,
        outcomes,
    })
}
