//! `protolab impair udp|tcp|bench`: arguments → proxy configuration, run until a
//! signal (or `--duration`), print the summary.

use std::io::Write as _;
use std::net::SocketAddr;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use impair::units::{Pattern, Trigger};
use impair::{
    DirValue, PerDir, TcpProxy, TcpProxyConfig, TcpRules, UdpProxy, UdpProxyConfig, UdpRules,
};
use netkit::units::{Bytes, Dur, Probability};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  protolab impair udp --port 9001 --upstream 127.0.0.1:9000 --loss 20% --seed 7
  protolab impair tcp --upstream 127.0.0.1:19500 --chop 1 --chop-pause 1ms
  sudo protolab impair link --name lab --loss 5% --delay 20ms   (two namespaces, any protocol)
  protolab impair bench")]
pub struct ImpairArgs {
    #[command(subcommand)]
    kind: Kind,
}

#[derive(Debug, Subcommand)]
enum Kind {
    /// Relay UDP datagrams, impaired.
    #[command(after_help = UDP_HELP, mut_arg("address", |a| a.default_value("127.0.0.1")))]
    Udp(UdpArgs),
    /// Relay a TCP stream, impaired.
    #[command(after_help = TCP_HELP, mut_arg("address", |a| a.default_value("127.0.0.1")))]
    Tcp(TcpArgs),
    /// Join two network namespaces by an impaired link: every IP packet, any
    /// protocol (kernel TCP included). Needs root.
    #[command(after_help = crate::impair_link_cmd::LINK_HELP)]
    Link(crate::impair_link_cmd::LinkArgs),
    /// Measure the TCP proxy's throughput against a direct loopback copy, and
    /// (as root) the link's against a veth pair.
    #[command(after_help = "Example:\n  cargo run --release -- impair bench --size 2GiB")]
    Bench {
        /// Bytes sent per run through the TCP proxy.
        #[arg(long, default_value = "1GiB")]
        size: Bytes,
        /// Bytes sent per run through the link (and its baselines).
        #[arg(long, default_value = "256MiB")]
        link_size: Bytes,
        /// Runs of each kind; the best is reported.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Only the link's row.
        #[arg(long)]
        link_only: bool,
        /// Print each BENCH line as a JSON object on stdout (the report on stderr).
        #[arg(long)]
        json: bool,
    },
}

const UDP_HELP: &str = "\
Every rule takes VALUE (both directions), up=VALUE (client -> upstream) or
down=VALUE (upstream -> client), and may be repeated. Durations: 250us, 10ms, 1.5s.
Sizes: 1500, 64KiB, 10MB. Probabilities: 0.05 or 5%.

Example: lose 20% of the datagrams to the server, drop the 3rd reply, same choices
every run:
  protolab impair udp --port 9001 --upstream 127.0.0.1:9000 \\
      --loss up=20% --drop-nth down=3 --seed 7 --log";

const TCP_HELP: &str = "\
Every rule takes VALUE (both directions), up=VALUE (client -> upstream) or
down=VALUE (upstream -> client), and may be repeated. Durations: 250us, 10ms, 1.5s.
Sizes: 1500, 64KiB, 10MB. Triggers: a byte count (100, 4KiB) or a time (2s).

Example: deliver the client's requests one byte per write, 1 ms apart, and reset
the connection after the server has sent 1 MB:
  protolab impair tcp --upstream 127.0.0.1:19500 \\
      --chop up=1 --chop-pause up=1ms --reset-after down=1MB";

/// Options both proxies share.
#[derive(Debug, Args)]
struct Common {
    #[command(flatten)]
    listen: crate::listen::ListenArgs,
    /// The real server (host:port).
    #[arg(long)]
    upstream: String,
    #[command(flatten)]
    run: RunArgs,
}

/// How a proxy or a link runs: its seed, its log, how long.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Seed of every random choice: the same seed and traffic give the same run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Log one line per decision.
    #[arg(long)]
    pub log: bool,
    /// Stop after this long (default: until SIGINT or SIGTERM, or the end of
    /// a link's commands).
    #[arg(long, value_parser = crate::cli_values::timeout)]
    pub duration: Option<Dur>,
}

