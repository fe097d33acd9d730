//! One scenario against one program: start their program, put `impair udp`
//! (with `mirror_ports`: their server's new socket is seen at a port of its
//! own, so its listening port stays reachable) between it and our socket,
//! run the transfer, and grade what each side saw. Every wait is bounded: a program
//! that hangs is stopped at the scenario's bound and fails it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use impair::{PerDir, UdpProxy, UdpProxyConfig, UdpRules};
use netkit::units::Probability;

use super::program::{Exit, Running, fill, free_port};
use super::scenarios::{Extra, Faults, Lost, Role, Scenario, drops};
use super::{CheckOptions, Verdict};
use crate::config::Config;
use crate::conn::{Ending, Stats};
use crate::dialect::{Learned, Reading};
use crate::link::Options;
use crate::socket::RdtSocket;
use crate::trace::{Trace, TraceKind};
use crate::wire::Format;

/// What one run left behind.
#[derive(Debug)]
pub struct Run {
    pub verdict: Verdict,
    /// The reading our socket spoke at the end, and what it learned.
    pub dialect: Option<(Reading, Vec<Learned>)>,
    pub trace: Trace,
    /// Their program, ended (its output files are still there).
    pub program: Option<Running>,
}

/// What our side saw.
#[derive(Debug, Default)]
struct Ours {
    failed: Option<String>,
    ending: Option<Ending>,
    stats: Option<Stats>,
    dialect: Option<(Reading, Vec<Learned>)>,
    /// Our server's: everything received, and what the first read returned.
    received: Vec<u8>,
    first_read: usize,
}

/// The impair proxy of a scenario, on the checker's runtime.
struct Proxy<'a> {
    rt: &'a tokio::runtime::Runtime,
    proxy: Option<UdpProxy>,
}

impl Proxy<'_> {
    fn start(
        rt: &tokio::runtime::Runtime,
        faults: Faults,
        upstream: SocketAddr,
        seed: u64,
    ) -> Result<Proxy<'_>, String> {
        let mut cfg = UdpProxyConfig::new(([127, 0, 0, 1], 0).into(), upstream);
        cfg.seed = seed;
        // Their server's new socket gets a proxy port of its own: the
        // listening port stays reachable, as without the proxy.
        cfg.mirror_ports = true;
        if let Faults::Random {
            loss,
            duplicate,
            reorder,
        } = faults
        {
            let p = |v: f64| Probability::new(v).unwrap_or(Probability::ZERO);
            let rules = UdpRules {
                loss: p(loss),
                duplicate: p(duplicate),
                reorder: p(reorder),
                ..UdpRules::default()
            };
            cfg.rules = PerDir::both(rules);
        }
        let proxy = rt
            .block_on(UdpProxy::start(cfg))
            .map_err(|e| format!("the impair proxy would not start: {e}"))?;
        Ok(Proxy {
            rt,
            proxy: Some(proxy),
        })
    }

    fn addr(&self) -> Option<SocketAddr> {
        self.proxy.as_ref().map(UdpProxy::local_addr)
    }
}

impl Drop for Proxy<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.proxy.take() {
            self.rt.block_on(p.shutdown());
        }
    }
}

/// Our socket's settings: short timeouts of our own, but patience for theirs
/// (a student's timeout may be a second or more).
fn our_options(opts: &CheckOptions, s: &Scenario, role: Role, trace: &Trace) -> Options {
    let tries = (opts.patience.as_millis() / opts.timeout.as_millis().max(1)).max(3) as u32;
    let mut o = Options::new(Config {
        timeout: opts.timeout,
        max_retries: tries,
        syn_retries: tries,
        idle_limit: opts.wait.min(Duration::from_secs(15)).max(opts.patience),
        ..Config::new(Format::Course)
    });
    if let Faults::Lose(lost) = s.faults {
        o.drop_kinds = drops(lost, role).unwrap_or_default();
    }
    o.trace = Some(trace.clone());
    // Our initial number follows the seed too: a rerun is the same run.
    o.seed = Some(s.id.bytes().fold(opts.seed, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    }));
    o
}

/// One scenario's run: what it needs, in one place.
struct Scene<'a> {
    opts: &'a CheckOptions,
    rt: &'a tokio::runtime::Runtime,
    s: &'a Scenario,
    command: &'a str,
    dir: &'a Path,
    /// Names their program's output files.
    name: String,
    file: PathBuf,
    data: Vec<u8>,
    trace: Trace,
}

