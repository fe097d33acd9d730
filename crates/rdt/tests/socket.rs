#![allow(clippy::unwrap_used)]
//! Real UDP sockets over loopback: the seed's own send/recv checks, a file
//! not a multiple of 16 bytes, the listener serving several clients, and
//! transfers through loss (built in, and through `impair udp`).

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use impair::{PerDir, UdpProxy, UdpProxyConfig, UdpRules};
use netkit::units::Probability;
use rdt::{Config, Ending, Error, Format, Options, RdtSocket};

/// Every test ends well within this.
const BOUND: Duration = Duration::from_secs(60);

fn config(format: Format) -> Config {
    Config {
        timeout: Duration::from_millis(20),
        idle_limit: Duration::from_secs(20),
        ..Config::new(format)
    }
}

fn file(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
}

fn listener(opts: Options) -> (RdtSocket, SocketAddr) {
    let mut server = RdtSocket::with_options(opts);
    server.bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    (server, addr)
}

/// Accepts one client, makes the given `recv` calls, then answers the close.
fn serve_once(
    mut server: RdtSocket,
    reads: Vec<usize>,
) -> thread::JoinHandle<(Vec<Vec<u8>>, SocketAddr)> {
    thread::spawn(move || {
        let listen = server.local_addr().unwrap();
        let (mut conn, addr) = server.accept().unwrap();
        assert_ne!(addr, listen, "the accepted socket has its own address");
        assert_eq!(conn.local_addr().unwrap(), addr);
        let got = reads.into_iter().map(|n| conn.recv(n).unwrap()).collect();
        conn.recv_close().unwrap();
        (got, addr)
    })
}

fn client_sends(to: SocketAddr, opts: Options, message: &[u8]) -> Ending {
    let mut client = RdtSocket::with_options(opts);
    client.connect(to).unwrap();
    client.send(message).unwrap();
    client.close().unwrap()
}

fn bounded<T>(what: &str, handle: thread::JoinHandle<T>) -> T {
    let start = Instant::now();
    while !handle.is_finished() {
        assert!(
            start.elapsed() < BOUND,
            "{what} did not finish in {BOUND:?}"
        );
        thread::sleep(Duration::from_millis(5));
    }
    handle.join().unwrap()
}

#[test]
fn seed_check_sixteen_bytes_with_buff_size_sixteen() {
    let (server, addr) = listener(Options::default());
    let server = serve_once(server, vec![16]);
    let mut client = RdtSocket::new();
    client.connect(addr).unwrap();
    client.send(b"Mensje de len=16").unwrap();
    client.close().unwrap();
    let (got, _) = bounded("server", server);
    assert_eq!(got, [b"Mensje de len=16".to_vec()]);
}

#[test]
fn seed_check_nineteen_bytes_with_buff_size_nineteen() {
    let (server, addr) = listener(Options::default());
    let server = serve_once(server, vec![19]);
    client_sends(addr, Options::default(), b"Mensaje de largo 19");
    let (got, _) = bounded("server", server);
    assert_eq!(got, [b"Mensaje de largo 19".to_vec()]);
}

#[test]
fn seed_check_nineteen_bytes_in_two_recv_of_fourteen() {
    let (server, addr) = listener(Options::default());
    let server = serve_once(server, vec![14, 14]);
    client_sends(addr, Options::default(), b"Mensaje de largo 19");
    let (got, _) = bounded("server", server);
    assert_eq!(got, [b"Mensaje de lar".to_vec(), b"go 19".to_vec()]);
}

#[test]
fn a_file_not_a_multiple_of_sixteen_read_with_two_recv() {
    let data = file(1_000);
    let (server, addr) = listener(Options::new(config(Format::Course)));
    let server = serve_once(server, vec![600, 600]);
    client_sends(addr, Options::new(config(Format::Course)), &data);
    let (got, _) = bounded("server", server);
    assert_eq!(got[0].len(), 600);
    assert_eq!(got[1].len(), 400);
    assert_eq!(got.concat(), data);
}

#[test]
fn recv_returns_empty_once_the_peer_closed() {
    let (server, addr) = listener(Options::default());
    let server = serve_once(server, vec![100, 100]);
    client_sends(addr, Options::default(), b"short");
    let (got, _) = bounded("server", server);
    assert_eq!(got, [b"short".to_vec(), Vec::new()]);
}

