//! `impair link`: a bad network between two network namespaces, for any
//! protocol, the kernel's own TCP included (issue #14).
//!
//! [`Link::start`] makes namespaces `NAME-a` and `NAME-b`, a TUN device
//! (`link0`) in each with its addresses and MTU, loopback up in both, and then
//! forwards every IP packet from one device to the other through the datagram
//! engine of `impair udp`, one engine per direction ([`forward`]). Nothing of
//! the kernel's `netem` is needed: the impairment is in user space.
//!
//! What it made is removed by [`Link::shutdown`] or when the `Link` is dropped;
//! a run killed outright leaves its namespaces (its devices die with it), and
//! the next start under the same name, or [`cleanup`], removes them. A pid file
//! under `/run/protolab` tells a leftover from a link still in use.

pub mod bench;
pub mod config;
mod forward;
mod netns;
mod offload;
mod summary;
mod tun;

use std::ffi::OsStr;
use std::fs::File;
use std::io::PipeWriter;
use std::process::Command;
use std::sync::Arc;
use std::thread::JoinHandle;

pub use config::{IfAddr, LinkConfig, Side};
pub use forward::LinkCounters;
pub use summary::LinkSummary;

use crate::datagram::DatagramEngine;
use crate::direction::{Direction, PerDir};
use crate::stats::UdpCounters;
use crate::{Error, stream_rng};

/// The device's name inside each namespace.
pub const DEVICE: &str = "link0";
/// Where pid files of running links are kept.
const RUN_DIR: &str = "/run/protolab";

/// A running link. Dropping it stops forwarding and removes the namespaces.
#[derive(Debug)]
pub struct Link {
    config: LinkConfig,
    counters: PerDir<Arc<UdpCounters>>,
    extra: Arc<LinkCounters>,
    /// Closing it stops the forwarding threads.
    stop: Option<PipeWriter>,
    threads: Vec<JoinHandle<()>>,
    leftovers: Vec<String>,
    removed: bool,
    /// The namespaces this link made (only these are removed).
    made: Vec<String>,
}

impl Link {
    /// Makes the namespaces and devices and starts forwarding. Needs root or
    /// CAP_NET_ADMIN ([`Error::NotPermitted`] otherwise). Leftovers of an
    /// earlier run under the same name are removed first ([`Link::leftovers`]).
    /// Blocks while `ip` runs (tens of milliseconds).
    pub fn start(config: LinkConfig) -> Result<Self, Error> {
        config.validate()?;
        check_capabilities()?;
        let leftovers = cleanup(&config.name)?;
        claim(&config.name)?;
        let (stop_rx, stop_tx) = std::io::pipe()?;
        let mut link = Self {
            counters: PerDir::default(),
            extra: Arc::default(),
            stop: Some(stop_tx),
            threads: Vec::new(),
            leftovers,
            removed: false,
            made: Vec::new(),
            config,
        };
        // On any failure from here, dropping `link` removes what was made.
        let mut devices = Vec::new();
        for side in Side::BOTH {
            devices.push(link.make_side(side)?);
        }
        let b = Arc::new(
            devices
                .pop()
                .ok_or_else(|| Error::Link("no device".into()))?,
        );
        let a = Arc::new(
            devices
                .pop()
                .ok_or_else(|| Error::Link("no device".into()))?,
        );
        let lane = |dir, ends| {
            let engine = DatagramEngine::new(
                link.config.rules.get(dir).clone(),
                stream_rng(link.config.seed, 0, dir),
                Arc::clone(link.counters.get(dir)),
            );
            forward::Lane::new(
                dir,
                ends,
                engine,
                Arc::clone(&link.extra),
                link.config.mtu as usize,
                link.config.log_decisions,
            )
        };
        let lanes = [
            lane(Direction::Up, (Arc::clone(&a), Arc::clone(&b))),
            lane(Direction::Down, (b, a)),
        ];
        let thread = std::thread::Builder::new()
            .name("impair-link".into())
            .spawn(move || forward::run(lanes, &stop_rx))?;
        link.threads.push(thread);
        tracing::info!(name = %link.config.name, "link up");
        Ok(link)
    }