/// The datagram engine's rules, shared by `impair udp` and `impair link`.
#[derive(Debug, Args)]
pub(crate) struct DatagramRuleArgs {
    /// Drop datagrams with this probability.
    #[arg(long, value_name = "[DIR=]P")]
    loss: Vec<DirValue<Probability>>,
    /// Send datagrams twice with this probability.
    #[arg(long, value_name = "[DIR=]P")]
    duplicate: Vec<DirValue<Probability>>,
    /// Flip one byte of datagrams with this probability.
    #[arg(long, value_name = "[DIR=]P")]
    corrupt: Vec<DirValue<Probability>>,
    /// Hold datagrams back behind their successor with this probability.
    #[arg(long, value_name = "[DIR=]P")]
    reorder: Vec<DirValue<Probability>>,
    /// How long a held datagram waits for a successor (default 50ms).
    #[arg(long, value_name = "[DIR=]DUR")]
    reorder_timeout: Vec<DirValue<Dur>>,
    /// Delay every datagram.
    #[arg(long, value_name = "[DIR=]DUR")]
    delay: Vec<DirValue<Dur>>,
    /// Random extra delay, uniform in -J..=J.
    #[arg(long, value_name = "[DIR=]DUR")]
    jitter: Vec<DirValue<Dur>>,
    /// Limit the rate, in bytes per second.
    #[arg(long, value_name = "[DIR=]BYTES")]
    rate: Vec<DirValue<Bytes>>,
    /// Drop exactly the Nth datagram (1-based) of the direction; repeatable.
    #[arg(long, value_name = "[DIR=]N", value_parser = crate::cli_values::nth)]
    drop_nth: Vec<DirValue<u64>>,
    /// Drop datagrams containing this text (or hex:0a0d...).
    #[arg(long, value_name = "[DIR=]PATTERN")]
    drop_match: Vec<DirValue<Pattern>>,
    /// Drop only the first N datagrams that match.
    #[arg(long, value_name = "[DIR=]N", value_parser = crate::cli_values::nth)]
    drop_match_limit: Vec<DirValue<u64>>,
    /// Datagrams waiting at once (delayed, paced or held) before new ones are
    /// dropped and counted (default 4096).
    #[arg(long, value_name = "[DIR=]N", value_parser = crate::cli_values::dir_count)]
    queue: Vec<DirValue<usize>>,
}

#[derive(Debug, Args)]
struct UdpArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    rules: DatagramRuleArgs,
    /// Client addresses served at once.
    #[arg(long, default_value_t = 1024, value_parser = crate::cli_values::count)]
    max_flows: usize,
    /// Give each server port that answers its own proxy port, so a client
    /// still reaches the listening port after the server answered from a
    /// new socket (Stop & Wait servers that read the handshake ACK there).
    #[arg(long)]
    mirror_ports: bool,
}

#[derive(Debug, Args)]
struct TcpArgs {
    #[command(flatten)]
    common: Common,
    /// Write at most K bytes per write (1 exposes short-read bugs).
    #[arg(long, value_name = "[DIR=]K", value_parser = crate::cli_values::dir_count)]
    chop: Vec<DirValue<usize>>,
    /// Pause between the pieces of a chopped write.
    #[arg(long, value_name = "[DIR=]DUR")]
    chop_pause: Vec<DirValue<Dur>>,
    /// Delay every byte.
    #[arg(long, value_name = "[DIR=]DUR")]
    latency: Vec<DirValue<Dur>>,
    /// Random extra delay per chunk, uniform in -J..=J (the stream stays in order).
    #[arg(long, value_name = "[DIR=]DUR")]
    jitter: Vec<DirValue<Dur>>,
    /// Limit the bandwidth, in bytes per second.
    #[arg(long, value_name = "[DIR=]BYTES")]
    bandwidth: Vec<DirValue<Bytes>>,
    /// Gather what arrives within this window into one write.
    #[arg(long, value_name = "[DIR=]DUR")]
    coalesce: Vec<DirValue<Dur>>,
    /// Stop forwarding after N bytes or a time.
    #[arg(long, value_name = "[DIR=]TRIGGER")]
    stall_after: Vec<DirValue<Trigger>>,
    /// How long a stall lasts (default: until the connection ends).
    #[arg(long, value_name = "[DIR=]DUR")]
    stall_for: Vec<DirValue<Dur>>,
    /// Close both sides (FIN) after N bytes or a time.
    #[arg(long, value_name = "[DIR=]TRIGGER")]
    close_after: Vec<DirValue<Trigger>>,
    /// Reset both sides (RST) after N bytes or a time.
    #[arg(long, value_name = "[DIR=]TRIGGER")]
    reset_after: Vec<DirValue<Trigger>>,
    /// Connections relayed at once.
    #[arg(long, default_value_t = 10_000, value_parser = crate::cli_values::count)]
    max_connections: usize,
}

