//! The HFTP server over real loopback sockets: every rule of the spec.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hftp::server::{Config, run};
use impair::{TcpProxy, TcpProxyConfig, TcpRules};
use netkit::server::ServeReport;
use netkit::testing::Served;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const BOUND: Duration = Duration::from_secs(30);

struct Running {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    served: Served<ServeReport>,
}

async fn start() -> Running {
    start_with(|_| {}).await
}

/// A server on a fresh directory, its configuration adjusted by `tune`.
async fn start_with(tune: impl FnOnce(&mut Config)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::new(dir.path());
    tune(&mut cfg);
    let served = Served::bind(|l, shutdown| run(l, cfg, shutdown)).await;
    Running {
        addr: served.addr,
        dir,
        served,
    }
}

/// A server whose idle timeout is `ms` milliseconds.
async fn start_idle_ms(ms: u64) -> Running {
    start_with(|cfg| cfg.idle_timeout = Duration::from_millis(ms)).await
}

impl Running {
    /// Stops the server and returns its report, bounded in time.
    async fn stop(self) -> ServeReport {
        self.served.stop().await
    }

    fn file(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.dir.path().join(name), bytes).unwrap();
    }
    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }
}

/// Sends `req` and reads exactly `want.len()` bytes, which must be `want`.
async fn exchange(s: &mut TcpStream, req: &[u8], want: &[u8]) {
    s.write_all(req).await.unwrap();
    expect(s, want).await;
}

