#![allow(clippy::unwrap_used)]
//! The windowed modes over real UDP sockets (issue #15): go-back-n and
//! selective repeat through the built-in loss, through `impair udp`, and
//! through an `impair link` between two namespaces (where the machine
//! allows it); go-back-n in the course format with a named reading.

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use impair::link::LinkConfig;
use impair::{PerDir, UdpProxy, UdpProxyConfig, UdpRules};
use netkit::units::Probability;
use rdt::bench::window::{Path, Ready};
use rdt::{CcKind, Config, DialectChoice, Format, Mode, Options, RdtSocket, Reading, RtoChoice};

fn config(format: Format, mode: Mode, cc: CcKind) -> Config {
    Config {
        mode,
        cc,
        rto: RtoChoice::Adaptive,
        window: 32,
        mss: 1_000,
        timeout: Duration::from_millis(20),
        idle_limit: Duration::from_secs(20),
        // The seed's close gives up after 3 lost FINs: at 15% loss each way
        // that ends 2% of runs with a server still waiting. Ten tries here.
        close_timeouts: 10,
        ..Config::new(format)
    }
}

fn file(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
}

/// Serves one client in `server_opts`, sends `data` from a client in
/// `client_opts` to `to(addr)`; returns what the server read and the client's stats.
fn transfer(
    server_opts: Options,
    client_opts: Options,
    data: &[u8],
    to: impl FnOnce(SocketAddr) -> SocketAddr,
) -> (Vec<u8>, rdt::Stats) {
    let mut server = RdtSocket::with_options(server_opts);
    server.bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let served = thread::spawn(move || {
        let (mut conn, _) = server.accept().unwrap();
        let (got, _) = conn.recv_to_end().unwrap();
        got
    });
    let mut client = RdtSocket::with_options(client_opts);
    client.connect(to(addr)).unwrap();
    client.send(data).unwrap();
    let stats = client.stats().unwrap();
    client.close().unwrap();
    (served.join().unwrap(), stats)
}

#[test]
fn both_windowed_modes_move_a_file_through_built_in_loss() {
    let data = file(200_000);
    for mode in [Mode::GoBackN, Mode::SelectiveRepeat] {
        let cfg = config(Format::Binary, mode, CcKind::Reno);
        let client = Options {
            loss: 0.1,
            seed: Some(4),
            ..Options::new(cfg.clone())
        };
        let (got, stats) = transfer(Options::new(cfg), client, &data, |a| a);
        assert!(got == data, "{mode}: {} of {} bytes", got.len(), data.len());
        assert!(stats.retransmissions > 0, "{mode}: the loss was real");
    }
}

#[test]
fn selective_repeat_through_impair_udp() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = file(150_000);
    let cfg = config(Format::Binary, Mode::SelectiveRepeat, CcKind::Cubic);
    let mut proxy = None;
    let (got, stats) = transfer(
        Options::new(cfg.clone()),
        Options::new(cfg),
        &data,
        |server| {
            let mut pc = UdpProxyConfig::new("127.0.0.1:0".parse().unwrap(), server);
            pc.seed = 9;
            pc.rules = PerDir::both(UdpRules {
                loss: Probability::new(0.15).unwrap(),
                ..UdpRules::default()
            });
            let p = rt.block_on(UdpProxy::start(pc)).unwrap();
            let addr = p.local_addr();
            proxy = Some(p);
            addr
        },
    );
    assert!(got == data, "{} of {} bytes", got.len(), data.len());
    assert!(stats.retransmissions > 0);
    let summary = rt.block_on(proxy.unwrap().shutdown());
    assert!(summary.dirs.up.dropped_loss > 0 && summary.dirs.down.dropped_loss > 0);
}