/// Runs `s` against their `role` program `command`; `dir` holds files.
pub fn run(
    opts: &CheckOptions,
    rt: &tokio::runtime::Runtime,
    s: &Scenario,
    role: Role,
    command: &str,
    dir: &Path,
) -> Run {
    let scene = Scene {
        opts,
        rt,
        s,
        command,
        dir,
        name: format!("{}-{}", role.name(), s.id),
        file: dir.join(format!("{}.txt", s.id)),
        data: s.fixture.bytes(),
        trace: Trace::new(),
    };
    let (verdict, ours, program) = match std::fs::write(&scene.file, &scene.data) {
        Err(e) => (
            Verdict::Fail(format!("cannot write {}: {e}", scene.file.display())),
            None,
            None,
        ),
        Ok(()) => match role {
            Role::Server => their_server(&scene),
            Role::Client => their_client(&scene),
        },
    };
    Run {
        verdict,
        dialect: ours.and_then(|o| o.dialect),
        trace: scene.trace,
        program,
    }
}

type Graded = (Verdict, Option<Ours>, Option<Running>);

fn their_server(scene: &Scene) -> Graded {
    let deadline = Instant::now() + scene.opts.wait;
    let port = match free_port() {
        Ok(p) => p,
        Err(e) => return (Verdict::Fail(format!("no free port: {e}")), None, None),
    };
    let mut program = match Running::start(
        &fill(scene.command, "127.0.0.1", port, &scene.file),
        scene.dir,
        &scene.name,
    ) {
        Ok(p) => p,
        Err(e) => return (Verdict::Fail(format!("cannot start it: {e}")), None, None),
    };
    if let Err(why) = wait_listening(&mut program, port, deadline) {
        return (Verdict::Fail(why), None, Some(program));
    }
    let listening: SocketAddr = ([127, 0, 0, 1], port).into();
    let proxy = match Proxy::start(scene.rt, scene.s.faults, listening, scene.opts.seed) {
        Ok(p) => p,
        Err(why) => return (Verdict::Fail(why), None, Some(program)),
    };
    let target = proxy.addr().unwrap_or(listening);
    let o = our_options(scene.opts, scene.s, Role::Server, &scene.trace);
    let message = scene.data.clone();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut sock = RdtSocket::with_options(o);
        let mut ours = Ours::default();
        let done = sock
            .connect(target)
            .and_then(|()| sock.send(&message))
            .and_then(|()| sock.close());
        match done {
            Ok(ending) => ours.ending = Some(ending),
            Err(e) => ours.failed = Some(format!("our client: {e}")),
        }
        ours.stats = sock.stats();
        ours.dialect = sock.dialect();
        let _ = tx.send(ours);
    });
    let Some(ours) = wait_ours(&rx, &mut program, deadline) else {
        let verdict = Verdict::Fail(unfinished(&mut program, scene.opts, &scene.trace));
        drop(proxy);
        return (verdict, None, Some(program));
    };
    drop(proxy);
    let must_end = scene.s.faults == Faults::Lose(Lost::FinalAck);
    let ended = wait_exit(&mut program, scene.opts.exit_wait, deadline);
    let verdict = grade_their_server(scene, &ours, &mut program, ended, must_end);
    (verdict, Some(ours), Some(program))
}

fn grade_their_server(
    scene: &Scene,
    ours: &Ours,
    program: &mut Running,
    ended: Option<Exit>,
    must_end: bool,
) -> Verdict {
    if ended.is_none() {
        if must_end {
            program.stop(Duration::from_secs(1));
            return Verdict::Fail(format!(
                "its recv_close never ended: every final ACK was lost, and it was still \
                 running {:?} later (step 8: give up after 3 timeouts)",
                scene.opts.exit_wait
            ));
        }
        // A server that keeps serving is stopped; its output so far is graded.
        program.stop(Duration::from_secs(1));
    }
    // Its last words matter if it ended by itself, not when we stopped it.
    let said = |why: &str, program: &Running| match ended {
        Some(_) => with_stderr(why, program),
        None => why.to_string(),
    };
    if let Some(why) = &ours.failed {
        return Verdict::Fail(said(why, program));
    }
    if ours.ending == Some(Ending::FinUnanswered) {
        return Verdict::Fail(said(
            "our FIN was never answered: our close gave up after 3 timeouts (step 6)",
            program,
        ));
    }
    if let Some(Exit::Code(Some(code))) = ended
        && code != 0
    {
        return Verdict::Fail(with_stderr(&format!("it exited with code {code}"), program));
    }
    let out = program.stdout();
    if memchr::memmem::find(&out, &scene.data).is_none() {
        return Verdict::Fail(format!(
            "the {} bytes sent are not in its standard output ({} bytes{})",
            scene.data.len(),
            out.len(),
            first_difference(&out, &scene.data)
        ));
    }
    if let Some(why) = loss_missing(scene.s, &scene.trace) {
        return Verdict::Fail(why);
    }
    Verdict::Pass(summary(scene.data.len(), ours))
}

