//! `protolab rdt check`: arguments → `rdt::check` (spec: rdt.md,
//! "Conformance checker"). Lines print as scenarios finish; `--json` prints
//! one document at the end instead. Exit status 1 if any scenario failed.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use netkit::units::Dur;
use rdt::check::{CheckOptions, Role, SCENARIOS};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  protolab rdt check --server-cmd 'python3 servidor.py {port}'
  protolab rdt check --client-cmd 'python3 cliente.py {host} {port} < {file}'
  protolab rdt check --server-cmd 'python3 servidor.py {port}' \\
      --client-cmd 'python3 cliente.py {host} {port} < {file}' --trace-dir traces --json
  protolab rdt check --list

Their server serves one connection on UDP {port} and writes what it received
to standard output; their client sends {file} to {host}:{port}. Each scenario
starts the program afresh and stops it at --wait. The report names the
reading of the header the program speaks, then grades each scenario by the
activity's step number.")]
pub struct CheckArgs {
    /// Their server: a shell command; {port} is filled in.
    #[arg(long, value_name = "CMD")]
    server_cmd: Option<String>,
    /// Their client: a shell command; {host}, {port} and {file} are filled in.
    #[arg(long, value_name = "CMD")]
    client_cmd: Option<String>,
    /// Bound of one scenario, start to end.
    #[arg(long, default_value = "60s", value_parser = crate::cli_values::timeout)]
    wait: Dur,
    /// How long their program may take to end once the transfer is over.
    #[arg(long, default_value = "5s", value_parser = crate::cli_values::timeout)]
    exit_wait: Dur,
    /// Our socket's retransmission timeout.
    #[arg(long, default_value = "100ms", value_parser = crate::cli_values::timeout)]
    timeout: Dur,
    /// How long our socket keeps resending one segment before it gives up
    /// (make it longer than their program's timeout).
    #[arg(long, default_value = "10s", value_parser = crate::cli_values::timeout)]
    patience: Dur,
    /// Seed of the random-loss and reordering scenarios.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write each failed scenario's sequence diagram (SVG) and the program's
    /// output here.
    #[arg(long, value_name = "DIR")]
    trace_dir: Option<PathBuf>,
    /// Run only these scenarios (see --list).
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    only: Vec<String>,
    /// Print the report as one JSON document.
    #[arg(long)]
    json: bool,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
}

pub fn run(args: CheckArgs) -> anyhow::Result<()> {
    if args.list {
        for s in &SCENARIOS {
            println!("{:<19} step {:<6} {}", s.id, s.step, s.title);
        }
        return Ok(());
    }
    anyhow::ensure!(
        args.server_cmd.is_some() || args.client_cmd.is_some(),
        "give --server-cmd, --client-cmd or both (see --help)"
    );
    rdt::check::select(&args.only).map_err(anyhow::Error::msg)?;
    let opts = CheckOptions {
        server_cmd: args.server_cmd,
        client_cmd: args.client_cmd,
        wait: args.wait.0,
        exit_wait: args.exit_wait.0,
        timeout: args.timeout.0,
        patience: args.patience.0,
        seed: args.seed,
        trace_dir: args.trace_dir,
        only: args.only,
    };
    let json = args.json;
    let mut heading: Option<Role> = None;
    let report = rdt::check::run(&opts, |role, outcome| {
        if json {
            return;
        }
        if heading != Some(role) {
            eprintln!("checking their {}...", role.name());
            heading = Some(role);
        }
        eprintln!("{}", rdt::check::line(outcome));
    })
    .context("rdt check")?;
    if json {
        println!("{}", report.json());
    } else {
        println!("{report}");
    }
    anyhow::ensure!(
        report.failures() == 0,
        "{} scenario(s) failed",
        report.failures()
    );
    Ok(())
}