    /// Namespace, device, addresses and loopback of one side.
    fn make_side(&mut self, side: Side) -> Result<File, Error> {
        let ns = self.config.namespace(side);
        netns::add(&ns)?;
        self.made.push(ns.clone());
        // The kernel picks a free name in our namespace; inside its own the
        // device is renamed to `link0`.
        let (file, name) = tun::open("plk%d").map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => {
                Error::NotPermitted(format!("cannot open a TUN device: {e}"))
            }
            _ => Error::Link(format!("cannot open a TUN device (/dev/net/tun): {e}")),
        })?;
        let mtu = self.config.mtu.to_string();
        netns::ip(&["link", "set", "dev", &name, "netns", &ns])?;
        netns::ip(&["-n", &ns, "link", "set", "dev", &name, "name", DEVICE])?;
        let addrs = self.config.addrs(side);
        if addrs.iter().all(|a| a.ip.is_ipv4()) {
            // No IPv6 on the device at all: no router solicitations or MLD
            // reports cross the link unasked.
            netns::run_in(&ns, || {
                std::fs::write(
                    format!("/proc/sys/net/ipv6/conf/{DEVICE}/disable_ipv6"),
                    "1",
                )
            })?
            .map_err(|e| Error::Link(format!("cannot turn IPv6 off on {ns}: {e}")))?;
        } else {
            // No link-local address, so no router solicitations.
            set_device(&ns, &["addrgenmode", "none"])?;
        }
        for a in addrs {
            let a = a.to_string();
            if a.contains(':') {
                netns::ip(&["-n", &ns, "-6", "addr", "add", &a, "dev", DEVICE, "nodad"])?;
            } else {
                netns::ip(&["-n", &ns, "addr", "add", &a, "dev", DEVICE])?;
            }
        }
        // A TUN device queues 500 packets for its reader by default; a burst
        // beyond what the device queues is dropped by the kernel before the
        // engine sees it, so give it Ethernet's 1000.
        set_device(&ns, &["mtu", &mtu, "txqueuelen", "1000", "up"])?;
        netns::ip(&["-n", &ns, "link", "set", "dev", "lo", "up"])?;
        Ok(file)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// The namespace of `side`.
    pub fn namespace(&self, side: Side) -> String {
        self.config.namespace(side)
    }

    /// The first address of `side` of the given family (IPv4 if `v4`).
    pub fn addr(&self, side: Side, v4: bool) -> Option<std::net::IpAddr> {
        self.config
            .addrs(side)
            .iter()
            .map(|a| a.ip)
            .find(|ip| ip.is_ipv4() == v4)
    }

    /// Namespaces an earlier run had left and that start removed.
    pub fn leftovers(&self) -> &[String] {
        &self.leftovers
    }

    /// Runs `f` on a thread inside the namespace of `side` and returns its
    /// result. Sockets made there belong to that namespace for good, so a test
    /// can bind one and use it from anywhere.
    pub fn in_namespace<T: Send>(
        &self,
        side: Side,
        f: impl FnOnce() -> T + Send,
    ) -> Result<T, Error> {
        netns::run_in(&self.namespace(side), f)
    }

    /// A command that runs `program` inside the namespace of `side`.
    pub fn command(&self, side: Side, program: impl AsRef<OsStr>) -> Command {
        command_in(&self.namespace(side), program)
    }

    /// What the link has done so far.
    pub fn summary(&self) -> LinkSummary {
        LinkSummary {
            name: self.config.name.clone(),
            mtu: self.config.mtu,
            dirs: PerDir {
                up: self.counters.up.snapshot(),
                down: self.counters.down.snapshot(),
            },
            largest: self
                .extra
                .largest
                .load(std::sync::atomic::Ordering::Relaxed),
            over_mtu: self
                .extra
                .over_mtu
                .load(std::sync::atomic::Ordering::Relaxed),
            write_errors: self
                .extra
                .write_errors
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Stops forwarding, removes the namespaces and devices (stopping what
    /// still runs inside) and returns the summary.
    pub fn shutdown(mut self) -> Result<LinkSummary, Error> {
        self.stop_forwarding();
        let summary = self.summary();
        self.remove()?;
        Ok(summary)
    }

    fn remove(&mut self) -> Result<(), Error> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        self.stop_forwarding();
        let mut first_error = None;
        for ns in std::mem::take(&mut self.made) {
            if let Err(e) = netns::remove(&ns) {
                first_error.get_or_insert(e);
            }
        }
        let _ = std::fs::remove_file(pid_file(&self.config.name));
        first_error.map_or(Ok(()), Err)
    }
}

impl Link {
    /// Closes the stop pipe and waits for both threads (they let go of the
    /// devices, which then disappear).
    fn stop_forwarding(&mut self) {
        self.stop.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// `a2b` or `b2a`.
pub fn dir_name(dir: Direction) -> &'static str {
    match dir {
        Direction::Up => "a2b",
        Direction::Down => "b2a",
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::warn!(error = %e, "removing the link");
        }
    }
}

/// `ip -n NS link set dev link0 ARGS`.
fn set_device(ns: &str, args: &[&str]) -> Result<(), Error> {
    let mut all = vec!["-n", ns, "link", "set", "dev", DEVICE];
    all.extend_from_slice(args);
    netns::ip(&all)
}

/// A command that runs `program` inside namespace `ns` (`ip netns exec`).
pub fn command_in(ns: &str, program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(program);
    c
}

/// Removes what a run of link `name` left (namespaces, the processes in them,
/// its pid file) and returns the namespaces removed. Refuses while that run
/// is still alive, and refuses to touch a namespace of that name that no run
/// of ours made (no pid file marks it): it is somebody else's.
pub fn cleanup(name: &str) -> Result<Vec<String>, Error> {
    if let Some(pid) = live_owner(name) {
        return Err(Error::Link(format!(
            "link {name} is in use by process {pid} (stop it first)"
        )));
    }
    let ours = pid_file(name).exists();
    let mut removed = Vec::new();
    for side in Side::BOTH {
        let ns = config::namespace(name, side);
        if !ours && netns::exists(&ns) {
            return Err(Error::Link(format!(
                "namespace {ns} exists but no run of impair link made it (no {}): \
                 remove it yourself (ip netns del {ns}) or choose another --name",
                pid_file(name).display()
            )));
        }
    }
    for side in Side::BOTH {
        let ns = config::namespace(name, side);
        if ours && netns::remove(&ns)? {
            removed.push(ns);
        }
    }
    let _ = std::fs::remove_file(pid_file(name));
    Ok(removed)
}

/// Whether namespace `ns` exists.
pub fn namespace_exists(ns: &str) -> bool {
    netns::exists(ns)
}

fn pid_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(RUN_DIR).join(format!("link-{name}.pid"))
}

