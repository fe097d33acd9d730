#![allow(clippy::unwrap_used)]
//! `impair link` on the wire: kernel TCP and UDP between two real network
//! namespaces through the link's rules (issue #14). Each test makes its own
//! link under its own name and removes it; on a machine that forbids
//! namespaces they skip with a message (CI sets PROTOLAB_REQUIRE_NETNS=1).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use impair::link::{self, Link, LinkConfig, Side};
use netkit::units::Probability;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Every wait is bounded by this.
const BOUND: Duration = Duration::from_secs(60);

fn name(tag: &str) -> String {
    format!("plt{}{tag}", std::process::id() % 100_000)
}

fn p(v: f64) -> Probability {
    Probability::new(v).unwrap()
}

fn addr(link: &Link, side: Side, v4: bool, port: u16) -> SocketAddr {
    SocketAddr::new(link.addr(side, v4).unwrap(), port)
}

/// A UDP socket on `side`'s IPv4 address, any port.
fn udp_in(link: &Link, side: Side) -> UdpSocket {
    link.in_namespace(side, || UdpSocket::bind(addr(link, side, true, 0)))
        .unwrap()
        .unwrap()
}

/// A TCP listener on b's address of the family, any port.
fn listener_in(link: &Link, v4: bool) -> TcpListener {
    link.in_namespace(Side::B, || TcpListener::bind(addr(link, Side::B, v4, 0)))
        .unwrap()
        .unwrap()
}

/// Sends `data` over kernel TCP from a to b and returns what b received.
fn tcp_transfer(link: &Link, v4: bool, data: &Arc<Vec<u8>>) -> Vec<u8> {
    let listener = listener_in(link, v4);
    let to = listener.local_addr().unwrap();
    let client = link
        .in_namespace(Side::A, || {
            std::net::TcpStream::connect_timeout(&to, Duration::from_secs(10))
        })
        .unwrap()
        .unwrap();
    let sender = {
        let data = Arc::clone(data);
        thread::spawn(move || {
            let mut c = client;
            c.set_write_timeout(Some(BOUND)).unwrap();
            c.write_all(&data).unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
        })
    };
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(BOUND)).unwrap();
    let mut got = Vec::with_capacity(data.len());
    s.read_to_end(&mut got).unwrap();
    sender.join().unwrap();
    got
}

fn random_bytes(n: usize, seed: u64) -> Arc<Vec<u8>> {
    let mut v = vec![0u8; n];
    ChaCha8Rng::seed_from_u64(seed).fill(&mut v[..]);
    Arc::new(v)
}

#[test]
fn kernel_tcp_carries_10_mb_intact_through_0_5_and_20_percent_loss() {
    let data = random_bytes(10_000_000, 1);
    for (tag, loss) in [("t0", 0.0), ("t5", 0.05), ("t20", 0.20)] {
        let mut cfg = LinkConfig::new(&name(tag));
        cfg.rules.up.loss = p(loss);
        cfg.rules.down.loss = p(loss);
        cfg.seed = 3;
        let Some(link) = link::start_or_skip(cfg) else {
            return;
        };
        let got = tcp_transfer(&link, true, &data);
        assert!(
            got == *data,
            "{loss}: {} bytes arrived, not the same",
            got.len()
        );
        let s = link.shutdown().unwrap();
        // Real packets: never above the MTU (no offload super-packets).
        assert!(s.largest <= 1500 && s.largest >= 1400, "{s}");
        assert_eq!(s.over_mtu, 0, "{s}");
        if loss > 0.0 {
            assert!(s.dirs.up.dropped_loss > 0, "{s}");
        } else {
            assert_eq!(s.dirs.up.dropped_loss + s.dirs.down.dropped_loss, 0);
        }
    }
}

#[test]
fn ipv6_carries_kernel_tcp_too() {
    let Some(link) = link::start_or_skip(LinkConfig::new(&name("v6"))) else {
        return;
    };
    let data = random_bytes(1_000_000, 2);
    assert!(tcp_transfer(&link, false, &data) == *data);
    let s = link.shutdown().unwrap();
    assert!(s.dirs.up.seen > 0);
}

