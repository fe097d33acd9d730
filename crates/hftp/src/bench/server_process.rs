//! The server under test as its own process: started from a command, its
//! address read from its first line (`listening on ADDR`), its peak memory read
//! from /proc, stopped with SIGTERM (its graceful shutdown) when done.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use crate::error::Error;

/// A running server process.
#[derive(Debug)]
pub(super) struct ServerProcess {
    child: Child,
    pub(super) addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `cmd` and waits for its address.
    pub(super) fn start(mut cmd: Command) -> Result<ServerProcess, Error> {
        let mut child = cmd.stdout(Stdio::piped()).spawn().map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("cannot start the server process: {e}"),
            ))
        })?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            std::io::BufReader::new(out).read_line(&mut line)?;
        }
        if let Some(addr) = listening_address(&line) {
            return Ok(ServerProcess { child, addr });
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(Error::Protocol(format!(
            "the server process did not print its address (first line: {:?})",
            line.trim_end()
        )))
    }

    /// Its peak resident memory so far (`VmHWM`), in bytes, where /proc says.
    pub(super) fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        vm_hwm(&status)
    }

    /// SIGTERM, then waits for it to end.
    pub(super) fn stop(mut self) {
        let pid = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        let termed = pid.is_some_and(|pid| {
            rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_ok()
        });
        if !termed {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `ADDR` of a line `... listening on ADDR ...`.
fn listening_address(line: &str) -> Option<SocketAddr> {
    line.split("listening on ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The `VmHWM:` line of /proc/PID/status, in bytes.
fn vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_read_from_the_listening_line() {
        assert_eq!(
            listening_address("hftp listening on 127.0.0.1:4321 (serving /tmp/x)\n"),
            Some("127.0.0.1:4321".parse().unwrap())
        );
        assert_eq!(listening_address("starting\n"), None);
    }

    #[test]
    fn a_server_that_prints_no_address_or_cannot_start_is_one_clear_error() {
        let silent = ServerProcess::start(Command::new("true")).unwrap_err();
        assert!(
            silent.to_string().contains("did not print its address"),
            "{silent}"
        );
        let missing =
            ServerProcess::start(Command::new("/nonexistent/protolab-server")).unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("cannot start the server process"),
            "{missing}"
        );
    }

    #[test]
    fn peak_memory_is_read_in_bytes() {
        assert_eq!(
            vm_hwm("Name:\tx\nVmHWM:\t    2048 kB\nVmRSS:\t 1 kB\n"),
            Some(2048 * 1024)
        );
        assert_eq!(vm_hwm("Name:\tx\n"), None);
    }
}