#[test]
fn go_back_n_in_the_course_format_over_loopback() {
    let data = file(30_000);
    let cfg = Config {
        mss: 16,
        window: 8,
        dialect: DialectChoice::Forced(Reading::SEED),
        ..config(Format::Course, Mode::GoBackN, CcKind::None)
    };
    let client = Options {
        loss: 0.05,
        seed: Some(2),
        ..Options::new(cfg.clone())
    };
    let (got, _) = transfer(Options::new(cfg), client, &data, |a| a);
    assert!(got == data, "{} of {} bytes", got.len(), data.len());
}

#[test]
fn selective_repeat_moves_a_file_through_a_lossy_impair_link() {
    let mut lc = LinkConfig::new("rdtwin").ipv4_only();
    lc.rules.up.loss = Probability::new(0.05).unwrap();
    lc.rules.down.loss = Probability::new(0.05).unwrap();
    lc.seed = 3;
    let Some(link) = impair::link::start_or_skip(lc) else {
        return;
    };
    let data = file(2_000_000);
    let cfg = Config {
        mss: 1_400,
        window: 256,
        ..config(Format::Binary, Mode::SelectiveRepeat, CcKind::None)
    };
    let (server_ip, _) = Path::Link(&link).ips();
    let server_cfg = cfg.clone();
    let sent = data.clone();
    let (stats, received) = Path::Link(&link)
        .run_pair(
            move |ready: Ready| {
                let mut l = RdtSocket::with_config(server_cfg);
                l.bind(SocketAddr::new(server_ip, 0))?;
                let _ = ready.send(l.local_addr()?);
                let (mut conn, _) = l.accept()?;
                let (got, _) = conn.recv_to_end()?;
                assert!(
                    got == sent,
                    "{} bytes arrived intact of {}",
                    got.len(),
                    sent.len()
                );
                Ok(got.len())
            },
            move |to| {
                let mut c = RdtSocket::with_config(cfg);
                c.connect(to)?;
                c.send(&data)?;
                let stats = c.stats().unwrap_or_default();
                c.close()?;
                Ok(stats)
            },
        )
        .unwrap();
    assert_eq!(received, 2_000_000);
    assert!(stats.retransmissions > 0);
    let summary = link.shutdown().unwrap();
    let lost = summary.dirs.up.dropped_loss + summary.dirs.down.dropped_loss;
    assert!(lost > 0, "the link lost packets");
}

/// `send_bytes` (segments sliced from the caller's buffer) in Stop & Wait
/// and the windowed modes, in both formats; with 40,000-byte segments the
/// receiver's datagrams keep their read buffers (no copy), and with
/// `recv_into` reading in small pieces many of those buffers are held at
/// once: every byte still arrives, in order.
#[test]
fn owned_messages_and_large_segments_arrive_whole() {
    let data = file(1_500_000);
    for (format, mode, mss) in [
        (Format::Binary, Mode::StopAndWait, 1_400),
        (Format::Course, Mode::StopAndWait, 3_000),
        (Format::Binary, Mode::SelectiveRepeat, 40_000),
        (Format::Course, Mode::GoBackN, 40_000),
    ] {
        let mut cfg = Config {
            mss,
            ..config(format, mode, CcKind::None)
        };
        if format == Format::Course && mode == Mode::GoBackN {
            cfg.dialect = DialectChoice::Forced(Reading::SEED);
        }
        let mut server = RdtSocket::with_options(Options::new(cfg.clone()));
        server.bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let served = thread::spawn(move || {
            let (mut conn, _) = server.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0; 1_000];
            loop {
                match conn.recv_into(&mut buf).unwrap() {
                    0 => break,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
            conn.recv_close().unwrap();
            got
        });
        let mut client = RdtSocket::with_options(Options::new(cfg));
        client.connect(addr).unwrap();
        let message = bytes::Bytes::from(data.clone());
        client.send_bytes(&message).unwrap();
        client.close().unwrap();
        let got = served.join().unwrap();
        assert!(
            got == data,
            "{format} {mode} mss {mss}: {} of {} bytes",
            got.len(),
            data.len()
        );
    }
}