/// The process that holds link `name`, if it still runs (this one included:
/// a link it holds is removed on shutdown or drop, pid file and all).
fn live_owner(name: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file(name))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    std::path::Path::new(&format!("/proc/{pid}"))
        .exists()
        .then_some(pid)
}

/// Refuses early, and says which, when this process lacks a capability the
/// link needs: CAP_NET_ADMIN for the devices, CAP_SYS_ADMIN for `ip netns add`
/// (it mounts the namespace under /run/netns).
fn check_capabilities() -> Result<(), Error> {
    const NET_ADMIN: u32 = 12;
    const SYS_ADMIN: u32 = 21;
    let Some(effective) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
    else {
        // No way to tell: let the first step that fails say why.
        return Ok(());
    };
    let missing: Vec<&str> = [(NET_ADMIN, "CAP_NET_ADMIN"), (SYS_ADMIN, "CAP_SYS_ADMIN")]
        .into_iter()
        .filter(|(bit, _)| effective & (1 << bit) == 0)
        .map(|(_, name)| name)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::NotPermitted(format!(
        "this process lacks {} (run it as root, e.g. with sudo)",
        missing.join(" and ")
    )))
}

/// Writes our pid file for link `name`, only if there is none: of two runs
/// starting the same link at once, one gets it and the other is refused
/// before it makes (or removes) anything.
fn claim(name: &str) -> Result<(), Error> {
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(RUN_DIR)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(pid_file(name))?;
        std::io::Write::write_all(&mut f, std::process::id().to_string().as_bytes())
    };
    write().map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Error::Link(format!(
            "link {name} is being started by another process ({} appeared)",
            pid_file(name).display()
        )),
        std::io::ErrorKind::PermissionDenied => {
            Error::NotPermitted(format!("cannot write {}: {e}", pid_file(name).display()))
        }
        _ => Error::Link(format!("cannot write {}: {e}", pid_file(name).display())),
    })
}

/// Set to any value, the machine must allow links: [`start_or_skip`] then
/// fails instead of skipping (CI sets it; it runs as root).
pub const REQUIRE_ENV: &str = "PROTOLAB_REQUIRE_NETNS";

/// For tests: starts the link, or returns `None` with a message on stderr when
/// this machine or user may not make namespaces and [`REQUIRE_ENV`] is unset.
/// Any other failure panics.
pub fn start_or_skip(config: LinkConfig) -> Option<Link> {
    match Link::start(config) {
        Ok(link) => Some(link),
        Err(Error::NotPermitted(why)) if std::env::var_os(REQUIRE_ENV).is_none() => {
            eprintln!(
                "skipped: impair link is not permitted here ({why}); set {REQUIRE_ENV}=1 to fail instead"
            );
            None
        }
        Err(e) => panic!("cannot start the link: {e}"),
    }
}
