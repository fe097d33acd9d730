//! Another program of ours as a server under test or in a scenario: started
//! from a command, its address read from the first line it prints (`...
//! listening on ADDR ...`, which every protolab server prints first), its
//! peak memory read from /proc, stopped with SIGTERM (its graceful shutdown)
//! when done or dropped, or killed outright when a scenario wants a crash.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};

use crate::Error;

/// A running server process.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The rest of its standard output, kept open (a server writing to a
    /// closed pipe would fail).
    _stdout: Option<std::io::BufReader<ChildStdout>>,
}

impl ServerProcess {
    /// Starts `cmd` (its standard output piped) and waits for its address.
    pub fn start(mut cmd: Command) -> Result<ServerProcess, Error> {
        let mut child = cmd.stdout(Stdio::piped()).spawn().map_err(|e| {
            Error::Process(format!(
                "cannot start the server process {}: {e}",
                cmd.get_program().display()
            ))
        })?;
        let mut line = String::new();
        let mut stdout = child.stdout.take().map(std::io::BufReader::new);
        if let Some(out) = stdout.as_mut() {
            out.read_line(&mut line)?;
        }
        if let Some(addr) = listening_address(&line) {
            return Ok(ServerProcess {
                child,
                addr,
                _stdout: stdout,
            });
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(Error::Process(format!(
            "the server process did not print its address (first line: {:?})",
            line.trim_end()
        )))
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its peak resident memory so far (`VmHWM`), in bytes, where /proc says.
    pub fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        vm_hwm(&status)
    }

    /// SIGKILL, then waits for it: a crash, for scenarios that need one.
    pub fn kill(&mut self) -> Result<(), Error> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM (unless it has ended), then waits for it to end.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
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

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// `ADDR` of a line `... listening on ADDR ...`.
pub fn listening_address(line: &str) -> Option<SocketAddr> {
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
            listening_address("hftp server: listening on 127.0.0.1:4321 serving /tmp/x\n"),
            Some("127.0.0.1:4321".parse().unwrap())
        );
        assert_eq!(listening_address("starting\n"), None);
    }

    #[test]
    fn peak_memory_is_read_in_bytes() {
        assert_eq!(
            vm_hwm("Name:\tx\nVmHWM:\t    2048 kB\nVmRSS:\t 1 kB\n"),
            Some(2048 * 1024)
        );
        assert_eq!(vm_hwm("Name:\tx\n"), None);
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
    fn a_process_that_prints_an_address_is_stopped_by_sigterm() {
        // A stand-in server: prints the line, then waits to be stopped.
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo 'x: listening on 127.0.0.1:9 (test)'; exec sleep 60",
        ]);
        let server = ServerProcess::start(cmd).unwrap();
        assert_eq!(server.addr, "127.0.0.1:9".parse().unwrap());
        let started = std::time::Instant::now();
        server.stop();
        // `sleep 60` ends this early only by the signal.
        assert!(started.elapsed() < std::time::Duration::from_secs(50));
    }
}
