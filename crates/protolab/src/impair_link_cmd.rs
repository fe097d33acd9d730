//! `protolab impair link`: two namespaces joined by an impaired link, for as
//! long as a signal, `--duration` or the commands given after `--` allow;
//! `impair link exec` runs one command in a side of a running link.

use std::io::Write as _;
use std::process::{Child, ExitStatus};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use impair::link::{self, IfAddr, Link, LinkConfig, Side};
use netkit::units::Dur;

use crate::impair_cmd::{DatagramRuleArgs, RunArgs, udp_rules, until_stopped};

pub(crate) const LINK_HELP: &str = "\
Needs root (or CAP_NET_ADMIN). Makes namespaces NAME-a and NAME-b, a device
link0 in each (a: 10.77.0.1/24 and fd77::1/64, b: .2 and ::2 unless
--addr-a/--addr-b say otherwise), and forwards every IP packet between them
through the rules. Every rule takes VALUE (both ways), a2b=VALUE or b2a=VALUE.
Durations: 250us, 10ms. Sizes: 1500, 64KiB. Probabilities: 0.05 or 5%.

Commands after `--` run inside the namespaces, each starting with `a:` or `b:`,
in the order given (start a server first; a client should retry its connect or
wait); the link lasts until every one of them has exited.

Examples:
  # kernel TCP from a to b through 5% loss each way and 20 ms of delay
  protolab impair link --name lab --loss 5% --delay 20ms -- \\
      b: python3 -m http.server -b 10.77.0.2 8000 \\
      a: sh -c 'sleep 1; curl -so /dev/null -w \"%{speed_download}\\n\" http://10.77.0.2:8000/'
  # keep a link up; run things in it from other terminals
  protolab impair link --name lab --loss a2b=10% --rate 1MB --seed 7
  protolab impair link exec --name lab b -- iperf3 -s -1
  protolab impair link exec --name lab a -- iperf3 -c 10.77.0.2
  # remove what a killed run left behind
  protolab impair link --name lab --cleanup";

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct LinkArgs {
    #[command(subcommand)]
    exec: Option<LinkCmd>,
    /// The link's name: its namespaces are NAME-a and NAME-b.
    #[arg(long, default_value = "lab")]
    name: String,
    /// An address of a's device (ADDR/PREFIX; repeatable; replaces the defaults).
    #[arg(long, value_name = "ADDR")]
    addr_a: Vec<IfAddr>,
    /// An address of b's device (ADDR/PREFIX; repeatable; replaces the defaults).
    #[arg(long, value_name = "ADDR")]
    addr_b: Vec<IfAddr>,
    /// MTU of both devices.
    #[arg(long, default_value_t = link::config::DEFAULT_MTU)]
    mtu: u32,
    #[command(flatten)]
    rules: DatagramRuleArgs,
    #[command(flatten)]
    run: RunArgs,
    /// Remove what an earlier run of this link left (namespaces and the
    /// processes in them) and exit.
    #[arg(long)]
    cleanup: bool,
    /// `a: CMD ARGS... b: CMD ARGS...`: commands to run inside the namespaces.
    #[arg(last = true, value_name = "COMMANDS")]
    commands: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum LinkCmd {
    /// Run a command inside one side of a running link.
    #[command(
        after_help = "Example:\n  protolab impair link exec --name lab a -- ping -c 3 10.77.0.2"
    )]
    Exec {
        /// The link's name.
        #[arg(long, default_value = "lab")]
        name: String,
        /// a or b.
        side: Side,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

/// `a: CMD ARGS... b: CMD ARGS...` → one command per marker, in order.
fn split_commands(words: &[String]) -> anyhow::Result<Vec<(Side, Vec<String>)>> {
    let mut out: Vec<(Side, Vec<String>)> = Vec::new();
    for w in words {
        match w.as_str() {
            "a:" | "b:" => out.push((w.parse()?, Vec::new())),
            _ => match out.last_mut() {
                Some((_, cmd)) => cmd.push(w.clone()),
                None => bail!("commands after `--` start with `a:` or `b:` (got {w:?})"),
            },
        }
    }
    if let Some((side, _)) = out.iter().find(|(_, c)| c.is_empty()) {
        bail!("`{side}:` is not followed by a command");
    }
    Ok(out)
}

fn config(a: &LinkArgs) -> LinkConfig {
    let mut cfg = LinkConfig::new(&a.name);
    if !a.addr_a.is_empty() {
        cfg.a.clone_from(&a.addr_a);
    }
    if !a.addr_b.is_empty() {
        cfg.b.clone_from(&a.addr_b);
    }
    cfg.mtu = a.mtu;
    cfg.rules = udp_rules(&a.rules);
    cfg.seed = a.run.seed;
    cfg.log_decisions = a.run.log;
    cfg
}

fn describe(link: &Link, side: Side) -> String {
    let addrs: Vec<String> = link
        .config()
        .addrs(side)
        .iter()
        .map(ToString::to_string)
        .collect();
    format!(
        "{} ({} {})",
        link.namespace(side),
        link::DEVICE,
        addrs.join(" ")
    )
}

pub(crate) async fn run(a: LinkArgs) -> anyhow::Result<()> {
    if let Some(LinkCmd::Exec {
        name,
        side,
        command,
    }) = a.exec
    {
        return exec(&name, side, &command);
    }
    if a.cleanup {
        let removed = link::cleanup(&a.name)?;
        if removed.is_empty() {
            println!("impair link: nothing of link {} to remove", a.name);
        } else {
            println!("impair link: removed {}", removed.join(", "));
        }
        return Ok(());
    }
    let commands = split_commands(&a.commands)?;
    let cfg = config(&a);
    let signal = netkit::shutdown::signal().context("cannot install signal handlers")?;
    let link = tokio::task::spawn_blocking(move || Link::start(cfg))
        .await
        .context("starting the link")??;
    if !link.leftovers().is_empty() {
        eprintln!(
            "impair link: removed {} left by an earlier run",
            link.leftovers().join(", ")
        );
    }
    println!(
        "impair link {}: {} <-> {}, mtu {}",
        a.name,
        describe(&link, Side::A),
        describe(&link, Side::B),
        link.config().mtu
    );
    if commands.is_empty() {
        println!(
            "  run inside: protolab impair link exec --name {} a -- CMD   (or: ip netns exec {} CMD)",
            a.name,
            link.namespace(Side::A)
        );
    }
    let _ = std::io::stdout().flush();
    let failed = if commands.is_empty() {
        until_stopped(signal, a.run.duration).await?;
        None
    } else {
        run_commands(&link, commands, signal, a.run.duration).await?
    };
    let summary = tokio::task::spawn_blocking(move || link.shutdown())
        .await
        .context("stopping the link")??;
    print!("{summary}");
    let _ = std::io::stdout().flush();
    if let Some(why) = failed {
        bail!(why);
    }
    Ok(())
}

/// Starts the commands in order and waits for all of them (or a signal, or
/// the duration). Returns why the run failed, if a command did.
async fn run_commands(
    link: &Link,
    commands: Vec<(Side, Vec<String>)>,
    signal: impl Future<Output = netkit::shutdown::Signal>,
    duration: Option<Dur>,
) -> anyhow::Result<Option<String>> {
    let mut children: Vec<(String, Child)> = Vec::new();
    for (side, words) in commands {
        let label = format!("{side}: {}", words.join(" "));
        let child = link
            .command(side, &words[0])
            .args(&words[1..])
            .spawn()
            .with_context(|| format!("cannot start `{label}`"))?;
        children.push((label, child));
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    // Waiting is blocking; a thread waits for every child in turn. Shutting the
    // link down stops whatever still runs inside, which ends this wait.
    std::thread::spawn(move || {
        let mut statuses: Vec<(String, std::io::Result<ExitStatus>)> = Vec::new();
        for (label, mut child) in children {
            statuses.push((label, child.wait()));
        }
        let _ = tx.send(statuses);
    });
    let limit = async {
        match duration {
            Some(d) => tokio::time::sleep(d.0).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = rx => {
            let statuses = r.context("waiting for the commands")?;
            for (label, status) in statuses {
                match status {
                    Ok(s) if s.success() => {}
                    Ok(s) => return Ok(Some(format!("`{label}` ended with {s}"))),
                    Err(e) => return Ok(Some(format!("`{label}`: {e}"))),
                }
            }
            Ok(None)
        }
        _ = signal => Ok(None),
        () = limit => Ok(None),
    }
}

/// `impair link exec`: runs the command in the side's namespace with our
/// terminal, and exits with its status.
fn exec(name: &str, side: Side, command: &[String]) -> anyhow::Result<()> {
    let ns = link::config::namespace(name, side);
    if !link::namespace_exists(&ns) {
        bail!(
            "no link {name} is running (namespace {ns} does not exist); start one with `protolab impair link --name {name}`"
        );
    }
    let status = link::command_in(&ns, &command[0])
        .args(&command[1..])
        .status()
        .with_context(|| format!("cannot run {:?} in {ns}", command[0]))?;
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn commands_split_at_their_side_markers() {
        let c = split_commands(&words("b: srv -p 1 a: cli x")).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0], (Side::B, words("srv -p 1")));
        assert_eq!(c[1], (Side::A, words("cli x")));
        assert!(split_commands(&words("srv a: x")).is_err());
        assert!(split_commands(&words("a: b: x")).is_err());
        assert!(split_commands(&[]).unwrap().is_empty());
    }
}
