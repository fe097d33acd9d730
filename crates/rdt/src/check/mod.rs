//! The conformance checker (spec: rdt.md, "Conformance checker";
//! `protolab rdt check`): grades someone else's Stop & Wait `SocketTCP`
//! programs, as the course's activity (seed 003) describes them, scenario by
//! scenario, with our socket on the other end and `impair udp` or a single
//! planned loss between.
//!
//! Their server is `--server-cmd 'python3 servidor.py {port}'`: it serves one
//! connection on UDP `{port}` and writes what it received to standard output
//! (bytes as they came; other text around them is allowed). Their client is
//! `--client-cmd 'python3 cliente.py {host} {port} < {file}'`: it sends the
//! file to `{host}:{port}` and ends. Each scenario starts the program afresh
//! and stops it at the scenario's bound. Our socket runs `--dialect auto`, so
//! the report can name the reading of the header the program speaks.

mod program;
mod report;
mod scenarios;
mod session;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use report::line;
pub use scenarios::{Role, SCENARIOS, Scenario};

use crate::dialect::{Learned, Reading};
use crate::error::Error;

/// How the checker runs.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Their server's command (`{port}`, `{host}`, `{file}` filled in).
    pub server_cmd: Option<String>,
    /// Their client's command.
    pub client_cmd: Option<String>,
    /// Bound of one scenario, start to end.
    pub wait: Duration,
    /// How long their program may take to end once our side is done.
    pub exit_wait: Duration,
    /// Our socket's retransmission timeout.
    pub timeout: Duration,
    /// How long our socket keeps resending one segment before it gives up
    /// (longer than their timeout: some readings wait for theirs).
    pub patience: Duration,
    /// Seed of the random scenarios' `impair udp`.
    pub seed: u64,
    /// Where a failed scenario's sequence diagram and the program's output go.
    pub trace_dir: Option<PathBuf>,
    /// Scenario ids to run (empty: all).
    pub only: Vec<String>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            server_cmd: None,
            client_cmd: None,
            wait: Duration::from_secs(60),
            exit_wait: Duration::from_secs(5),
            timeout: Duration::from_millis(100),
            patience: Duration::from_secs(10),
            seed: 1,
            trace_dir: None,
            only: Vec::new(),
        }
    }
}

/// What happened to one scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Passed; what went across.
    Pass(String),
    /// Failed, with why, in one line.
    Fail(String),
    /// The scenario grades nothing of theirs in this role.
    NotApplicable(&'static str),
}

/// One scenario's result.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub scenario: &'static Scenario,
    pub verdict: Verdict,
    /// What the activity expects of their program here.
    pub rule: &'static str,
    /// The failed run's sequence diagram, if `trace_dir` was given.
    pub trace: Option<PathBuf>,
    pub took: Duration,
}

/// Every scenario against one program.
#[derive(Debug, Clone)]
pub struct Section {
    pub role: Role,
    pub command: String,
    /// The reading our socket found it speaks (from the first scenario that
    /// got far enough), and what it learned.
    pub dialect: Option<(Reading, Vec<Learned>)>,
    pub outcomes: Vec<Outcome>,
}

/// The whole run: one section per program.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    pub sections: Vec<Section>,
}

impl Report {
    pub fn count(&self, f: impl Fn(&Verdict) -> bool) -> usize {
        self.sections
            .iter()
            .flat_map(|s| &s.outcomes)
            .filter(|o| f(&o.verdict))
            .count()
    }

    pub fn failures(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Fail(_)))
    }
}

/// The scenarios `only` names (all when empty); an unknown name is an error
/// that lists the known ones.
pub fn select(only: &[String]) -> Result<Vec<&'static Scenario>, String> {
    if only.is_empty() {
        return Ok(SCENARIOS.iter().collect());
    }
    only.iter()
        .map(|id| {
            scenarios::find(id).ok_or_else(|| {
                let known: Vec<&str> = SCENARIOS.iter().map(|s| s.id).collect();
                format!("unknown scenario {id:?}; known: {}", known.join(", "))
            })
        })
        .collect()
}

/// Runs every chosen scenario against each program given; `progress` hears
/// of each outcome as it is known.
pub fn run(opts: &CheckOptions, mut progress: impl FnMut(Role, &Outcome)) -> Result<Report, Error> {
    let chosen = select(&opts.only).map_err(|_| Error::Usage("given known scenario names"))?;
    let programs: Vec<(Role, &String)> = [
        (Role::Server, opts.server_cmd.as_ref()),
        (Role::Client, opts.client_cmd.as_ref()),
    ]
    .into_iter()
    .filter_map(|(r, c)| c.map(|c| (r, c)))
    .collect();
    if programs.is_empty() {
        return Err(Error::Usage("given --server-cmd or --client-cmd"));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Error::io("start the proxy runtime", e))?;
    let dir = tempfile::tempdir().map_err(|e| Error::io("make a work directory", e))?;
    if let Some(t) = &opts.trace_dir {
        std::fs::create_dir_all(t).map_err(|e| Error::io(format!("create {}", t.display()), e))?;
    }
    let mut sections = Vec::new();
    for (role, command) in programs {
        let mut section = Section {
            role,
            command: command.clone(),
            dialect: None,
            outcomes: Vec::new(),
        };
        // A run that failed may still have learned the reading.
        let mut seen: Option<(Reading, Vec<Learned>)> = None;
        for &scenario in &chosen {
            let start = Instant::now();
            let outcome = if let Some(why) = scenarios::not_applicable(scenario, role) {
                Outcome {
                    scenario,
                    rule: scenarios::rule(scenario, role),
                    verdict: Verdict::NotApplicable(why),
                    trace: None,
                    took: Duration::ZERO,
                }
            } else {
                let run = session::run(opts, &rt, scenario, role, command, dir.path());
                if section.dialect.is_none() && matches!(run.verdict, Verdict::Pass(_)) {
                    section.dialect.clone_from(&run.dialect);
                }
                if seen.is_none() {
                    seen.clone_from(&run.dialect);
                }
                let trace = match (&run.verdict, &opts.trace_dir) {
                    (Verdict::Fail(_), Some(t)) => report::keep(t, role, scenario, &run),
                    _ => None,
                };
                Outcome {
                    scenario,
                    rule: scenarios::rule(scenario, role),
                    verdict: run.verdict,
                    trace,
                    took: start.elapsed(),
                }
            };
            progress(role, &outcome);
            section.outcomes.push(outcome);
        }
        if section.dialect.is_none() {
            section.dialect = seen;
        }
        sections.push(section);
    }
    Ok(Report {
        seed: opts.seed,
        sections,
    })
}