/// Applies every value of a repeatable per-direction flag.
fn set<T, V: Clone>(rules: &mut PerDir<T>, values: &[DirValue<V>], f: impl Fn(&mut T, V)) {
    for v in values {
        rules.apply(v, &f);
    }
}

pub(crate) fn udp_rules(a: &DatagramRuleArgs) -> PerDir<UdpRules> {
    let mut r = PerDir::<UdpRules>::default();
    set(&mut r, &a.loss, |r, v| r.loss = v);
    set(&mut r, &a.duplicate, |r, v| r.duplicate = v);
    set(&mut r, &a.corrupt, |r, v| r.corrupt = v);
    set(&mut r, &a.reorder, |r, v| r.reorder = v);
    set(&mut r, &a.reorder_timeout, |r, v| r.reorder_timeout = v.0);
    set(&mut r, &a.delay, |r, v| r.delay = v.0);
    set(&mut r, &a.jitter, |r, v| r.jitter = v.0);
    set(&mut r, &a.rate, |r, v| r.rate = Some(v.0));
    set(&mut r, &a.drop_nth, |r, v| r.drop_nth.push(v));
    set(&mut r, &a.drop_match, |r, v| r.drop_match = Some(v.0));
    set(&mut r, &a.drop_match_limit, |r, v| {
        r.drop_match_limit = Some(v);
    });
    set(&mut r, &a.queue, |r, v| r.queue = v);
    r
}

fn tcp_rules(a: &TcpArgs) -> PerDir<TcpRules> {
    let mut r = PerDir::<TcpRules>::default();
    set(&mut r, &a.chop, |r, v| r.chop = Some(v));
    set(&mut r, &a.chop_pause, |r, v| r.chop_pause = v.0);
    set(&mut r, &a.latency, |r, v| r.latency = v.0);
    set(&mut r, &a.jitter, |r, v| r.jitter = v.0);
    set(&mut r, &a.bandwidth, |r, v| r.bandwidth = Some(v.0));
    set(&mut r, &a.coalesce, |r, v| r.coalesce = Some(v.0));
    set(&mut r, &a.stall_after, |r, v| r.stall = Some(v));
    set(&mut r, &a.stall_for, |r, v| r.stall_for = Some(v.0));
    set(&mut r, &a.close_after, |r, v| r.close = Some(v));
    set(&mut r, &a.reset_after, |r, v| r.reset = Some(v));
    r
}

async fn resolve(upstream: &str) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(upstream)
        .await
        .with_context(|| format!("cannot resolve upstream {upstream:?} (expected host:port)"))?
        .next()
        .with_context(|| format!("upstream {upstream:?} has no address"))
}

/// Waits for SIGINT/SIGTERM (handlers installed by the caller before it
/// announces its address, so an early signal is not lost) or `--duration`.
pub(crate) async fn until_stopped(
    signal: impl Future<Output = netkit::shutdown::Signal>,
    duration: Option<Dur>,
) -> anyhow::Result<()> {
    match duration {
        Some(d) => {
            tokio::select! {
                _ = signal => {}
                () = tokio::time::sleep(d.0) => {}
            }
        }
        None => {
            signal.await;
        }
    }
    Ok(())
}