/// A UDP receiver in b counting numbered datagrams; returns the indices seen
/// in arrival order, and the arrival time of each.
struct Receiver {
    to: SocketAddr,
    count: Arc<AtomicU64>,
    /// Set when nothing more will be sent.
    done: Arc<AtomicBool>,
    handle: thread::JoinHandle<Vec<(u32, Instant)>>,
}

fn receiver(link: &Link, expect: u32) -> Receiver {
    let sock = udp_in(link, Side::B);
    let to = sock.local_addr().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let (c, d) = (Arc::clone(&count), Arc::clone(&done));
    let handle = thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 65536];
        let started = Instant::now();
        while seen.len() < expect as usize && started.elapsed() < BOUND {
            match sock.recv(&mut buf) {
                Ok(n) if n >= 4 => {
                    let i = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    seen.push((i, Instant::now()));
                    c.fetch_add(1, Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(_) => {
                    // Quiet for a while: done if the sender has finished.
                    if d.load(Ordering::SeqCst) {
                        break;
                    }
                }
            }
        }
        seen
    });
    Receiver {
        to,
        count,
        done,
        handle,
    }
}

/// Sends `n` numbered datagrams of `size` bytes from a, `window` at a time:
/// each window waits until every datagram sent so far has arrived or been
/// dropped by the link (so the receiver's buffer never overflows and every
/// loss is the link's). Returns the indices received, in arrival order.
fn udp_numbered(link: &Link, n: u32, size: usize, window: u32) -> Vec<(u32, Instant)> {
    let rx = receiver(link, n);
    let sock = udp_in(link, Side::A);
    let mut payload = vec![0u8; size.max(4)];
    let deadline = Instant::now() + BOUND;
    for i in 0..n {
        payload[..4].copy_from_slice(&i.to_be_bytes());
        sock.send_to(&payload, rx.to).unwrap();
        if (i + 1) % window == 0 || i + 1 == n {
            let sent = u64::from(i + 1);
            loop {
                let s = link.summary();
                let dropped = s.dirs.up.dropped_loss + s.dirs.up.dropped_queue;
                // Duplicates count twice on arrival; waiting for at least the
                // sent count is enough.
                if rx.count.load(Ordering::SeqCst) + dropped >= sent {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "datagrams lost outside the link: {s}"
                );
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
    rx.done.store(true, Ordering::SeqCst);
    rx.handle.join().unwrap()
}

#[test]
fn measured_loss_matches_the_asked_share_over_10000_datagrams() {
    let mut cfg = LinkConfig::new(&name("ls")).ipv4_only();
    cfg.rules.up.loss = p(0.10);
    cfg.seed = 11;
    let Some(link) = link::start_or_skip(cfg) else {
        return;
    };
    let got = udp_numbered(&link, 10_000, 64, 100);
    let s = link.shutdown().unwrap();
    let received = got.len() as u64;
    let lost = 10_000 - received;
    // Binomial(10000, 0.1): sd 30; five of them either way.
    assert!((850..=1150).contains(&lost), "{lost} lost of 10000");
    assert_eq!(
        s.dirs.up.dropped_loss, lost,
        "every loss is the link's: {s}"
    );
    assert_eq!(s.dirs.up.seen, 10_000, "only our datagrams crossed: {s}");
}

#[test]
fn the_same_seed_on_the_same_traffic_drops_the_same_packets() {
    let run = |tag: &str, seed: u64| -> Option<BTreeSet<u32>> {
        let mut cfg = LinkConfig::new(&name(tag)).ipv4_only();
        cfg.rules.up.loss = p(0.2);
        cfg.seed = seed;
        let link = link::start_or_skip(cfg)?;
        let got = udp_numbered(&link, 2000, 32, 50);
        link.shutdown().unwrap();
        Some(got.into_iter().map(|(i, _)| i).collect())
    };
    let Some(first) = run("s1", 7) else { return };
    let second = run("s2", 7).unwrap();
    let other = run("s3", 8).unwrap();
    assert!(first.len() < 2000 && first.len() > 1400, "{}", first.len());
    assert_eq!(first, second, "same seed, same traffic: same drops");
    assert_ne!(first, other, "another seed drops others");
}

#[test]
fn reordering_is_seen_by_a_udp_receiver() {
    let mut cfg = LinkConfig::new(&name("ro")).ipv4_only();
    cfg.rules.up.reorder = p(0.25);
    cfg.seed = 5;
    let Some(link) = link::start_or_skip(cfg) else {
        return;
    };
    let got = udp_numbered(&link, 500, 64, 50);
    let s = link.shutdown().unwrap();
    assert_eq!(got.len(), 500, "nothing lost: {s}");
    let inversions = got.windows(2).filter(|w| w[1].0 < w[0].0).count();
    assert!(
        inversions > 0,
        "the receiver saw every datagram in order: {s}"
    );
    assert!(s.dirs.up.reordered > 0);
}

#[test]
fn a_20_ms_delay_shows_in_the_tcp_handshake() {
    let mut cfg = LinkConfig::new(&name("dl"));
    cfg.rules = impair::PerDir::both(impair::UdpRules {
        delay: Duration::from_millis(20),
        ..impair::UdpRules::default()
    });
    let Some(link) = link::start_or_skip(cfg) else {
        return;
    };
    let listener = listener_in(&link, true);
    let to = listener.local_addr().unwrap();
    let took = link
        .in_namespace(Side::A, || {
            let t = Instant::now();
            let c = TcpStream::connect_timeout(&to, Duration::from_secs(10));
            (t.elapsed(), c.is_ok())
        })
        .unwrap();
    assert!(took.1, "connected");
    // SYN a→b and SYN-ACK b→a each wait 20 ms: connect cannot return sooner.
    assert!(took.0 >= Duration::from_millis(40), "{:?}", took.0);
    let s = link.shutdown().unwrap();
    assert!(s.dirs.up.delayed > 0 && s.dirs.down.delayed > 0, "{s}");
}

#[test]
fn the_rate_limit_holds_within_10_percent() {
    const RATE: u64 = 500_000;
    const IP_BYTES: usize = 1400;
    let mut cfg = LinkConfig::new(&name("rt")).ipv4_only();
    cfg.rules.up.rate = Some(RATE);
    cfg.rules.up.queue = 10_000;
    let Some(link) = link::start_or_skip(cfg) else {
        return;
    };
    // 1000 datagrams, 100 at a time (far faster than the rate); 1400 bytes
    // each on the wire (IPv4 20 + UDP 8 headers), paced by the link to RATE.
    let got = udp_numbered(&link, 1000, IP_BYTES - 28, 100);
    let s = link.shutdown().unwrap();
    assert_eq!(got.len(), 1000, "{s}");
    let span = got[got.len() - 1].1 - got[0].1;
    let measured = (got.len() - 1) as f64 * IP_BYTES as f64 / span.as_secs_f64();
    let ratio = measured / RATE as f64;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "{measured:.0} B/s against {RATE}"
    );
}

#[test]
fn a_full_queue_drops_at_the_tail_and_counts() {
    let mut cfg = LinkConfig::new(&name("qd")).ipv4_only();
    cfg.rules.up.rate = Some(100_000);
    cfg.rules.up.queue = 20;
    let Some(link) = link::start_or_skip(cfg) else {
        return;
    };
    let rx = receiver(&link, 200);
    let sock = udp_in(&link, Side::A);
    for i in 0u32..200 {
        let mut d = vec![0u8; 972];
        d[..4].copy_from_slice(&i.to_be_bytes());
        sock.send_to(&d, rx.to).unwrap();
    }
    // Wait until everything sent is accounted for.
    let deadline = Instant::now() + BOUND;
    loop {
        let s = link.summary();
        if s.dirs.up.seen == 200 && s.dirs.up.delivered + s.dirs.up.dropped_queue == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "{s}");
        thread::sleep(Duration::from_millis(5));
    }
    rx.done.store(true, Ordering::SeqCst);
    let got = rx.handle.join().unwrap();
    let s = link.shutdown().unwrap();
    assert!(s.dirs.up.dropped_queue > 0, "{s}");
    // The first ones are kept, the late ones dropped: tail drop.
    assert!(got.iter().any(|(i, _)| *i == 0));
    assert_eq!(got.len() as u64, s.dirs.up.delivered, "{s}");
}

#[test]
fn big_datagrams_cross_whole_and_no_packet_exceeds_the_mtu() {
    for (tag, mtu) in [("m1", 1280u32), ("m9", 9000)] {
        let mut cfg = LinkConfig::new(&name(tag));
        cfg.mtu = mtu;
        let Some(link) = link::start_or_skip(cfg) else {
            return;
        };
        let rx = udp_in(&link, Side::B);
        rx.set_read_timeout(Some(BOUND)).unwrap();
        let tx = udp_in(&link, Side::A);
        let data = random_bytes(8000, 9);
        tx.send_to(&data, rx.local_addr().unwrap()).unwrap();
        let mut buf = vec![0u8; 65536];
        let n = rx.recv(&mut buf).unwrap();
        assert!(
            buf[..n] == data[..],
            "mtu {mtu}: the datagram arrived changed"
        );
        let s = link.shutdown().unwrap();
        assert_eq!(s.over_mtu, 0, "{s}");
        assert!(s.largest <= u64::from(mtu), "{s}");
        if mtu == 9000 {
            assert_eq!(s.largest, 8028, "one packet, not fragments: {s}");
        } else {
            assert!(s.dirs.up.seen >= 7, "fragments: {s}");
        }
    }
}

/// A train of datagrams sent with UDP segmentation offload (one `sendmsg`,
/// `UDP_SEGMENT`) reaches the link whole; the link judges each datagram on
/// its own (the 3rd and 7th are dropped) and the rest arrive intact, one
/// datagram each, joined again for the receiving device.
#[test]
fn a_udp_train_is_judged_datagram_by_datagram() {
    use nix::sys::socket::{self, ControlMessage, MsgFlags, SockaddrStorage};
    use std::os::fd::AsRawFd as _;
    let mut cfg = LinkConfig::new(&name("gs"));
    cfg.rules.up.drop_nth = vec![3, 7];
    let Some(link) = link::start_or_skip(cfg) else {
        return;
    };
    let rx = udp_in(&link, Side::B);
    rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let tx = udp_in(&link, Side::A);
    let data = random_bytes(10 * 1_000, 11);
    let size = 1_000u16;
    let to = SockaddrStorage::from(rx.local_addr().unwrap());
    socket::sendmsg(
        tx.as_raw_fd(),
        &[std::io::IoSlice::new(&data)],
        &[ControlMessage::UdpGsoSegments(&size)],
        MsgFlags::empty(),
        Some(&to),
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while let Ok(n) = rx.recv(&mut buf) {
        got.push(buf[..n].to_vec());
        if got.len() == 8 {
            break;
        }
    }
    let expect: Vec<Vec<u8>> = data
        .chunks(1_000)
        .enumerate()
        .filter(|(i, _)| ![2, 6].contains(i))
        .map(|(_, d)| d.to_vec())
        .collect();
    assert_eq!(got.len(), 8, "eight of ten datagrams");
    assert!(got == expect, "the survivors arrive intact and in order");
    let s = link.shutdown().unwrap();
    assert_eq!((s.dirs.up.seen, s.dirs.up.delivered), (10, 8), "{s}");
    assert_eq!(s.over_mtu, 0, "{s}");
}

#[test]
fn namespaces_and_devices_are_gone_after_shutdown_and_after_drop() {
    let n = name("gn");
    let Some(link) = link::start_or_skip(LinkConfig::new(&n)) else {
        return;
    };
    let (a, b) = (link.namespace(Side::A), link.namespace(Side::B));
    assert!(link::namespace_exists(&a) && link::namespace_exists(&b));
    // A process left running inside is stopped, not left behind.
    let mut child = link.command(Side::B, "sleep").arg("600").spawn().unwrap();
    link.shutdown().unwrap();
    assert!(!link::namespace_exists(&a) && !link::namespace_exists(&b));
    let status = child.wait().unwrap();
    assert!(!status.success(), "sleep was stopped: {status}");

    let link = link::start_or_skip(LinkConfig::new(&n)).unwrap();
    drop(link);
    assert!(!link::namespace_exists(&a) && !link::namespace_exists(&b));
}

#[test]
fn bad_values_are_refused_before_anything_is_made() {
    let mut cfg = LinkConfig::new("bad name");
    assert!(Link::start(cfg.clone()).is_err());
    cfg.name = name("bd");
    cfg.mtu = 100;
    let e = Link::start(cfg.clone()).unwrap_err().to_string();
    assert!(e.contains("mtu"), "{e}");
    assert!(!link::namespace_exists(&cfg.namespace(Side::A)));
}

#[test]
fn in_namespace_sockets_see_only_their_namespace() {
    let Some(link) = link::start_or_skip(LinkConfig::new(&name("ns"))) else {
        return;
    };
    // a's address exists in a, not in b.
    let a_ip: IpAddr = link.addr(Side::A, true).unwrap();
    let in_a = link
        .in_namespace(Side::A, || UdpSocket::bind((a_ip, 0)).is_ok())
        .unwrap();
    let in_b = link
        .in_namespace(Side::B, || UdpSocket::bind((a_ip, 0)).is_ok())
        .unwrap();
    assert!(in_a && !in_b);
    link.shutdown().unwrap();
}

#[test]
fn corrupted_packets_are_caught_by_the_receivers_checksum() {
    let mut cfg = LinkConfig::new(&name("cr"));
    cfg.rules = impair::PerDir::both(impair::UdpRules {
        corrupt: p(0.02),
        ..impair::UdpRules::default()
    });
    cfg.seed = 4;
    let Some(link) = link::start_or_skip(cfg) else {
        return;
    };
    let data = random_bytes(3_000_000, 5);
    let got = tcp_transfer(&link, true, &data);
    let s = link.shutdown().unwrap();
    assert!(s.dirs.up.corrupted > 10, "{s}");
    assert!(got == *data, "a corrupted segment reached the application");
}

#[test]
fn drop_nth_drop_match_and_duplication_act_on_the_packets_of_their_direction() {
    let mut cfg = LinkConfig::new(&name("nm")).ipv4_only();
    cfg.rules.up.drop_nth = vec![3];
    cfg.rules.up.drop_match = Some(b"DROPME".to_vec());
    cfg.rules.up.duplicate = p(1.0);
    let Some(link) = link::start_or_skip(cfg) else {
        return;
    };
    let rx = udp_in(&link, Side::B);
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let tx = udp_in(&link, Side::A);
    let to = rx.local_addr().unwrap();
    for i in 1u8..=6 {
        let text = if i == 5 {
            format!("{i} DROPME")
        } else {
            format!("{i} keep")
        };
        tx.send_to(text.as_bytes(), to).unwrap();
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while rx.recv(&mut buf).is_ok() {
        got.push(buf[0] - b'0');
    }
    let s = link.shutdown().unwrap();
    // The 3rd packet a→b and the one holding the pattern are gone; every
    // other arrives twice.
    assert_eq!(got, vec![1, 1, 2, 2, 4, 4, 6, 6], "{s}");
    assert_eq!((s.dirs.up.dropped_nth, s.dirs.up.dropped_match), (1, 1));
}

#[test]
fn a_second_start_of_a_running_link_is_refused_and_harms_nothing() {
    let n = name("tw");
    let Some(first) = link::start_or_skip(LinkConfig::new(&n)) else {
        return;
    };
    let e = Link::start(LinkConfig::new(&n)).unwrap_err().to_string();
    assert!(e.contains("in use by process"), "{e}");
    assert!(
        link::cleanup(&n).is_err(),
        "cleanup refuses a live link too"
    );
    // The first link still works: its namespaces are there and carry traffic.
    assert!(link::namespace_exists(&first.namespace(Side::A)));
    let data = random_bytes(100_000, 3);
    assert!(tcp_transfer(&first, true, &data) == *data);
    first.shutdown().unwrap();
}

#[test]
fn a_namespace_impair_link_did_not_make_is_never_removed() {
    let n = name("fo");
    // Somebody else's namespace with the name our side a would have.
    let foreign = format!("{n}-a");
    let made = std::process::Command::new("ip")
        .args(["netns", "add", &foreign])
        .status();
    if !made.is_ok_and(|s| s.success()) {
        assert!(
            std::env::var_os(link::REQUIRE_ENV).is_none(),
            "cannot make a namespace"
        );
        eprintln!("skipped: cannot make a namespace here");
        return;
    }
    let started = Link::start(LinkConfig::new(&n));
    let cleaned = link::cleanup(&n);
    let still_there = link::namespace_exists(&foreign);
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", &foreign])
        .status();
    let e = started.unwrap_err().to_string();
    assert!(e.contains("no run of impair link made it"), "{e}");
    assert!(cleaned.is_err());
    assert!(still_there, "the foreign namespace was removed");
    assert!(!link::namespace_exists(&format!("{n}-b")));
}