#[test]
fn the_listener_keeps_accepting_other_clients() {
    let (mut server, addr) = listener(Options::new(config(Format::Binary)));
    let server = thread::spawn(move || {
        let mut ports = Vec::new();
        let mut got = Vec::new();
        for _ in 0..3 {
            let (mut conn, port) = server.accept().unwrap();
            ports.push(port);
            got.push(conn.recv(1 << 20).unwrap());
            conn.recv_close().unwrap();
        }
        (ports, got)
    });
    let clients: Vec<_> = (0..3u8)
        .map(|i| {
            thread::spawn(move || {
                client_sends(addr, Options::new(config(Format::Binary)), &[i; 100])
            })
        })
        .collect();
    for c in clients {
        bounded("client", c);
    }
    let (ports, mut got) = bounded("server", server);
    assert_eq!(ports.len(), 3);
    assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);
    got.sort();
    assert_eq!(got, [vec![0; 100], vec![1; 100], vec![2; 100]]);
}

#[test]
fn both_directions_in_binary() {
    let (mut server, addr) = listener(Options::new(config(Format::Binary)));
    let server = thread::spawn(move || {
        let (mut conn, _) = server.accept().unwrap();
        let question = conn.recv(100).unwrap();
        conn.send(&[question.as_slice(), b" pong"].concat())
            .unwrap();
        conn.recv_close().unwrap()
    });
    let mut client = RdtSocket::with_config(config(Format::Binary));
    client.connect(addr).unwrap();
    client.send(b"ping").unwrap();
    assert_eq!(client.recv(100).unwrap(), b"ping pong");
    let before_close = client.stats().unwrap();
    assert_eq!(client.close().unwrap(), Ending::Graceful);
    // The counters outlive the close and include it (FIN, final ACKs).
    let after_close = client.stats().unwrap();
    assert!(after_close.segments_sent >= before_close.segments_sent + 4);
    assert_eq!(bounded("server", server), Ending::Graceful);
}

/// `send` hands a large message to the core a part at a time: the peer
/// still gets it whole, and every data segment but the last is a full MSS
/// (no short segment where one part ends and the next begins).
#[test]
fn a_message_larger_than_a_part_is_cut_into_full_segments_only() {
    for (format, mss, len) in [
        (Format::Binary, 1_000, 700_007),
        (Format::Course, 16, 300_001),
    ] {
        let cfg = Config {
            mss,
            ..config(format)
        };
        // Segments sent for a message of `len` bytes, retransmissions aside.
        let sends = |len: usize| {
            let (mut server, addr) = listener(Options::new(cfg.clone()));
            let server = thread::spawn(move || {
                let (mut conn, _) = server.accept().unwrap();
                let (got, _) = conn.recv_to_end().unwrap();
                (got, conn.stats().unwrap())
            });
            let mut client = RdtSocket::with_config(cfg.clone());
            client.connect(addr).unwrap();
            client.send(&file(len)).unwrap();
            let stats = client.stats().unwrap();
            client.close().unwrap();
            let (got, server_stats) = bounded("server", server);
            assert!(got == file(len), "{format}: {len} bytes arrive whole");
            if len > mss {
                assert_eq!(server_stats.largest_received, mss, "{format}");
            }
            stats.segments_sent - stats.retransmissions
        };
        // What is not data (handshake, length segment): a one-byte message's.
        let overhead = sends(1) - 1;
        let data_segments = sends(len) - overhead;
        assert_eq!(data_segments as usize, len.div_ceil(mss), "{format}");
    }
}

/// The byte-stream reads: `recv_into` and `std::io::Read` (message
/// boundaries are not kept; 0 at the end).
#[test]
fn a_connection_reads_as_a_byte_stream_with_std_io() {
    let (mut server, addr) = listener(Options::new(config(Format::Binary)));
    let server = thread::spawn(move || {
        let (mut conn, _) = server.accept().unwrap();
        let mut first = [0u8; 4];
        let n = conn.recv_into(&mut first).unwrap();
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut conn, &mut rest).unwrap();
        conn.recv_close().unwrap();
        ([&first[..n], &rest].concat(), n)
    });
    let sent = [file(10_000), file(3)];
    let mut client = RdtSocket::with_config(config(Format::Binary));
    client.connect(addr).unwrap();
    for m in &sent {
        client.send(m).unwrap();
    }
    client.close().unwrap();
    let (got, first) = bounded("server", server);
    assert_eq!(first, 4, "min(buffer, bytes left in the message)");
    assert_eq!(got, sent.concat());
}

#[test]
fn built_in_loss_both_ways_still_delivers_the_file() {
    for format in [Format::Course, Format::Binary] {
        let data = file(3_000);
        let lossy = |seed| Options {
            loss: 0.2,
            seed: Some(seed),
            ..Options::new(Config {
                mss: 64,
                ..config(format)
            })
        };
        // Both ends lossy: each direction loses about 36% (20% at each end).
        let (server, addr) = listener(lossy(1));
        let server = serve_once(server, vec![1 << 20]);
        let mut client = RdtSocket::with_options(lossy(2));
        client.connect(addr).unwrap();
        client.send(&data).unwrap();
        let stats = client.stats().unwrap();
        client.close().unwrap();
        let (got, _) = bounded("server", server);
        assert_eq!(got.concat(), data, "{format}");
        assert!(
            stats.retransmissions > 0,
            "{format}: the loss really happened"
        );
    }
}