async fn expect(s: &mut TcpStream, want: &[u8]) {
    let mut got = vec![0u8; want.len()];
    timeout(BOUND, s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
}

/// The connection ends with a clean FIN (not a reset), nothing more sent.
async fn expect_graceful_close(s: &mut TcpStream) {
    let mut b = [0u8; 64];
    let n = timeout(BOUND, s.read(&mut b))
        .await
        .unwrap()
        .expect("FIN, not RST");
    assert_eq!(n, 0, "nothing after the status line: {:?}", &b[..n]);
}

fn b64(bytes: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(bytes)
}

#[tokio::test]
async fn listing_metadata_and_help() {
    let srv = start().await;
    let mut s = srv.connect().await;
    exchange(&mut s, b"get_file_listing\r\n", b"0 OK\r\n\r\n").await;
    srv.file("b.txt", b"hello");
    srv.file("a.bin", &[0u8; 3]);
    srv.file("bad name.txt", b"x");
    std::fs::create_dir(srv.dir.path().join("subdir")).unwrap();
    exchange(
        &mut s,
        b"get_file_listing\r\n",
        b"0 OK\r\na.bin\r\nb.txt\r\n\r\n",
    )
    .await;
    exchange(&mut s, b"get_metadata b.txt\r\n", b"0 OK\r\n5\r\n").await;
    exchange(
        &mut s,
        b"get_metadata subdir\r\n",
        b"202 FILE NOT FOUND\r\n",
    )
    .await;
    exchange(
        &mut s,
        b"help\r\n",
        b"0 OK\r\nget_file_listing\r\nget_metadata\r\nget_slice\r\nhelp\r\nquit\r\n\r\n",
    )
    .await;
    exchange(&mut s, b"quit\r\n", b"0 OK\r\n").await;
    expect_graceful_close(&mut s).await;
}

#[tokio::test]
async fn a_thousand_file_listing() {
    let srv = start().await;
    for i in 0..1000 {
        srv.file(&format!("f{i:04}.dat"), b"");
    }
    let mut want = b"0 OK\r\n".to_vec();
    for i in 0..1000 {
        want.extend_from_slice(format!("f{i:04}.dat\r\n").as_bytes());
    }
    want.extend_from_slice(b"\r\n");
    exchange(&mut srv.connect().await, b"get_file_listing\r\n", &want).await;
}

#[tokio::test]
async fn the_directory_is_resolved_on_every_request() {
    let srv = start().await;
    srv.file("x", b"1");
    let mut s = srv.connect().await;
    exchange(&mut s, b"get_metadata x\r\n", b"0 OK\r\n1\r\n").await;
    std::fs::remove_dir_all(srv.dir.path()).unwrap();
    exchange(&mut s, b"get_metadata x\r\n", b"202 FILE NOT FOUND\r\n").await;
    exchange(&mut s, b"get_file_listing\r\n", b"0 OK\r\n\r\n").await;
    std::fs::create_dir(srv.dir.path()).unwrap();
    srv.file("y", b"22");
    exchange(&mut s, b"get_file_listing\r\n", b"0 OK\r\ny\r\n\r\n").await;
    exchange(&mut s, b"get_metadata y\r\n", b"0 OK\r\n2\r\n").await;
}

#[tokio::test]
async fn slices_base64_and_raw_with_every_byte_value() {
    let srv = start().await;
    let all: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    srv.file("all.bin", &all);
    let mut s = srv.connect().await;
    let want = format!("0 OK\r\n{}\r\n", b64(&all));
    exchange(&mut s, b"get_slice all.bin 0 1000\r\n", want.as_bytes()).await;
    let want = format!("0 OK\r\n{}\r\n", b64(&all[10..17]));
    exchange(
        &mut s,
        b"get_slice all.bin 10 7 base64\r\n",
        want.as_bytes(),
    )
    .await;
    // Zero size, and a slice ending exactly at EOF.
    exchange(&mut s, b"get_slice all.bin 5 0\r\n", b"0 OK\r\n\r\n").await;
    let want = format!("0 OK\r\n{}\r\n", b64(&all[990..]));
    exchange(&mut s, b"get_slice all.bin 990 10\r\n", want.as_bytes()).await;
    exchange(&mut s, b"get_slice all.bin 1000 0\r\n", b"0 OK\r\n\r\n").await;
    // Raw.
    let mut want = b"0 OK\r\nContent-Length: 256\r\n\r\n".to_vec();
    want.extend_from_slice(&all[..256]);
    exchange(&mut s, b"get_slice all.bin 0 256 raw\r\n", &want).await;
    // Still in step afterwards.
    exchange(&mut s, b"get_metadata all.bin\r\n", b"0 OK\r\n1000\r\n").await;
}

#[tokio::test]
async fn a_large_slice_crosses_many_chunks() {
    let srv = start().await;
    let big: Vec<u8> = (0..3_000_001u32).map(|i| (i * 7 % 251) as u8).collect();
    srv.file("big", &big);
    let mut s = srv.connect().await;
    let want = format!("0 OK\r\n{}\r\n", b64(&big[1..]));
    exchange(&mut s, b"get_slice big 1 3000000\r\n", want.as_bytes()).await;
}

#[tokio::test]
async fn check_order_and_status_codes() {
    let srv = start().await;
    srv.file("f", b"0123456789");
    let mut s = srv.connect().await;
    for (req, want) in [
        (&b"frobnicate\r\n"[..], &b"200 NO SUCH COMMAND\r\n"[..]),
        (b"GET_FILE_LISTING\r\n", b"200 NO SUCH COMMAND\r\n"),
        (b"quit now\r\n", b"201 INVALID ARGUMENTS FOR COMMAND\r\n"),
        (
            b"get_file_listing x\r\n",
            b"201 INVALID ARGUMENTS FOR COMMAND\r\n",
        ),
        (
            b"get_metadata\r\n",
            b"201 INVALID ARGUMENTS FOR COMMAND\r\n",
        ),
        (
            b"get_metadata ../secret\r\n",
            b"201 INVALID ARGUMENTS FOR COMMAND\r\n",
        ),
        (
            b"get_metadata ..\r\n",
            b"201 INVALID ARGUMENTS FOR COMMAND\r\n",
        ),
        (
            b"get_metadata a\0b\r\n",
            b"201 INVALID ARGUMENTS FOR COMMAND\r\n",
        ),
        (b"get_metadata nothere\r\n", b"202 FILE NOT FOUND\r\n"),
        (
            b"get_slice f -1 2\r\n",
            b"201 INVALID ARGUMENTS FOR COMMAND\r\n",
        ),
        (
            b"get_slice f x 2\r\n",
            b"201 INVALID ARGUMENTS FOR COMMAND\r\n",
        ),
        (
            b"get_slice f 1 2 hex\r\n",
            b"201 INVALID ARGUMENTS FOR COMMAND\r\n",
        ),
        (
            b"get_slice f 99999999999999999999999 2 hex\r\n",
            b"201 INVALID ARGUMENTS FOR COMMAND\r\n",
        ),
        (
            b"get_slice nothere 99999999999999999999999 2\r\n",
            b"202 FILE NOT FOUND\r\n",
        ),
        (
            b"get_slice f 99999999999999999999999 2\r\n",
            b"203 OFFSET EXCEEDS FILE SIZE\r\n",
        ),
        (
            b"get_slice f 18446744073709551615 1\r\n",
            b"203 OFFSET EXCEEDS FILE SIZE\r\n",
        ),
        (b"get_slice f 5 6\r\n", b"203 OFFSET EXCEEDS FILE SIZE\r\n"),
        (b"get_slice f 11 0\r\n", b"203 OFFSET EXCEEDS FILE SIZE\r\n"),
        (b"   get_metadata    f   \r\n", b"0 OK\r\n10\r\n"),
    ] {
        exchange(&mut s, req, want).await;
    }
    // A name longer than the OS allows is 202.
    let long = format!("get_metadata {}\r\n", "n".repeat(300));
    exchange(&mut s, long.as_bytes(), b"202 FILE NOT FOUND\r\n").await;
}

#[tokio::test]
async fn a_five_mib_file_name_is_202() {
    let srv = start().await;
    let mut s = srv.connect().await;
    s.write_all(b"get_metadata ").await.unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..80 {
        s.write_all(&chunk).await.unwrap();
    }
    exchange(&mut s, b"\r\n", b"202 FILE NOT FOUND\r\n").await;
    exchange(&mut s, b"get_file_listing\r\n", b"0 OK\r\n\r\n").await;
}

#[tokio::test]
async fn bare_lf_is_100_at_once_and_fatal() {
    let srv = start().await;
    let mut s = srv.connect().await;
    // Answered as soon as the LF arrives: nothing else is sent, nothing closed.
    exchange(&mut s, b"get_file_listing\n", b"100 BAD EOL\r\n").await;
    expect_graceful_close(&mut s).await;
    let mut s = srv.connect().await;
    exchange(&mut s, b"\n", b"100 BAD EOL\r\n").await;
    expect_graceful_close(&mut s).await;
    // After valid requests in the same segment: those are answered first.
    let mut s = srv.connect().await;
    exchange(&mut s, b"help\r\nget_metadata x\n", b"0 OK\r\nget_file_listing\r\nget_metadata\r\nget_slice\r\nhelp\r\nquit\r\n\r\n100 BAD EOL\r\n").await;
    expect_graceful_close(&mut s).await;
}

#[tokio::test]
async fn empty_line_and_non_ascii_are_101_and_fatal() {
    let srv = start().await;
    let mut s = srv.connect().await;
    exchange(&mut s, b"\r\n", b"101 BAD REQUEST\r\n").await;
    expect_graceful_close(&mut s).await;
    let mut s = srv.connect().await;
    exchange(&mut s, b"   \r\n", b"101 BAD REQUEST\r\n").await;
    expect_graceful_close(&mut s).await;
    let mut s = srv.connect().await;
    exchange(
        &mut s,
        "get_metadata año\r\n".as_bytes(),
        b"101 BAD REQUEST\r\n",
    )
    .await;
    expect_graceful_close(&mut s).await;
}

#[tokio::test]
async fn fatal_close_ignores_input_already_sent_and_is_not_a_reset() {
    let srv = start().await;
    let mut s = srv.connect().await;
    s.write_all(b"\r\nhelp\r\nhelp\r\n").await.unwrap();
    expect(&mut s, b"101 BAD REQUEST\r\n").await;
    expect_graceful_close(&mut s).await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let srv = start().await;
    srv.file("p", b"abc");
    let mut s = srv.connect().await;
    let want = format!(
        "0 OK\r\n3\r\n202 FILE NOT FOUND\r\n0 OK\r\n{}\r\n200 NO SUCH COMMAND\r\n0 OK\r\n",
        b64(b"bc")
    );
    exchange(
        &mut s,
        b"get_metadata p\r\nget_metadata q\r\nget_slice p 1 2\r\nnope\r\nquit\r\n",
        want.as_bytes(),
    )
    .await;
    expect_graceful_close(&mut s).await;
}

async fn through(srv: &Running, rules: TcpRules) -> (TcpProxy, TcpStream) {
    let mut cfg = TcpProxyConfig::new("127.0.0.1:0".parse().unwrap(), srv.addr);
    cfg.rules.up = rules;
    let p = TcpProxy::start(cfg).await.unwrap();
    let s = TcpStream::connect(p.local_addr()).await.unwrap();
    (p, s)
}

#[tokio::test]
async fn requests_one_byte_per_segment() {
    let srv = start().await;
    srv.file("f", b"xyz");
    let (p, mut s) = through(&srv, TcpRules::chopped(1, Duration::from_millis(1))).await;
    let want = format!("0 OK\r\n3\r\n0 OK\r\n{}\r\n", b64(b"yz"));
    exchange(
        &mut s,
        b"get_metadata f\r\nget_slice f 1 2\r\n",
        want.as_bytes(),
    )
    .await;
    assert_eq!(p.summary().dirs.up.writes, 33);
}

#[tokio::test]
async fn cr_and_lf_in_separate_segments() {
    let srv = start().await;
    let mut s = srv.connect().await;
    s.set_nodelay(true).unwrap();
    s.write_all(b"get_file_listing\r").await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    exchange(&mut s, b"\n", b"0 OK\r\n\r\n").await;
}

#[tokio::test]
async fn an_idle_half_sent_request_never_delays_another_client() {
    let srv = start().await;
    let big: Vec<u8> = (0..2_000_000u32).map(|i| i as u8).collect();
    srv.file("big", &big);
    let mut idle = srv.connect().await;
    idle.write_all(b"get_metad").await.unwrap();
    let mut busy = srv.connect().await;
    let want = format!("0 OK\r\n{}\r\n", b64(&big));
    exchange(&mut busy, b"get_slice big 0 2000000\r\n", want.as_bytes()).await;
    // The idle one is still there and still served.
    exchange(&mut idle, b"ata big\r\n", b"0 OK\r\n2000000\r\n").await;
}

#[tokio::test]
async fn a_client_that_resets_mid_slice_affects_nobody_else() {
    let srv = start().await;
    srv.file("big", &vec![7u8; 20 << 20]);
    let mut victim = srv.connect().await;
    victim
        .write_all(b"get_slice big 0 20971520 raw\r\n")
        .await
        .unwrap();
    let mut some = [0u8; 4096];
    victim.read_exact(&mut some).await.unwrap();
    #[allow(deprecated)] // a zero linger is the point: the drop sends RST
    victim.set_linger(Some(Duration::ZERO)).unwrap();
    drop(victim);
    let mut other = srv.connect().await;
    exchange(&mut other, b"get_metadata big\r\n", b"0 OK\r\n20971520\r\n").await;
}

#[tokio::test]
async fn an_unreadable_file_is_199_and_fatal() {
    let (srv, name) = if is_root() {
        // Permissions do not stop root; a write-only sysfs attribute does
        // (opening it for reading fails even for root). Links out of the
        // directory are never followed, so the server serves its directory.
        let Some(target) = [
            "/sys/bus/pci/rescan",
            "/sys/class/zram-control/hot_remove",
            "/sys/kernel/mm/ksm/run",
        ]
        .into_iter()
        .map(Path::new)
        .find(|p| {
            std::fs::read(p).is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
        }) else {
            eprintln!("running as root with no write-only sysfs file to point at: skipped");
            return;
        };
        let dir = target.parent().unwrap().to_path_buf();
        let name = target.file_name().unwrap().to_string_lossy().into_owned();
        (start_with(|cfg| cfg.datadir = dir).await, name)
    } else {
        let srv = start().await;
        srv.file("secret", b"s");
        set_mode(&srv.dir.path().join("secret"), 0o000);
        (srv, "secret".to_string())
    };
    let mut s = srv.connect().await;
    exchange(
        &mut s,
        format!("get_slice {name} 0 1\r\n").as_bytes(),
        b"199 INTERNAL SERVER ERROR\r\n",
    )
    .await;
    expect_graceful_close(&mut s).await;
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_idle_timeout() {
    let srv = start_idle_ms(200).await;
    let mut s = srv.connect().await;
    exchange(&mut s, b"get_file_listing\r\n", b"0 OK\r\n\r\n").await;
    // Then nothing: the server hangs up, and says nothing more.
    let mut b = [0u8; 16];
    let n = timeout(BOUND, s.read(&mut b)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0);
}

/// Idle time counts from the end of the last answer: a slice that takes longer
/// than the idle timeout to stream (a slow reader) does not get the connection
/// closed before the next request.
///
/// The reader is slow for the first 32 MB only: the server's last write
/// completes while up to ~10 MB still sit in socket buffers, and the idle
/// time runs from then, so the tail is read at full speed (reading all of it
/// slowly made the test fail under load for the wrong reason).
#[tokio::test]
async fn a_long_slice_is_not_idleness() {
    const SIZE: usize = 48_000_000;
    let srv = start_idle_ms(200).await;
    let data: Vec<u8> = (0..SIZE).map(|i| (i / 7) as u8).collect();
    srv.file("big", &data);
    let mut s = srv.connect().await;
    s.write_all(format!("get_slice big 0 {SIZE} raw\r\n").as_bytes())
        .await
        .unwrap();
    let header = format!("0 OK\r\nContent-Length: {SIZE}\r\n\r\n").len();
    let mut left = header + data.len();
    let mut buf = vec![0u8; 1 << 20];
    let start = std::time::Instant::now();
    while left > 0 {
        let n = timeout(BOUND, s.read(&mut buf[..left.min(1 << 20)]))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed in the middle of the slice");
        left -= n;
        if left > 16_000_000 {
            // A slow reader: the server's writes wait for it.
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }
    assert!(
        start.elapsed() > Duration::from_millis(300),
        "the slice outlasted the idle timeout"
    );
    exchange(
        &mut s,
        b"get_metadata big\r\n",
        format!("0 OK\r\n{SIZE}\r\n").as_bytes(),
    )
    .await;
}

/// Graceful shutdown: an idle client gets FIN, and a client that pipelines
/// requests without pause is closed by its own handler too (requests are
/// polled before the shutdown signal, so this proves the signal is not
/// starved): no handler is left for the grace period to abandon.
#[tokio::test]
async fn shutdown_closes_idle_and_flooding_clients_gracefully() {
    let srv = start().await;
    srv.file("f", b"12345");
    let mut idle = srv.connect().await;
    exchange(&mut idle, b"get_metadata f\r\n", b"0 OK\r\n5\r\n").await;

    let flood = srv.connect().await;
    let (mut r, mut w) = flood.into_split();
    let writer = tokio::spawn(async move {
        let batch = b"get_metadata f\r\n".repeat(4096);
        while w.write_all(&batch).await.is_ok() {}
    });
    let (answered_tx, mut answered) = tokio::sync::watch::channel(0usize);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        while let Ok(n) = r.read(&mut buf).await {
            if n == 0 {
                break;
            }
            total += n;
            let _ = answered_tx.send(total / b"0 OK\r\n5\r\n".len());
        }
    });
    // The flood is being answered when the server is told to stop.
    timeout(BOUND, answered.wait_for(|&n| n >= 10_000))
        .await
        .unwrap()
        .unwrap();
    let report = srv.stop().await;
    assert_eq!(report.abandoned, 0, "every handler saw the shutdown");
    assert_eq!(report.accepted, 2);
    expect_graceful_close(&mut idle).await;
    timeout(BOUND, reader).await.unwrap().unwrap();
    writer.abort();
}

/// Truly concurrent: a thousand connections at once, each holding half a
/// request, then all completed together; every one is answered, and a new
/// client is served while they are all open.
#[tokio::test]
async fn a_thousand_connections_at_once_are_all_served() {
    // Both ends of every connection live in this process.
    let count = netkit::testing::idle_connections(1000);
    let srv = start().await;
    srv.file("f", b"0123456789");
    let mut conns = Vec::with_capacity(count);
    for _ in 0..count {
        let mut c = srv.connect().await;
        c.write_all(b"get_meta").await.unwrap();
        conns.push(c);
    }
    let mut fresh = srv.connect().await;
    exchange(&mut fresh, b"get_metadata f\r\n", b"0 OK\r\n10\r\n").await;
    let answered = futures_util::future::join_all(conns.into_iter().map(|mut c| async move {
        exchange(&mut c, b"data f\r\n", b"0 OK\r\n10\r\n").await;
    }));
    timeout(BOUND, answered).await.unwrap();
}

/// A client that asks for a large slice and never reads it is cut after the
/// idle timeout instead of holding its connection forever; others are served
/// meanwhile.
#[tokio::test]
async fn a_client_that_stops_reading_is_cut_after_the_idle_timeout() {
    let srv = start_idle_ms(300).await;
    srv.file("big", &vec![9u8; 64 << 20]);
    let mut stuck = srv.connect().await;
    stuck
        .write_all(b"get_slice big 0 67108864 raw\r\n")
        .await
        .unwrap();
    let mut other = srv.connect().await;
    exchange(&mut other, b"get_metadata big\r\n", b"0 OK\r\n67108864\r\n").await;
    // Not reading for well past the timeout; then whatever was buffered
    // arrives, and the connection ends short of the 64 MiB.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0usize;
    loop {
        match timeout(BOUND, stuck.read(&mut buf)).await.unwrap() {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(got < 64 << 20, "the whole slice came: {got}");
    assert_eq!(srv.stop().await.abandoned, 0);
}

/// Links inside the directory to files inside are served; links to anything
/// outside (files, directories), loops and dangling links are neither listed
/// nor served, and are answered 202 on a connection that stays open.
#[tokio::test]
async fn symbolic_links_never_leave_the_directory() {
    use std::os::unix::fs::symlink;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"top secret, do not serve").unwrap();
    let srv = start().await;
    let d = srv.dir.path();
    srv.file("plain", b"0123456789");
    symlink("plain", d.join("alias")).unwrap();
    symlink(outside.path().join("secret"), d.join("escape")).unwrap();
    symlink("/etc/passwd", d.join("passwd")).unwrap();
    symlink(outside.path(), d.join("outdir")).unwrap();
    symlink("loop2", d.join("loop1")).unwrap();
    symlink("loop1", d.join("loop2")).unwrap();
    symlink("gone", d.join("dangling")).unwrap();
    let mut s = srv.connect().await;
    exchange(
        &mut s,
        b"get_file_listing\r\n",
        b"0 OK\r\nalias\r\nplain\r\n\r\n",
    )
    .await;
    exchange(
        &mut s,
        b"get_slice alias 2 3\r\n",
        format!("0 OK\r\n{}\r\n", b64(b"234")).as_bytes(),
    )
    .await;
    for name in ["escape", "passwd", "outdir", "loop1", "dangling"] {
        exchange(
            &mut s,
            format!("get_slice {name} 0 4 raw\r\n").as_bytes(),
            b"202 FILE NOT FOUND\r\n",
        )
        .await;
        exchange(
            &mut s,
            format!("get_metadata {name}\r\n").as_bytes(),
            b"202 FILE NOT FOUND\r\n",
        )
        .await;
    }
    exchange(&mut s, b"get_metadata alias\r\n", b"0 OK\r\n10\r\n").await;
}

/// At the connection limit, idle connections make room for new clients (the
/// oldest first) instead of keeping them waiting up to the idle timeout.
#[tokio::test]
async fn at_the_connection_limit_the_oldest_idle_client_makes_room() {
    let srv = start_with(|cfg| {
        cfg.max_connections = 20;
        cfg.evict_idle_after = Some(Duration::ZERO);
    })
    .await;
    srv.file("f", b"0123456789");
    let mut idle = Vec::new();
    for _ in 0..20 {
        let mut c = srv.connect().await;
        exchange(&mut c, b"get_metadata f\r\n", b"0 OK\r\n10\r\n").await;
        idle.push(c);
    }
    // Five newcomers are each served at once, though the server is full.
    for _ in 0..5 {
        let mut c = srv.connect().await;
        exchange(&mut c, b"get_metadata f\r\n", b"0 OK\r\n10\r\n").await;
        idle.push(c);
    }
    // The five oldest were closed to make room, gracefully; the rest still work.
    for c in &mut idle[..5] {
        expect_graceful_close(c).await;
    }
    for c in &mut idle[5..] {
        exchange(c, b"get_metadata f\r\n", b"0 OK\r\n10\r\n").await;
    }
}
