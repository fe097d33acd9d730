//! A throwaway PostgreSQL cluster for tests, benchmarks and trying the shared
//! store (`protolab lottery pg-sandbox`): `initdb` in a temporary directory,
//! the server on its own port of 127.0.0.1 (and its Unix socket in that
//! directory), trust authentication for the user `lottery`.
//!
//! PostgreSQL refuses to run as root, so as root the cluster belongs to
//! `nobody` (its commands run through `runuser`). A guardian process holds
//! the other end of a pipe from this process: when this process ends, however
//! it ends, the guardian stops the cluster and removes its directory.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Error;
use crate::store::PgTarget;

/// Set (to anything) where the PostgreSQL tests must run: without a usable
/// PostgreSQL they fail instead of skipping (CI sets it).
pub const REQUIRE_ENV: &str = "PROTOLAB_REQUIRE_PG";

/// Where the PostgreSQL programs are, if not found by themselves.
pub const BIN_ENV: &str = "PROTOLAB_PG_BIN";

/// The database user of a sandbox.
pub const USER: &str = "lottery";

/// The unprivileged account a root process runs the cluster as.
const RUN_AS: &str = "nobody";

fn fail(what: impl Into<String>) -> Error {
    Error::Sandbox(what.into())
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: [`BIN_ENV`], the
/// newest `/usr/lib/postgresql/*/bin`, or `pg_config --bindir`.
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_ENV) {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    dir.join("initdb").exists().then_some(dir)
}

/// A running throwaway cluster; stopped and removed when dropped.
#[derive(Debug)]
pub struct Sandbox {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_other: bool,
    guardian: Option<(Child, ChildStdin)>,
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn id_of(flag: &str) -> Result<u32, Error> {
    let out = Command::new("id")
        .args([flag, RUN_AS])
        .output()
        .map_err(|e| fail(format!("cannot run id: {e}")))?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| {
            fail(format!(
                "no user {RUN_AS} to run PostgreSQL as (it refuses root)"
            ))
        })
}

fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Sandbox {
    /// Makes and starts a cluster on a free port.
    pub fn start() -> Result<Sandbox, Error> {
        Self::start_on(0)
    }

    /// Makes and starts a cluster on `port` of 127.0.0.1 (0: a free one).
    pub fn start_on(port: u16) -> Result<Sandbox, Error> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let bin = bin_dir().ok_or_else(|| {
            fail(format!(
                "no PostgreSQL programs found (install postgresql, or set {BIN_ENV} to the directory holding initdb)"
            ))
        })?;
        let dir = std::env::temp_dir().join(format!(
            "protolab-pg-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let as_other = is_root();
        if as_other {
            std::os::unix::fs::chown(&dir, Some(id_of("-u")?), Some(id_of("-g")?))?;
        }
        let mut sandbox = Sandbox {
            dir,
            bin,
            port: 0,
            as_other,
            guardian: None,
        };
        sandbox.guard()?;
        sandbox.run(
            "initdb",
            &[
                "-D",
                &sandbox.data().display().to_string(),
                "-U",
                USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ],
        )?;
        let mut last = None;
        for _ in 0..5 {
            sandbox.port = if port == 0 { free_port()? } else { port };
            match sandbox.start_server() {
                Ok(()) => return Ok(sandbox),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| fail("the server did not start")))
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_other {
            let mut c = Command::new("runuser");
            c.args(["-u", RUN_AS, "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), Error> {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| fail(format!("cannot run {program}: {e}")))?;
        if out.status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        Err(fail(format!(
            "{program} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            log.lines().rev().take(5).collect::<Vec<_>>().join(" / ")
        )))
    }

    /// Starts a guardian that stops the cluster and removes the directory
    /// once this process's end of its standard input closes.
    fn guard(&mut self) -> Result<(), Error> {
        let stop = format!(
            "{} {} stop -D '{}' -m immediate",
            if self.as_other {
                format!("runuser -u {RUN_AS} --")
            } else {
                String::new()
            },
            self.bin.join("pg_ctl").display(),
            self.data().display()
        );
        let script = format!(
            "cat >/dev/null; {stop} >/dev/null 2>&1; rm -rf '{}'",
            self.dir.display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail(format!("cannot start the guardian: {e}")))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| fail("the guardian has no stdin"))?;
        self.guardian = Some((child, stdin));
        Ok(())
    }

    /// Starts (again) the server of the cluster.
    pub fn start_server(&self) -> Result<(), Error> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k '{}' -c max_connections=200",
            self.port,
            self.dir.display()
        );
        self.run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-t",
                "30",
                "-D",
                &self.data().display().to_string(),
                "-l",
                &self.dir.join("log").display().to_string(),
                "-o",
                &options,
            ],
        )
    }

    /// Stops the server (fast shutdown: connections are cut), keeping the
    /// cluster, to see what clients do while the database is away.
    pub fn stop_server(&self) -> Result<(), Error> {
        self.run(
            "pg_ctl",
            &[
                "stop",
                "-w",
                "-m",
                "fast",
                "-D",
                &self.data().display().to_string(),
            ],
        )
    }

    /// Freezes the server (SIGSTOP to the postmaster and every process it
    /// started): connections stay open and nothing answers, as with a
    /// database that hangs. [`Sandbox::resume_server`] thaws it.
    pub fn pause_server(&self) -> Result<(), Error> {
        self.signal_server(rustix::process::Signal::STOP)
    }

    /// Thaws a server [`Sandbox::pause_server`] froze.
    pub fn resume_server(&self) -> Result<(), Error> {
        self.signal_server(rustix::process::Signal::CONT)
    }

    /// Sends `signal` to the postmaster (its pid is the first line of
    /// `postmaster.pid`) and to its children.
    fn signal_server(&self, signal: rustix::process::Signal) -> Result<(), Error> {
        let fail = |why: String| Error::Postgres(format!("cannot signal the test cluster: {why}"));
        let pid_file = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .map_err(|e| fail(e.to_string()))?;
        let postmaster: i32 = pid_file
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| fail("no pid in postmaster.pid".into()))?;
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").map_err(|e| fail(e.to_string()))? {
            let Ok(entry) = entry else { continue };
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            // /proc/PID/stat: "pid (comm) state ppid ...": the fields after
            // the last ')' are safe to split on spaces.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if ppid == Some(postmaster) {
                pids.push(pid);
            }
        }
        for pid in pids {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                rustix::process::kill_process(pid, signal).map_err(|e| fail(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of the cluster (its data, log and socket).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name` (lowercase letters, digits, `_`) and returns
    /// its target.
    pub async fn create_database(&self, name: &str) -> Result<PgTarget, Error> {
        let admin: PgTarget = self.url("postgres").parse()?;
        admin.create_database(name).await
    }

    /// A fresh database named after `prefix` and a process-wide counter.
    pub async fn fresh_database(&self, prefix: &str) -> Result<PgTarget, Error> {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        self.create_database(&format!("{prefix}_{n}")).await
    }

    /// One cluster for the whole test process, started on first use; `None`
    /// (with the reason printed) where PostgreSQL cannot run, unless
    /// [`REQUIRE_ENV`] is set, where that is a failure.
    ///
    /// # Panics
    /// When [`REQUIRE_ENV`] is set and no cluster can start.
    pub fn for_tests() -> Option<&'static Sandbox> {
        static SHARED: OnceLock<Result<Sandbox, String>> = OnceLock::new();
        match SHARED.get_or_init(|| Sandbox::start().map_err(|e| e.to_string())) {
            Ok(s) => Some(s),
            Err(e) => {
                assert!(
                    std::env::var_os(REQUIRE_ENV).is_none(),
                    "{REQUIRE_ENV} is set but PostgreSQL cannot run: {e}"
                );
                eprintln!("skipped: PostgreSQL cannot run here ({e})");
                None
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some((mut child, mut stdin)) = self.guardian.take() {
            let _ = stdin.flush();
            drop(stdin);
            let _ = child.wait();
        }
    }
}