#[test]
fn a_file_through_impair_udp_with_twenty_percent_loss() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = file(4_000);
    let (server, server_addr) = listener(Options::new(config(Format::Course)));
    let server = serve_once(server, vec![1 << 20]);
    let mut cfg = UdpProxyConfig::new("127.0.0.1:0".parse().unwrap(), server_addr);
    cfg.seed = 20;
    let rules = UdpRules {
        loss: Probability::new(0.2).unwrap(),
        ..UdpRules::default()
    };
    cfg.rules = PerDir::both(rules);
    let proxy = rt.block_on(UdpProxy::start(cfg)).unwrap();
    let proxy_addr = proxy.local_addr();
    let client = thread::spawn(move || {
        client_sends(proxy_addr, Options::new(config(Format::Course)), &data)
    });
    bounded("client", client);
    let (got, _) = bounded("server", server);
    assert_eq!(got.concat(), file(4_000));
    let summary = rt.block_on(proxy.shutdown());
    assert!(summary.dirs.up.dropped_loss > 0 && summary.dirs.down.dropped_loss > 0);
}

fn assert_gave_up_on_the_syn(err: &Error, tries: u32) {
    assert!(
        matches!(err, Error::GaveUp { what: "SYN", tries: t, .. } if *t == tries),
        "{err}"
    );
}

#[test]
fn connect_to_nobody_fails_with_a_clear_error_in_bounded_time() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut cfg = config(Format::Course);
    cfg.syn_retries = 5;
    let mut client = RdtSocket::with_config(cfg);
    let start = Instant::now();
    let err = client.connect(silent.local_addr().unwrap()).unwrap_err();
    assert_gave_up_on_the_syn(&err, 5);
    assert!(start.elapsed() < BOUND);
}

/// Hostile input: a stream of datagrams that do not decode, sent as fast as
/// one thread can, must not hold the timers back. The SYN is still resent
/// and given up on within its bound while the flood goes on.
#[test]
fn a_flood_of_garbage_does_not_starve_the_timers() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = silent.local_addr().unwrap();
    let mut cfg = config(Format::Binary);
    cfg.syn_retries = 5;
    let done = Arc::new(AtomicBool::new(false));
    let flood = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            // The client's address, from its first SYN; then garbage to it
            // until it gives up (or 30 s, far past its bound).
            silent
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut buf = [0u8; 64];
            let (_, client) = silent.recv_from(&mut buf).unwrap();
            let start = Instant::now();
            while !done.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(30) {
                let _ = silent.send_to(b"not a segment", client);
            }
        })
    };
    let mut client = RdtSocket::with_config(cfg);
    let start = Instant::now();
    let err = client.connect(to).unwrap_err();
    let took = start.elapsed();
    done.store(true, Ordering::Relaxed);
    bounded("flood", flood);
    assert_gave_up_on_the_syn(&err, 5);
    // 5 timeouts of 20 ms: far under the flood's 30 s.
    assert!(took < Duration::from_secs(10), "gave up after {took:?}");
}

#[test]
fn calls_in_the_wrong_order_are_usage_errors() {
    let mut s = RdtSocket::new();
    assert!(matches!(s.send(b"x"), Err(Error::Usage("connected"))));
    assert!(matches!(s.accept(), Err(Error::Usage(_))));
    let mut big = RdtSocket::with_config(Config {
        mss: 70_000,
        ..Config::default()
    });
    assert!(
        big.bind("127.0.0.1:0")
            .unwrap_err()
            .to_string()
            .contains("MSS 70000 out of range")
    );
}

#[test]
fn a_client_that_never_finishes_its_handshake_holds_nobody_back() {
    // Long enough that a listener doing one handshake at a time would hold the
    // real client far past the test's bound (1,000 timeouts of 200 ms).
    let cfg = Config {
        timeout: Duration::from_millis(200),
        syn_retries: 1_000,
        ..Config::new(Format::Course)
    };
    let (server, addr) = listener(Options::new(cfg.clone()));
    let server = serve_once(server, vec![100]);
    let ghost = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ghost.send_to(b"1|||0|||0|||7|||", addr).unwrap();
    ghost.set_read_timeout(Some(BOUND)).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = ghost.recv_from(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        b"1|||1|||0|||8|||",
        "the ghost's SYN is being handled"
    );
    // The ghost never answers; a real client still gets through.
    client_sends(addr, Options::new(cfg), b"hola");
    let (got, _) = bounded("server", server);
    assert_eq!(got, [b"hola".to_vec()]);
}

