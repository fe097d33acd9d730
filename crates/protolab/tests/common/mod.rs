//! Running the `protolab` binary from tests, bounded in time.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Every wait on a process is bounded by this.
pub const BOUND: Duration = Duration::from_secs(60);

/// The binary, with no log-level variables inherited.
pub fn protolab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_protolab"));
    c.env_remove("RUST_LOG")
        .env_remove("LOGGING_LEVEL")
        .env_remove("CLI_LOG_LEVEL");
    c
}

/// Waits for the process to exit, killing it and failing after [`BOUND`].
pub fn wait_bounded(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("protolab did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends a signal (`-TERM`, `-KILL`) to the process.
pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(sig)
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Spawns a server command with stdout piped and reads the address from its
/// first line (`... listening on ADDR ...`).
pub fn spawn_listening(cmd: &mut Command) -> (Child, BufReader<ChildStdout>, SocketAddr) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no bound address in {line:?}"))
        .parse()
        .unwrap();
    (child, out, addr)
}

/// Everything the process writes to its piped stdout, read to its end.
pub fn stdout_text(child: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut text).unwrap();
    }
    text
}

/// Everything the (exited) process wrote to its piped stderr.
pub fn stderr_text(child: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut text).unwrap();
    }
    text
}
