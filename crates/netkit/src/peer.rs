//! Another program speaking a protocol, run beside ours: a reference peer
//! written from a seed's description (the tests' Python servers), started as
//! a child process that prints `listening on ADDR` first, and killed when
//! dropped, so a failing test never leaves it running.

use std::io::{self, BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running peer program.
#[derive(Debug)]
pub struct Peer {
    child: Child,
    /// The address it printed (`host:port`).
    pub addr: String,
}

impl Peer {
    /// Starts `cmd` with its standard output piped and reads its first line,
    /// `listening on ADDR`. An error if it cannot start (no such program) or
    /// says something else first.
    pub fn spawn(cmd: &mut Command) -> io::Result<Peer> {
        let mut child = cmd.stdout(Stdio::piped()).spawn()?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!(
                "the peer said {line:?} instead of its address"
            )));
        };
        let addr = addr.to_string();
        Ok(Peer { child, addr })
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