#[test]
fn garbage_and_foreign_datagrams_are_ignored() {
    let (mut server, addr) = listener(Options::new(config(Format::Binary)));
    let ghost = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // Junk at the listener: undecodable, oversized, and a well-formed non-SYN.
    ghost.send_to(b"not a segment at all", addr).unwrap();
    ghost.send_to(&vec![0u8; 65_000], addr).unwrap();
    let mut ack = Vec::new();
    Format::Binary.encode(&rdt::Segment::ack(rdt::Seq(5), rdt::Seq(9)), &mut ack);
    ghost.send_to(&ack, addr).unwrap();
    let server = thread::spawn(move || {
        let (mut conn, conn_addr) = server.accept().unwrap();
        // Junk at the connection's own port, from a stranger, mid-connection.
        let stranger = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        stranger.send_to(b"\x01\x00garbage", conn_addr).unwrap();
        let mut forged = Vec::new();
        Format::Binary.encode(&rdt::Segment::fin(rdt::Seq(1)), &mut forged);
        stranger.send_to(&forged, conn_addr).unwrap();
        let got = conn.recv(1 << 20).unwrap();
        conn.recv_close().unwrap();
        got
    });
    client_sends(addr, Options::new(config(Format::Binary)), &file(2_000));
    assert_eq!(bounded("server", server), file(2_000));
}

/// Hostile input: a SYN flood from a thousand ports at 20,000 SYN/s while
/// real clients connect. Every real client gets through and delivers its
/// message; the listener's threads do not grow with the flood. (About 100
/// SYN/s from 1,000 ports made 4 of 4 connects fail; 20,000/s, every one.)
#[test]
fn a_syn_flood_from_many_ports_does_not_shut_out_real_clients() {
    const REAL: u8 = 5;
    // Short timeouts, and patience for a machine busy with more than this
    // test (a real client starved of CPU for a while must not give up: what
    // is asserted is that the flood does not shut it out).
    let cfg = Config {
        timeout: Duration::from_millis(50),
        max_retries: 400,
        ..Config::new(Format::Course)
    };
    let (mut server, addr) = listener(Options::new(cfg.clone()));
    let threads_before = thread_count();
    let flooding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = std::sync::Arc::clone(&flooding);
    let flood = thread::spawn(move || {
        let ports: Vec<_> = (0..1000)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let start = Instant::now();
        let mut sent = 0u64;
        while flag.load(std::sync::atomic::Ordering::Relaxed) {
            for (i, p) in ports.iter().enumerate() {
                let syn = format!("1|||0|||0|||{}|||", sent + i as u64);
                let _ = p.send_to(syn.as_bytes(), addr);
            }
            sent += ports.len() as u64;
            // 20,000 a second: a thousand every 50 ms.
            let due = Duration::from_millis(sent / 20);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                thread::sleep(wait);
            }
        }
        sent
    });
    let server = thread::spawn(move || {
        let mut got = Vec::new();
        let mut peak_threads = 0;
        for _ in 0..REAL {
            let (mut conn, _) = server.accept().unwrap();
            got.push(conn.recv(1 << 10).unwrap());
            conn.recv_close().unwrap();
            peak_threads = peak_threads.max(thread_count());
        }
        (got, peak_threads)
    });
    for i in 0..REAL {
        let cfg = cfg.clone();
        let c = thread::spawn(move || client_sends(addr, Options::new(cfg), &[i; 64]));
        bounded("real client", c);
    }
    let (mut got, peak_threads) = bounded("server", server);
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    let syns = bounded("flood", flood);
    got.sort();
    assert_eq!(got, (0..REAL).map(|i| vec![i; 64]).collect::<Vec<_>>());
    assert!(syns >= 2_000, "the flood was a flood: {syns} SYNs");
    // The flood's threads (its own) come and go; the listener adds none per SYN.
    assert!(
        peak_threads < threads_before + 8,
        "threads grew from {threads_before} to {peak_threads} under the flood"
    );
}

/// Threads of this process now.
fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Threads:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn recv_to_end_takes_every_message_then_answers_the_close() {
    for format in [Format::Course, Format::Binary] {
        let (mut server, addr) = listener(Options::new(config(format)));
        let server = thread::spawn(move || {
            let (mut conn, _) = server.accept().unwrap();
            conn.recv_to_end().unwrap()
        });
        let mut client = RdtSocket::with_config(config(format));
        client.connect(addr).unwrap();
        client.send(b"first message, ").unwrap();
        client.send(&[7u8; 3000]).unwrap();
        let closed = client.close().unwrap();
        let (got, ending) = bounded("server", server);
        assert_eq!(
            got,
            [&b"first message, "[..], &[7u8; 3000]].concat(),
            "{format:?}"
        );
        assert_eq!(
            (ending, closed),
            (Ending::Graceful, Ending::Graceful),
            "{format:?}"
        );
    }
}