fn their_client(scene: &Scene) -> Graded {
    let deadline = Instant::now() + scene.opts.wait;
    let mut server =
        RdtSocket::with_options(our_options(scene.opts, scene.s, Role::Client, &scene.trace));
    let listening = match server
        .bind("127.0.0.1:0")
        .and_then(|()| server.local_addr())
    {
        Ok(a) => a,
        Err(e) => return (Verdict::Fail(format!("our server: {e}")), None, None),
    };
    let proxy = match Proxy::start(scene.rt, scene.s.faults, listening, scene.opts.seed) {
        Ok(p) => p,
        Err(why) => return (Verdict::Fail(why), None, None),
    };
    let target = proxy.addr().unwrap_or(listening);
    let (tx, rx) = mpsc::channel();
    let wait = scene.opts.wait;
    let limit = scene.data.len() * 4 + 4096;
    let want = scene.data.len();
    thread::spawn(move || {
        let mut ours = Ours::default();
        if let Err(e) = serve(&mut server, wait, want, limit, &mut ours) {
            ours.failed = Some(format!("our server: {e}"));
        }
        let _ = tx.send(ours);
    });
    let cmd = fill(scene.command, "127.0.0.1", target.port(), &scene.file);
    let mut program = match Running::start(&cmd, scene.dir, &scene.name) {
        Ok(p) => p,
        Err(e) => return (Verdict::Fail(format!("cannot start it: {e}")), None, None),
    };
    let Some(ours) = wait_ours(&rx, &mut program, deadline) else {
        let verdict = Verdict::Fail(unfinished(&mut program, scene.opts, &scene.trace));
        drop(proxy);
        return (verdict, None, Some(program));
    };
    drop(proxy);
    let ended = wait_exit(&mut program, scene.opts.exit_wait, deadline);
    let verdict = grade_their_client(scene, &ours, &mut program, ended);
    (verdict, Some(ours), Some(program))
}

/// Our server's side: one connection, every message, the close.
fn serve(
    server: &mut RdtSocket,
    wait: Duration,
    want: usize,
    limit: usize,
    ours: &mut Ours,
) -> Result<(), String> {
    let Some((mut conn, _)) = server.accept_within(wait).map_err(|e| e.to_string())? else {
        return Err(format!("no connection completed within {wait:?}"));
    };
    let result = (|| {
        let mut first = true;
        loop {
            let chunk = conn.recv(want + 1)?;
            if first {
                ours.first_read = chunk.len();
                first = false;
            }
            if chunk.is_empty() {
                break;
            }
            ours.received.extend_from_slice(&chunk);
            if ours.received.len() > limit {
                return Ok(());
            }
        }
        ours.ending = Some(conn.recv_close()?);
        Ok(())
    })();
    ours.stats = conn.stats();
    ours.dialect = conn.dialect();
    result.map_err(|e: crate::Error| e.to_string())
}

fn grade_their_client(
    scene: &Scene,
    ours: &Ours,
    program: &mut Running,
    ended: Option<Exit>,
) -> Verdict {
    if ended.is_none() {
        program.stop(Duration::from_secs(1));
        return Verdict::Fail(format!(
            "it was still running {:?} after the connection ended",
            scene.opts.exit_wait
        ));
    }
    if let Some(why) = &ours.failed {
        return Verdict::Fail(with_stderr(why, program));
    }
    if ours.received != *scene.data {
        return Verdict::Fail(format!(
            "our server received {} bytes, not the file's {}{}",
            ours.received.len(),
            scene.data.len(),
            first_difference(&ours.received, &scene.data)
        ));
    }
    match ours.ending {
        Some(Ending::Graceful) => {}
        Some(Ending::LastAckMissing) => {
            return Verdict::Fail(
                if scene.s.faults == Faults::Lose(Lost::FinalAck) {
                    "its final ACK came once, and it was lost: the seed's close() sends it \
                     three times, one timeout apart (step 8)"
                } else {
                    "no final ACK to our FIN-ACK: our recv_close gave up after 3 timeouts \
                     (step 6)"
                }
                .to_string(),
            );
        }
        other => {
            return Verdict::Fail(format!(
                "the close did not complete ({})",
                other.map_or("none".to_string(), |e| e.to_string())
            ));
        }
    }
    if let Some(Exit::Code(Some(code))) = ended
        && code != 0
    {
        return Verdict::Fail(with_stderr(&format!("it exited with code {code}"), program));
    }
    let stats = ours.stats.unwrap_or_default();
    match scene.s.extra {
        Extra::Segments16 if stats.largest_received > 16 => {
            return Verdict::Fail(format!(
                "a scene.data segment carried {} bytes: at most 16 (the activity's rule)",
                stats.largest_received
            ));
        }
        Extra::LengthFirst if ours.first_read != scene.data.len() => {
            return Verdict::Fail(format!(
                "the first message was {} bytes, not the whole file's {}: its first segment \
                 must announce len(message)",
                ours.first_read,
                scene.data.len()
            ));
        }
        _ => {}
    }
    if let Some(why) = loss_missing(scene.s, &scene.trace) {
        return Verdict::Fail(why);
    }
    Verdict::Pass(summary(scene.data.len(), ours))
}

