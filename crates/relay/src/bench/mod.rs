//! `protolab relay bench` (issue "Performance"): deliveries per second
//! (chats × recipients) with 10, 100 and 1,000 clients, and delivery latency
//! at a fixed 100,000 deliveries/s with 100 clients — for the relay server and,
//! in the same run, a plain TCP fan-out of the same frames (no sequencing,
//! acks or history) and Redis pub/sub (TARGETS.md's reference) when
//! `redis-server` is installed.

mod load;
mod plain;
mod scan;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use load::{Outcome, Plan, Target};

use crate::Error;

/// Senders in every run, and chats each keeps in flight (throughput mode).
pub const SENDERS: usize = 10;
pub const WINDOW: usize = 32;
/// Deliveries per throughput run (chats × clients).
pub const DELIVERIES: u64 = 2_000_000;
/// Outbox of every server's client (relay and plain), in frames.
pub const OUTBOX: usize = 16_384;

/// A server under test, running until dropped.
struct Server {
    addr: SocketAddr,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
    process: Option<Child>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(mut p) = self.process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

/// Runs a tokio server on its own 2-worker runtime, as a separate program would.
fn in_process<F, Fut>(serve: F) -> Result<Server, Error>
where
    F: FnOnce(TcpListener, CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let stop = CancellationToken::new();
    let token = stop.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let thread = std::thread::spawn(move || {
        runtime.block_on(async move {
            if let Ok(listener) = TcpListener::from_std(std_listener) {
                serve(listener, token).await;
            }
        });
    });
    Ok(Server {
        addr,
        stop,
        thread: Some(thread),
        process: None,
    })
}

fn relay_server() -> Result<Server, Error> {
    in_process(|listener, stop| async move {
        let config = crate::server::Config {
            outbox: OUTBOX,
            heartbeat: Duration::from_secs(30),
            ..crate::server::Config::default()
        };
        let _ = crate::server::run(listener, config, stop.cancelled_owned()).await;
    })
}

fn plain_server() -> Result<Server, Error> {
    in_process(|listener, stop| plain::serve(listener, OUTBOX, stop))
}

/// `redis-server` on a free port, or None when it is not installed.
async fn redis_server() -> Result<Option<Server>, Error> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let spawned = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--protected-mode", "no", "--maxclients", "10000"])
        // Pub/sub output buffers unbounded: the window bounds them, as for the others.
        .args(["--client-output-buffer-limit", "pubsub 0 0 0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = spawned else { return Ok(None) };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let server = Server {
        addr,
        stop: CancellationToken::new(),
        thread: None,
        process: Some(child),
    };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(Some(server));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(Error::Bench(
        "redis-server started but never accepted a connection".into(),
    ))
}

async fn measure(target: Target, plan: Plan) -> Result<Option<Outcome>, Error> {
    let server = match target {
        Target::Relay => relay_server()?,
        Target::Plain => plain_server()?,
        Target::Redis => match redis_server().await? {
            Some(s) => s,
            None => return Ok(None),
        },
    };
    let outcome = load::run(target, server.addr, plan).await?;
    drop(server);
    Ok(Some(outcome))
}

fn throughput_plan(clients: usize) -> Plan {
    Plan {
        clients,
        senders: SENDERS.min(clients),
        chats_per_sender: DELIVERIES / clients as u64 / SENDERS.min(clients) as u64,
        window: WINDOW,
        pace: None,
    }
}

fn fmt_rate(o: Option<&Outcome>) -> String {
    o.map_or_else(|| "-".to_string(), |o| format!("{:.0}", o.per_sec()))
}

/// Every measurement; prints the tables and BENCH lines through `out`.
pub async fn run(mut out: impl FnMut(&str)) -> Result<(), Error> {
    let redis_found = Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok();
    out(&format!(
        "relay bench: deliveries/s = chats x recipients, {SENDERS} senders with {WINDOW} chats in flight each, {DELIVERIES} deliveries per run"
    ));
    if !redis_found {
        out(
            "(redis-server not found: install it, e.g. apt-get install redis-server, to compare with Redis pub/sub)",
        );
    }
    out(
        "  clients        relay   plain fan-out   redis pub/sub   relay/plain   relay/redis   order errors",
    );
    let mut lines = Vec::new();
    for clients in [10, 100, 1_000] {
        let plan = throughput_plan(clients);
        let relay = measure(Target::Relay, plan.clone()).await?;
        let plain = measure(Target::Plain, plan.clone()).await?;
        let redis = measure(Target::Redis, plan).await?;
        let r = relay.as_ref().map_or(0.0, Outcome::per_sec);
        let ratio = |o: Option<&Outcome>| {
            o.map_or_else(|| "-".to_string(), |o| format!("{:.2}", r / o.per_sec()))
        };
        out(&format!(
            "  {clients:>7} {:>12} {:>15} {:>15} {:>13} {:>13} {:>14}",
            fmt_rate(relay.as_ref()),
            fmt_rate(plain.as_ref()),
            fmt_rate(redis.as_ref()),
            ratio(plain.as_ref()),
            ratio(redis.as_ref()),
            relay.as_ref().map_or(0, |o| o.order_errors)
        ));
        lines.push(
            netkit::bench::BenchLine::new("relay_fanout")
                .field("clients", clients)
                .num("relay_deliveries_s", r, 0)
                .field("plain_deliveries_s", fmt_rate(plain.as_ref()))
                .field("redis_deliveries_s", fmt_rate(redis.as_ref()))
                .field("ratio_redis", ratio(redis.as_ref()))
                .to_string(),
        );
    }
    // Latency: 100 clients, 1,000 chats/s (10 senders, one every 10 ms) for 3 s.
    let paced = Plan {
        clients: 100,
        senders: SENDERS,
        chats_per_sender: 300,
        window: 0,
        pace: Some(Duration::from_millis(10)),
    };
    out("latency at 100,000 deliveries/s (100 clients, 1,000 chats/s for 3 s):");
    out("  server            p50 ms   p99 ms  p99.9 ms");
    for (name, target) in [
        ("relay", Target::Relay),
        ("plain fan-out", Target::Plain),
        ("redis pub/sub", Target::Redis),
    ] {
        let Some(o) = measure(target, paced.clone()).await? else {
            continue;
        };
        out(&format!(
            "  {name:<15} {:>8.3} {:>8.3} {:>9.3}",
            o.latency_ms(0.5),
            o.latency_ms(0.99),
            o.latency_ms(0.999)
        ));
        lines.push(
            netkit::bench::BenchLine::new("relay_latency")
                .field("server", name)
                .field("clients", 100)
                .field("deliveries_s", 100_000)
                .num("p50_ms", o.latency_ms(0.5), 3)
                .num("p99_ms", o.latency_ms(0.99), 3)
                .to_string(),
        );
    }
    for l in &lines {
        out(l);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Not a timing test: the bench's own machinery counts what it says, and
    /// the relay's order check holds under load.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tiny_run_counts_every_delivery() {
        for target in [Target::Relay, Target::Plain] {
            let plan = Plan {
                clients: 5,
                senders: 2,
                chats_per_sender: 40,
                window: 4,
                pace: None,
            };
            let o = measure(target, plan).await.unwrap().unwrap();
            assert_eq!(o.deliveries, 5 * 2 * 40);
            assert_eq!(o.order_errors, 0);
            let paced = Plan {
                clients: 4,
                senders: 2,
                chats_per_sender: 5,
                window: 0,
                pace: Some(Duration::from_millis(2)),
            };
            let o = measure(target, paced).await.unwrap().unwrap();
            assert_eq!(
                o.latencies_us.len(),
                4 * 2 * 5,
                "{target:?}: one latency per delivery"
            );
        }
    }
}