fn announce(kind: &str, local: SocketAddr, upstream: SocketAddr) {
    // stdout, flushed: scripts and tests read the bound address from this line.
    println!("impair {kind}: listening on {local} -> upstream {upstream}");
    let _ = std::io::stdout().flush();
}

pub async fn run(args: ImpairArgs) -> anyhow::Result<()> {
    match args.kind {
        Kind::Udp(a) => {
            let upstream = resolve(&a.common.upstream).await?;
            let mut cfg = UdpProxyConfig::new(a.common.listen.resolve().await?, upstream);
            cfg.rules = udp_rules(&a.rules);
            cfg.seed = a.common.run.seed;
            cfg.log_decisions = a.common.run.log;
            cfg.max_flows = a.max_flows;
            cfg.mirror_ports = a.mirror_ports;
            let signal = netkit::shutdown::signal().context("cannot install signal handlers")?;
            let proxy = UdpProxy::start(cfg).await?;
            announce("udp", proxy.local_addr(), upstream);
            until_stopped(signal, a.common.run.duration).await?;
            print!("{}", proxy.shutdown().await);
        }
        Kind::Tcp(a) => {
            let upstream = resolve(&a.common.upstream).await?;
            let mut cfg = TcpProxyConfig::new(a.common.listen.resolve().await?, upstream);
            cfg.rules = tcp_rules(&a);
            cfg.seed = a.common.run.seed;
            cfg.log_decisions = a.common.run.log;
            cfg.max_connections = a.max_connections;
            let signal = netkit::shutdown::signal().context("cannot install signal handlers")?;
            let proxy = TcpProxy::start(cfg).await?;
            announce("tcp", proxy.local_addr(), upstream);
            until_stopped(signal, a.common.run.duration).await?;
            print!("{}", proxy.shutdown().await);
        }
        Kind::Link(a) => crate::impair_link_cmd::run(a).await?,
        Kind::Bench {
            size,
            link_size,
            runs,
            link_only,
            json,
        } => {
            let out = crate::bench_out::BenchOut::new(json);
            if !link_only {
                let report = impair::bench::tcp_throughput(size.0, runs.max(1)).await?;
                out.report(report);
            }
            let bytes = link_size.0;
            match tokio::task::spawn_blocking(move || impair::link::bench::run(bytes, runs)).await?
            {
                Ok(report) => out.report(report),
                Err(impair::Error::NotPermitted(why)) => {
                    out.line(&format!(
                        "impair link: skipped, it needs root or CAP_NET_ADMIN ({why})"
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    let _ = std::io::stdout().flush();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        kind: Kind,
    }

    #[test]
    fn per_direction_flags_reach_the_right_rules() {
        let t = T::parse_from([
            "t",
            "udp",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
            "--loss",
            "up=20%",
            "--drop-nth",
            "down=3",
            "--drop-nth",
            "down=5",
            "--delay",
            "10ms",
        ]);
        let Kind::Udp(a) = t.kind else { panic!() };
        let r = udp_rules(&a.rules);
        assert!((r.up.loss.get() - 0.2).abs() < 1e-12);
        assert!(r.down.loss.get().abs() < f64::EPSILON);
        assert_eq!(r.down.drop_nth, vec![3, 5]);
        assert!(r.up.drop_nth.is_empty());
        assert_eq!(
            (r.up.delay, r.down.delay),
            (Duration::from_millis(10), Duration::from_millis(10))
        );
    }

    #[test]
    fn tcp_triggers_parse_as_bytes_or_time() {
        let t = T::parse_from([
            "t",
            "tcp",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
            "--reset-after",
            "up=100",
            "--close-after",
            "down=2s",
            "--chop",
            "1",
        ]);
        let Kind::Tcp(a) = t.kind else { panic!() };
        let r = tcp_rules(&a);
        assert_eq!(r.up.reset, Some(Trigger::Bytes(100)));
        assert_eq!(r.down.close, Some(Trigger::After(Duration::from_secs(2))));
        assert_eq!((r.up.chop, r.down.chop), (Some(1), Some(1)));
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        let e = T::try_parse_from([
            "t",
            "udp",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "x:1",
            "--loss",
            "150%",
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("must be between 0 and 1"), "{e}");
    }
}