/// Waits for their server to bind `port` (seen in `/proc/net/udp`, so the
/// check never holds the port it waits for).
fn wait_listening(program: &mut Running, port: u16, deadline: Instant) -> Result<(), String> {
    let bound = deadline.min(Instant::now() + Duration::from_secs(10));
    loop {
        if udp_port_bound(port) {
            return Ok(());
        }
        if let Some(exit) = program.exited() {
            return Err(with_stderr(
                &format!("it ended before listening on port {port} ({exit:?})"),
                program,
            ));
        }
        if Instant::now() >= bound {
            return Err(with_stderr(
                &format!("it did not listen on UDP port {port} within 10 s"),
                program,
            ));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Whether some socket is bound to UDP `port` (any address), from `/proc`.
fn udp_port_bound(port: u16) -> bool {
    let want = format!(":{port:04X} ");
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|p| {
        std::fs::read_to_string(p).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| format!("{a} ").ends_with(&want))
            })
        })
    })
}

/// How long our side may take to finish after their program ended (our
/// close takes 3 timeouts at most).
const EXIT_GRACE: Duration = Duration::from_secs(3);
/// The same, after it ended with an error.
const FAILED_GRACE: Duration = Duration::from_millis(500);

/// Our side's result, unless the deadline passes first. A program that ended
/// early gets a short grace (our side may be finishing its close).
fn wait_ours(rx: &mpsc::Receiver<Ours>, program: &mut Running, deadline: Instant) -> Option<Ours> {
    let mut grace: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let until = grace.map_or(deadline, |g| g.min(deadline));
        if now >= until {
            return None;
        }
        match rx.recv_timeout((until - now).min(Duration::from_millis(20))) {
            Ok(ours) => return Some(ours),
            Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if grace.is_none()
            && let Some(exit) = program.exited()
        {
            // Failed: no need to wait for our side to notice.
            let wait = if exit == Exit::Code(Some(0)) {
                EXIT_GRACE
            } else {
                FAILED_GRACE
            };
            grace = Some(Instant::now() + wait);
        }
    }
}

fn wait_exit(program: &mut Running, exit_wait: Duration, deadline: Instant) -> Option<Exit> {
    let now = Instant::now();
    program.wait_for(exit_wait.min(deadline.saturating_duration_since(now)))
}

/// A scenario's single loss that never happened: the segment never came.
fn loss_missing(s: &Scenario, trace: &Trace) -> Option<String> {
    let Faults::Lose(lost) = s.faults else {
        return None;
    };
    let lost_any = trace
        .events()
        .iter()
        .any(|e| matches!(e.kind, TraceKind::SentLost | TraceKind::ReceivedLost));
    (!lost_any).then(|| format!("the segment to lose ({lost:?}) never went across"))
}

fn summary(len: usize, ours: &Ours) -> String {
    let stats = ours.stats.unwrap_or_default();
    format!(
        "{len} bytes intact, {}; we resent {} and answered {} copies",
        ours.ending.map_or("closed".to_string(), |e| e.to_string()),
        stats.retransmissions,
        stats.duplicates
    )
}

fn with_stderr(why: &str, program: &Running) -> String {
    match program.stderr_tail() {
        tail if tail.is_empty() => why.to_string(),
        tail => format!("{why}; its stderr: {tail}"),
    }
}

fn first_difference(got: &[u8], want: &[u8]) -> String {
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(i) => format!(", first difference at byte {i}"),
        None => String::new(),
    }
}

/// Why the transfer did not finish: their program ended early, or the bound passed.
fn unfinished(program: &mut Running, opts: &CheckOptions, trace: &Trace) -> String {
    let why = match program.exited() {
        Some(Exit::Code(Some(code))) => {
            format!("it exited (code {code}) before the transfer ended")
        }
        Some(_) => "it was killed before the transfer ended".to_string(),
        None => {
            program.kill();
            return format!("not finished within {:?}{}", opts.wait, last_event(trace));
        }
    };
    with_stderr(&format!("{why}{}", last_event(trace)), program)
}

fn last_event(trace: &Trace) -> String {
    trace
        .events()
        .last()
        .map_or(String::new(), |e| format!("; the last event: {}", e.text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_udp_port_is_seen_in_proc() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = s.local_addr().unwrap().port();
        assert!(udp_port_bound(port));
        drop(s);
        assert!(!udp_port_bound(port));
    }

    #[test]
    fn differences_are_located() {
        assert_eq!(
            first_difference(b"abcd", b"abxd"),
            ", first difference at byte 2"
        );
        assert_eq!(first_difference(b"ab", b"abc"), "");
    }
}
