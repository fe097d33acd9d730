//! The implementation under test, as a program: a shell command with
//! placeholders (`{port}`, `{host}`, `{file}`), started and stopped by the
//! checker, its standard output and error kept in files, every wait bounded.
//!
//! It runs in its own process group with `PYTHONUNBUFFERED=1` (a Python
//! program's output reaches the file as it prints), and is stopped as a
//! user would: an interrupt to the whole group first (Python flushes and runs
//! its `finally` blocks), a kill a moment later. The interrupt is put back to
//! its default first (`env --default-signal=INT`), in case the checker itself
//! was started with it ignored (a background job of a script).

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A started program.
#[derive(Debug)]
pub struct Running {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// How a program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code (`None`: killed by a signal).
    Code(Option<i32>),
}

/// `template` with its placeholders filled in.
pub fn fill(template: &str, host: &str, port: u16, file: &Path) -> String {
    template
        .replace("{host}", host)
        .replace("{port}", &port.to_string())
        .replace("{file}", &shell_quote(&file.display().to_string()))
}

/// Whether `env --default-signal` is here (GNU coreutils 8.31 and later).
/// A checker started in the background by a shell without job control
/// inherits an ignored SIGINT, and so would the program: its shell could not
/// even trap the interrupt `stop` sends. `env` puts the default back first.
fn default_signal_works() -> bool {
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORKS.get_or_init(|| {
        Command::new("env")
            .args(["--default-signal=INT", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Running {
    /// Starts `command` with `sh -c`, its output to files in `dir`.
    pub fn start(command: &str, dir: &Path, name: &str) -> std::io::Result<Running> {
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        let mut cmd = if default_signal_works() {
            let mut c = Command::new("env");
            c.args(["--default-signal=INT", "sh"]);
            c
        } else {
            Command::new("sh")
        };
        let child = cmd
            .arg("-c")
            .arg(command)
            .env("PYTHONUNBUFFERED", "1")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout)?)
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()?;
        Ok(Running {
            child,
            stdout,
            stderr,
        })
    }

    /// Whether it has ended (and how).
    pub fn exited(&mut self) -> Option<Exit> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(Exit::Code(status.code())),
            Ok(None) => None,
            Err(_) => Some(Exit::Code(None)),
        }
    }

    /// Stops the program and everything it started: an interrupt to its
    /// process group, then, if it is still there after `grace`, a kill.
    pub fn stop(&mut self, grace: Duration) {
        if self.exited().is_some() {
            self.signal_group("KILL");
            return;
        }
        self.signal_group("INT");
        if self.wait_for(grace).is_none() {
            self.kill();
        }
    }

    /// Kills the program and its process group at once.
    pub fn kill(&mut self) {
        self.signal_group("KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits at most `bound` for the program to end (None: still running).
    pub fn wait_for(&mut self, bound: Duration) -> Option<Exit> {
        let start = Instant::now();
        loop {
            if let Some(exit) = self.exited() {
                return Some(exit);
            }
            if start.elapsed() >= bound {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The group is the shell's pid (`process_group(0)`): `kill -- -pid`.
    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args(["-s", signal, "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// What it wrote to standard output (the first [`OUTPUT_LIMIT`] bytes).
    pub fn stdout(&self) -> Vec<u8> {
        read_head(&self.stdout)
    }

    /// What it wrote to standard error (the first [`OUTPUT_LIMIT`] bytes).
    pub fn stderr(&self) -> Vec<u8> {
        read_head(&self.stderr)
    }

    /// The last line it wrote to standard error, for a report.
    pub fn stderr_tail(&self) -> String {
        let text = String::from_utf8_lossy(&read_tail(&self.stderr)).into_owned();
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .chars()
            .take(160)
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Output read back from a program, at most: one that prints without end
/// costs the checker no more memory than this.
pub const OUTPUT_LIMIT: u64 = 16 << 20;

fn read_head(path: &Path) -> Vec<u8> {
    use std::io::Read as _;
    let mut out = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(OUTPUT_LIMIT).read_to_end(&mut out);
    }
    out
}

/// The last 4 KiB of a file (for its last line).
fn read_tail(path: &Path) -> Vec<u8> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut out = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map_or(0, |m| m.len());
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096)));
        let _ = f.take(4096).read_to_end(&mut out);
    }
    out
}

/// A UDP port free now on 127.0.0.1 (for a server that takes its port as an
/// argument), chosen at random below the kernel's ephemeral range: a port
/// the kernel hands out for `bind(0)` could be given to another socket (the
/// per-client socket of any Stop & Wait server, for one) between our probe
/// and the program's own bind; one below the range never is.
pub fn free_port() -> std::io::Result<u16> {
    const LOWEST: u16 = 10_000;
    let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if first_ephemeral > LOWEST + 1_000 {
        let mut rng = rand::rng();
        for _ in 0..64 {
            let port = rand::Rng::random_range(&mut rng, LOWEST..first_ephemeral);
            if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
    Ok(s.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_below_the_ephemeral_range_and_bindable() {
        let first = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok());
        for _ in 0..20 {
            let port = free_port().unwrap();
            if let Some(first) = first.filter(|f| *f > 11_000) {
                assert!((10_000..first).contains(&port), "{port}");
            }
            std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
        }
    }

    #[test]
    fn placeholders_are_filled_and_files_quoted() {
        let cmd = fill(
            "python3 cliente.py {host} {port} < {file}",
            "127.0.0.1",
            8000,
            Path::new("/tmp/a b'c.txt"),
        );
        assert_eq!(
            cmd,
            r"python3 cliente.py 127.0.0.1 8000 < '/tmp/a b'\''c.txt'"
        );
    }

    #[test]
    fn output_is_kept_and_a_program_that_hangs_is_killed_at_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Running::start("echo out; echo err >&2; exit 3", dir.path(), "p").unwrap();
        assert_eq!(
            p.wait_for(Duration::from_secs(10)),
            Some(Exit::Code(Some(3)))
        );
        assert_eq!(p.stdout(), b"out\n");
        assert_eq!(p.stderr_tail(), "err");
        let mut h = Running::start("exec sleep 30", dir.path(), "h").unwrap();
        assert_eq!(h.wait_for(Duration::from_millis(100)), None);
        h.kill();
        assert!(h.exited().is_some());
    }

    #[test]
    fn output_read_back_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        let mut text = vec![b'x'; (OUTPUT_LIMIT + 10) as usize];
        text.extend_from_slice(b"\nthe last line\n");
        std::fs::write(&big, &text).unwrap();
        assert_eq!(read_head(&big).len() as u64, OUTPUT_LIMIT);
        let tail = read_tail(&big);
        assert!(tail.len() <= 4096 && tail.ends_with(b"the last line\n"));
    }

    #[test]
    fn stop_interrupts_the_whole_group_so_output_is_flushed() {
        // The shell's child ignores nothing: the interrupt reaches it through
        // the group, and its trap writes before it ends.
        let dir = tempfile::tempdir().unwrap();
        let mut p = Running::start(
            "trap 'echo interrupted; exit 0' INT; echo started; while :; do sleep 0.01; done",
            dir.path(),
            "p",
        )
        .unwrap();
        let start = Instant::now();
        while p.stdout().is_empty() {
            assert!(start.elapsed() < Duration::from_secs(10), "never started");
            std::thread::sleep(Duration::from_millis(5));
        }
        p.stop(Duration::from_secs(5));
        assert_eq!(p.stdout(), b"started\ninterrupted\n");
        assert!(p.exited().is_some());
    }
}
