//! Network namespaces and the device in each, made and removed with iproute2's
//! `ip` (the tool every reader of the docs already knows, so each step can be
//! repeated by hand), and entered by a thread with `setns(2)`.
//!
//! A namespace made by `ip netns add` is a bind mount under `/run/netns` and
//! outlives the process that made it; [`remove`] is what a crashed run's
//! successor (or `--cleanup`) calls. Processes still running inside are stopped
//! first, so nothing keeps the namespace alive unseen.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use rustix::thread::LinkNameSpaceType;

use crate::Error;

/// Where `ip netns` keeps its namespaces.
const NETNS_DIR: &str = "/run/netns";

/// The file of namespace `name`.
pub(crate) fn path(name: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(name)
}

/// Whether namespace `name` exists.
pub(crate) fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Runs `ip ARGS`; its error output becomes the error.
pub(crate) fn ip(args: &[&str]) -> Result<(), Error> {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Link("impair link needs iproute2's `ip` command, which is not installed".into())
        } else {
            Error::Link(format!("cannot run `ip {}`: {e}", args.join(" ")))
        }
    })?;
    if out.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if why.contains("Operation not permitted") || why.contains("Permission denied") {
        return Err(Error::NotPermitted(format!(
            "`ip {}` was refused: {why}",
            args.join(" ")
        )));
    }
    Err(Error::Link(format!(
        "`ip {}` failed: {why}",
        args.join(" ")
    )))
}

/// Makes namespace `name` (it must not exist).
pub(crate) fn add(name: &str) -> Result<(), Error> {
    ip(&["netns", "add", name])
}

/// Stops every process in namespace `name` and removes it. Returns whether
/// there was one.
pub(crate) fn remove(name: &str) -> Result<bool, Error> {
    if !exists(name) {
        return Ok(false);
    }
    stop_processes(name);
    ip(&["netns", "del", name])?;
    Ok(true)
}

/// SIGTERM to every process in the namespace, SIGKILL to those left after 2 s.
fn stop_processes(name: &str) {
    let pids = || -> Vec<Pid> {
        Command::new("ip")
            .args(["netns", "pids", name])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                    .filter_map(Pid::from_raw)
                    .collect()
            })
            .unwrap_or_default()
    };
    let first = pids();
    if first.is_empty() {
        return;
    }
    for pid in &first {
        let _ = rustix::process::kill_process(*pid, Signal::TERM);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if pids().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in pids() {
        let _ = rustix::process::kill_process(pid, Signal::KILL);
    }
}

/// Moves the calling thread into namespace `name`: sockets it makes from then
/// on belong to that namespace, wherever they are used later.
pub(crate) fn enter(name: &str) -> Result<(), Error> {
    let file = File::open(path(name))
        .map_err(|e| Error::Link(format!("cannot open namespace {name}: {e}")))?;
    rustix::thread::move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network))
        .map_err(|e| Error::Link(format!("cannot enter namespace {name}: {e}")))
}

/// Runs `f` on a thread inside namespace `ns` and returns its result.
pub(crate) fn run_in<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T, Error> {
    std::thread::scope(|s| {
        let h = s.spawn(|| -> Result<T, Error> {
            enter(ns)?;
            Ok(f())
        });
        match h.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Two namespaces joined by a veth pair: the kernel's own path, the
/// baseline a link is measured against. Removed on drop.
#[derive(Debug)]
pub struct VethPair {
    /// The namespaces, a then b.
    pub ns: [String; 2],
    /// Their addresses (10.78.0.1 and .2).
    pub addrs: [std::net::IpAddr; 2],
}

impl VethPair {
    /// Makes namespaces `NAME-va` and `NAME-vb` joined by a veth pair, with
    /// the kernel's default offloads.
    pub fn new(name: &str, mtu: u32) -> Result<Self, Error> {
        let ns = [format!("{name}-va"), format!("{name}-vb")];
        for n in &ns {
            remove(n)?;
        }
        let pair = Self {
            addrs: [[10, 78, 0, 1].into(), [10, 78, 0, 2].into()],
            ns,
        };
        for n in &pair.ns {
            add(n)?;
        }
        let mtu = mtu.to_string();
        ip(&[
            "link",
            "add",
            "plv0",
            "netns",
            &pair.ns[0],
            "mtu",
            &mtu,
            "type",
            "veth",
            "peer",
            "name",
            "plv1",
            "netns",
            &pair.ns[1],
            "mtu",
            &mtu,
        ])?;
        for (i, n) in pair.ns.iter().enumerate() {
            let dev = format!("plv{i}");
            let addr = format!("{}/24", pair.addrs[i]);
            ip(&["-n", n, "addr", "add", &addr, "dev", &dev])?;
            ip(&["-n", n, "link", "set", "dev", &dev, "up"])?;
            ip(&["-n", n, "link", "set", "dev", "lo", "up"])?;
        }
        Ok(pair)
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        for n in &self.ns {
            let _ = remove(n);
        }
    }
}
