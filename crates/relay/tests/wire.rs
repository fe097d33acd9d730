//! The relay over real loopback sockets.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use impair::{TcpProxy, TcpProxyConfig, TcpRules};
use netkit::testing::Served;
use relay::client::{ClientConfig, Delivered, run as run_client};
use relay::proto::{Codec, Event, Kind, Message};
use relay::server::{Config, run};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::codec::FramedRead;

const BOUND: Duration = Duration::from_secs(60);

async fn start(config: Config) -> (SocketAddr, Served<()>) {
    let server = Served::bind(|l, shutdown| async move {
        run(l, config, shutdown).await.unwrap();
    })
    .await;
    (server.addr, server)
}

/// A client driven by the test: its lines, and what it saw.
fn client(
    server: String,
    name: &str,
) -> (
    mpsc::Sender<String>,
    tokio::task::JoinHandle<Vec<Delivered>>,
) {
    let (tx, rx) = mpsc::channel(1024);
    let cfg = ClientConfig {
        server,
        name: name.into(),
        attempts: 20,
        state: None,
    };
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        run_client(&cfg, rx, |d| seen.push(d.clone()))
            .await
            .unwrap();
        seen
    });
    (tx, task)
}

/// A raw protocol connection.
struct Raw {
    w: tokio::net::tcp::OwnedWriteHalf,
    r: FramedRead<tokio::net::tcp::OwnedReadHalf, Codec>,
    /// The resume token of the last Welcome.
    token: u128,
    /// The name of the last Welcome.
    name: String,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        Raw {
            w,
            r: FramedRead::new(r, Codec),
            token: 0,
            name: String::new(),
        }
    }
    async fn send(&mut self, m: Message) {
        let mut b = BytesMut::new();
        m.encode(&mut b);
        self.w.write_all(&b).await.unwrap();
    }
    /// The next message, answering pings on the way as a live client does.
    async fn next(&mut self) -> Message {
        loop {
            match timeout(BOUND, self.r.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
            {
                Message::Ping { nonce } => self.send(Message::Pong { nonce }).await,
                m => return m,
            }
        }
    }
    /// Hello as a new client (`id` 0) or, with `token`, a returning one;
    /// returns (client id, next seq).
    async fn hello_as(&mut self, id: u64, token: u128, resume: u64, name: &str) -> (u64, u64) {
        self.send(Message::Hello {
            client_id: id,
            token,
            resume_from: resume,
            name: name.into(),
        })
        .await;
        match self.next().await {
            Message::Welcome {
                client_id,
                token,
                next_seq,
                name,
            } => {
                self.token = token;
                self.name = name;
                (client_id, next_seq)
            }
            m => panic!("{m:?}"),
        }
    }
    /// Hello as a new client.
    async fn hello(&mut self, id: u64, resume: u64, name: &str) -> (u64, u64) {
        assert_eq!(id, 0, "resuming takes the token: hello_as");
        self.hello_as(0, 0, resume, name).await
    }
    /// The server's answer to a hello it refuses.
    async fn refused(&mut self, id: u64, token: u128, resume: u64, name: &str) -> String {
        self.send(Message::Hello {
            client_id: id,
            token,
            resume_from: resume,
            name: name.into(),
        })
        .await;
        match self.next().await {
            Message::Error { text } => text,
            m => panic!("{m:?}"),
        }
    }
    async fn deliver(&mut self) -> (u64, Kind, String, String) {
        match self.next().await {
            Message::Deliver(Event {
                seq,
                kind,
                name,
                text,
                ..
            }) => (seq, kind, name, text),
            m => panic!("{m:?}"),
        }
    }
}

#[tokio::test]
async fn bursts_from_several_clients_are_seen_in_one_order_and_never_merge() {
    // History larger than the whole test: however late the observer joins, it
    // is shown everything from the start.
    let (addr, server) = start(Config {
        history: 10_000,
        ..Config::default()
    })
    .await;
    // One client types through a proxy that coalesces its writes.
    let mut pcfg = TcpProxyConfig::new("127.0.0.1:0".parse().unwrap(), addr);
    pcfg.rules.up = TcpRules::coalesced(Duration::from_millis(50));
    let proxy = TcpProxy::start(pcfg).await.unwrap();
    let (obs_tx, observer) = client(addr.to_string(), "observer");
    let mut senders = Vec::new();
    for (i, server) in [
        addr.to_string(),
        addr.to_string(),
        proxy.local_addr().to_string(),
    ]
    .into_iter()
    .enumerate()
    {
        let (tx, task) = client(server, &format!("c{i}"));
        senders.push((tx, task));
    }
    for (i, (tx, _)) in senders.iter().enumerate() {
        for n in 0..50 {
            tx.send(format!("c{i} line {n}")).await.unwrap();
        }
    }
    let mut views = Vec::new();
    for (tx, task) in senders {
        drop(tx);
        views.push(timeout(BOUND, task).await.unwrap().unwrap());
    }
    // Every sender's lines are sequenced now. The observer's own last line is
    // sequenced after them, and the observer only leaves once it has seen its
    // own line delivered, so it has seen everything before it, in order.
    obs_tx.send("observer done".into()).await.unwrap();
    drop(obs_tx);
    let all = timeout(BOUND, observer).await.unwrap().unwrap();
    let chats: Vec<&Delivered> = all
        .iter()
        .filter(|d| d.kind == Kind::Chat && d.name != "observer")
        .collect();
    assert_eq!(chats.len(), 150, "every line once, none merged");
    for i in 0..3 {
        let mine: Vec<&str> = chats
            .iter()
            .filter(|d| d.name == format!("c{i}"))
            .map(|d| d.text.as_str())
            .collect();
        let want: Vec<String> = (0..50).map(|n| format!("c{i} line {n}")).collect();
        assert_eq!(mine, want, "a sender's lines keep their order");
    }
    // Gap-free, and every client saw the same events under the same numbers.
    for w in all.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1);
    }
    for v in &views {
        for d in v {
            if let Some(o) = all.iter().find(|o| o.seq == d.seq) {
                assert_eq!(o, d, "same number, same event everywhere");
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_late_joiner_gets_the_history() {
    let (addr, server) = start(Config {
        history: 5,
        ..Config::default()
    })
    .await;
    let mut a = Raw::connect(addr).await;
    let (id, _) = a.hello(0, 0, "ana").await;
    for n in 1..=10 {
        a.send(Message::Chat {
            sender_seq: n,
            text: format!("m{n}"),
        })
        .await;
    }
    for _ in 0..11 {
        a.deliver().await;
    }
    let _ = id;
    let mut late = Raw::connect(addr).await;
    late.hello(0, 0, "late").await;
    let mut got = Vec::new();
    for _ in 0..6 {
        got.push(late.deliver().await);
    }
    let texts: Vec<&str> = got.iter().map(|d| d.3.as_str()).collect();
    assert_eq!(
        texts,
        vec!["m6", "m7", "m8", "m9", "m10", ""],
        "the last 5, then its own join"
    );
    assert_eq!(got[5].1, Kind::Join);
    server.stop().await;
}

#[tokio::test]
async fn a_retried_message_is_sequenced_once_and_a_resume_has_no_gap_or_duplicate() {
    let (addr, server) = start(Config::default()).await;
    let mut a = Raw::connect(addr).await;
    let (a_id, _) = a.hello(0, 0, "ana").await;
    assert_eq!(a.deliver().await.0, 1);
    a.send(Message::Chat {
        sender_seq: 1,
        text: "once".into(),
    })
    .await;
    a.send(Message::Chat {
        sender_seq: 1,
        text: "once".into(),
    })
    .await;
    a.send(Message::Chat {
        sender_seq: 2,
        text: "twice?".into(),
    })
    .await;
    assert_eq!(
        a.deliver().await,
        (2, Kind::Chat, "ana".into(), "once".into())
    );
    assert_eq!(
        a.deliver().await,
        (3, Kind::Chat, "ana".into(), "twice?".into())
    );
    // ana vanishes after delivering 3; luis talks meanwhile.
    let a_token = a.token;
    drop(a);
    let mut l = Raw::connect(addr).await;
    l.hello(0, 0, "luis").await;
    l.send(Message::Chat {
        sender_seq: 1,
        text: "while you were away".into(),
    })
    .await;
    let mut a = Raw::connect(addr).await;
    // The resend of an old line after the reconnect is not sequenced again.
    a.hello_as(a_id, a_token, 3, "ana").await;
    a.send(Message::Chat {
        sender_seq: 2,
        text: "twice?".into(),
    })
    .await;
    a.send(Message::Chat {
        sender_seq: 3,
        text: "back".into(),
    })
    .await;
    let mut rest = Vec::new();
    loop {
        let d = a.deliver().await;
        let done = d.3 == "back";
        rest.push(d);
        if done {
            break;
        }
    }
    let seqs: Vec<u64> = rest.iter().map(|d| d.0).collect();
    let want: Vec<u64> = (4..4 + seqs.len() as u64).collect();
    assert_eq!(seqs, want, "no gap, no duplicate: {rest:?}");
    assert!(rest.iter().any(|d| d.3 == "while you were away"));
    assert_eq!(rest.iter().filter(|d| d.3 == "twice?").count(), 0);
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_vanishes_is_detected_by_heartbeat() {
    let (addr, server) = start(Config {
        heartbeat: Duration::from_millis(100),
        ..Config::default()
    })
    .await;
    let mut watcher = Raw::connect(addr).await;
    watcher.hello(0, 0, "watcher").await;
    watcher.deliver().await;
    // A client that says hello and then never speaks again (no FIN either).
    let mut ghost = Raw::connect(addr).await;
    ghost.hello(0, 0, "ghost").await;
    assert_eq!(watcher.deliver().await.1, Kind::Join);
    // The watcher answers pings (in Raw::next); the ghost does not.
    let left = loop {
        let d = watcher.deliver().await;
        if d.1 == Kind::Leave {
            break d;
        }
    };
    assert_eq!(
        (left.2.as_str(), left.3.as_str()),
        ("ghost", "heartbeat timeout")
    );
    drop(ghost);
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_the_others_keep_going() {
    let (addr, server) = start(Config {
        outbox: 64,
        send_buffer: 16 * 1024,
        stall: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(1024).unwrap();
    let (sr, mut sw) = sock.connect(addr).await.unwrap().into_split();
    let mut b = BytesMut::new();
    Message::Hello {
        client_id: 0,
        token: 0,
        resume_from: 0,
        name: "sloth".into(),
    }
    .encode(&mut b);
    sw.write_all(&b).await.unwrap();
    let mut talker = Raw::connect(addr).await;
    talker.hello(0, 0, "talker").await;
    let mut seen = 0;
    let mut cut = false;
    for n in 1..=20_000u64 {
        talker
            .send(Message::Chat {
                sender_seq: n,
                text: format!("line {n} ...................................."),
            })
            .await;
        loop {
            let d = talker.deliver().await;
            if d.1 == Kind::Leave && d.2 == "sloth" {
                assert_eq!(d.3, "too slow");
                cut = true;
                continue;
            }
            if d.1 == Kind::Chat {
                seen += 1;
                break;
            }
        }
        if cut && n > 100 {
            break;
        }
    }
    assert!(cut, "the sloth was never cut off");
    assert!(seen > 100, "the talker kept getting its lines");
    drop(sr);
    server.stop().await;
}

#[tokio::test]
async fn hostile_frames_get_an_error_and_a_close() {
    let (addr, server) = start(Config::default()).await;
    for bytes in [
        vec![0xff, 0xff, 0xff, 0xff],                  // oversized
        vec![0, 0, 0, 2, 2, 99],                       // unknown type
        vec![0, 0, 0, 2, 7, 1],                        // unknown version
        vec![0, 0, 0, 2, 1, 1],                        // version 1 (before resume tokens)
        [&[0, 0, 0, 20, 2, 1][..], &[0; 18]].concat(), // truncated hello
        [&[0, 0, 0, 38, 2, 1][..], &[0; 32], &[0, 2, 0xc3, 0x28]].concat(), // bad UTF-8 name
    ] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        let (r, _w) = s.into_split();
        let mut f = FramedRead::new(r, Codec);
        match timeout(BOUND, f.next()).await.unwrap() {
            Some(Ok(Message::Error { text })) => assert!(!text.is_empty()),
            other => panic!("{bytes:?} -> {other:?}"),
        }
        assert!(
            timeout(BOUND, f.next()).await.unwrap().is_none(),
            "then closed"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_leaves_is_announced_to_the_others() {
    let (addr, server) = start(Config::default()).await;
    let mut stay = Raw::connect(addr).await;
    stay.hello(0, 0, "stay").await;
    stay.deliver().await;
    let mut go = Raw::connect(addr).await;
    go.hello(0, 0, "go").await;
    assert_eq!(stay.deliver().await.1, Kind::Join);
    go.send(Message::Leave).await;
    assert_eq!(
        stay.deliver().await,
        (3, Kind::Leave, "go".into(), "left".into())
    );
    server.stop().await;
}

#[tokio::test]
async fn with_a_log_dir_a_restarted_server_keeps_history_numbers_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || Config {
        log_dir: Some(dir.path().to_path_buf()),
        ..Config::default()
    };
    let (addr, server) = start(cfg()).await;
    let mut a = Raw::connect(addr).await;
    let (id, _) = a.hello(0, 0, "ana").await;
    a.deliver().await;
    a.send(Message::Chat {
        sender_seq: 1,
        text: "before the restart".into(),
    })
    .await;
    assert_eq!(a.deliver().await.0, 2);
    server.stop().await;
    let a_token = a.token;
    drop(a);
    // A new server on the same log.
    let (addr, server) = start(cfg()).await;
    let mut late = Raw::connect(addr).await;
    let (late_id, next) = late.hello(0, 0, "late").await;
    assert!(next > 2, "numbering continues");
    assert_ne!(late_id, id);
    let first = late.deliver().await;
    assert_eq!(
        first,
        (1, Kind::Join, "ana".into(), String::new()),
        "history survived"
    );
    assert_eq!(late.deliver().await.3, "before the restart");
    // ana resumes and resends her line: recognised as already sequenced.
    let mut a = Raw::connect(addr).await;
    a.hello_as(id, a_token, 2, "ana").await;
    a.send(Message::Chat {
        sender_seq: 1,
        text: "before the restart".into(),
    })
    .await;
    a.send(Message::Chat {
        sender_seq: 2,
        text: "after".into(),
    })
    .await;
    loop {
        let d = a.deliver().await;
        assert_ne!(d.3, "before the restart", "not sequenced twice: {d:?}");
        if d.3 == "after" {
            break;
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_client_killed_and_restarted_resumes_with_no_gap_and_no_duplicate() {
    use std::sync::{Arc, Mutex};
    let (addr, server) = start(Config::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ana.state");
    let shown = Arc::new(Mutex::new(Vec::<u64>::new()));
    let spawn_ana = |rx: mpsc::Receiver<String>| {
        let cfg = ClientConfig {
            server: addr.to_string(),
            name: "ana".into(),
            attempts: 20,
            state: Some(state.clone()),
        };
        let shown = shown.clone();
        tokio::spawn(async move {
            run_client(&cfg, rx, |d| shown.lock().unwrap().push(d.seq))
                .await
                .unwrap();
        })
    };
    let (ana_tx, ana_rx) = mpsc::channel(16);
    let ana = spawn_ana(ana_rx);
    let mut bob = Raw::connect(addr).await;
    bob.hello(0, 0, "bob").await;
    for n in 1..=5 {
        bob.send(Message::Chat {
            sender_seq: n,
            text: format!("b{n}"),
        })
        .await;
    }
    // Wait until ana has shown bob's fifth line, then kill her.
    timeout(BOUND, async {
        while shown.lock().unwrap().len() < 7 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    ana.abort();
    let _ = ana.await;
    drop(ana_tx);
    let before = shown.lock().unwrap().clone();
    for n in 6..=10 {
        bob.send(Message::Chat {
            sender_seq: n,
            text: format!("b{n}"),
        })
        .await;
    }
    // A new process: same state file, one line, then done.
    let (tx, rx) = mpsc::channel(16);
    tx.send("ana is back".into()).await.unwrap();
    drop(tx);
    timeout(BOUND, spawn_ana(rx)).await.unwrap().unwrap();
    let all = shown.lock().unwrap().clone();
    let after = &all[before.len()..];
    assert!(!after.is_empty());
    assert_eq!(
        after[0],
        before.last().unwrap() + 1,
        "no gap: {before:?} then {after:?}"
    );
    let mut sorted = all.clone();
    sorted.dedup();
    assert_eq!(sorted, all, "no duplicate");
    assert!(
        all.windows(2).all(|w| w[1] == w[0] + 1),
        "contiguous: {all:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn fast_typing_through_a_one_byte_per_write_link_never_merges_lines() {
    let (addr, server) = start(Config::default()).await;
    let mut pcfg = TcpProxyConfig::new("127.0.0.1:0".parse().unwrap(), addr);
    pcfg.rules.up = TcpRules::chopped(1, Duration::ZERO);
    let proxy = TcpProxy::start(pcfg).await.unwrap();
    let (tx, task) = client(proxy.local_addr().to_string(), "typist");
    for n in 0..30 {
        tx.send(format!("line {n}")).await.unwrap();
    }
    drop(tx);
    let seen = timeout(BOUND, task).await.unwrap().unwrap();
    let lines: Vec<&str> = seen
        .iter()
        .filter(|d| d.kind == Kind::Chat)
        .map(|d| d.text.as_str())
        .collect();
    let want: Vec<String> = (0..30).map(|n| format!("line {n}")).collect();
    assert_eq!(lines, want);
    assert!(
        proxy.summary().dirs.up.writes > 300,
        "the link really was one byte per write"
    );
    server.stop().await;
}

/// A sender as fast as it can go and a client that reads steadily but slowly:
/// the sender is slowed to the reader's pace, and the reader, which keeps up
/// with its share, is never cut off. (It was: "too slow" after 18,690 events
/// from a sender pacing itself just under the cut-off.)
#[tokio::test]
async fn a_fast_sender_is_slowed_and_a_steady_reader_is_never_cut() {
    const LINES: u64 = 20_000;
    let (addr, server) = start(Config {
        outbox: 256,
        send_buffer: 16 * 1024,
        ..Config::default()
    })
    .await;
    // The reader takes 4 KiB at a time with a pause between reads: it
    // always makes progress, far slower than the sender could go.
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock.connect(addr).await.unwrap();
    let (r, mut w) = stream.into_split();
    let mut b = BytesMut::new();
    Message::Hello {
        client_id: 0,
        token: 0,
        resume_from: 0,
        name: "steady".into(),
    }
    .encode(&mut b);
    w.write_all(&b).await.unwrap();
    let reader = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut r = r;
        let mut buf = BytesMut::new();
        let mut chunk = vec![0u8; 4096];
        let (mut chats, mut last_seq) = (0u64, 0u64);
        loop {
            let n = r.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the steady reader was cut off after {chats} chats");
            buf.extend_from_slice(&chunk[..n]);
            while let Some(m) = tokio_util::codec::Decoder::decode(&mut Codec, &mut buf).unwrap() {
                match m {
                    Message::Deliver(Event {
                        seq, kind, text: _, ..
                    }) => {
                        assert!(seq > last_seq, "in order");
                        last_seq = seq;
                        if kind == Kind::Chat {
                            chats += 1;
                            if chats == LINES {
                                return;
                            }
                        }
                    }
                    Message::Error { text } => {
                        panic!("the steady reader got {text:?} after {chats} chats")
                    }
                    Message::Ping { nonce } => {
                        let mut b = BytesMut::new();
                        Message::Pong { nonce }.encode(&mut b);
                        w.write_all(&b).await.unwrap();
                    }
                    _ => {}
                }
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    });
    let mut sender = Raw::connect(addr).await;
    sender.hello(0, 0, "flood").await;
    let mut frames = BytesMut::new();
    for n in 1..=LINES {
        Message::Chat {
            sender_seq: n,
            text: format!("line {n} of the flood ................................"),
        }
        .encode(&mut frames);
    }
    // All of it at once: only backpressure stands between it and the
    // reader. The sender reads what it is sent (its own lines too), as fast
    // as it can, answering pings.
    let Raw {
        w: mut sw,
        r: mut sr,
        ..
    } = sender;
    // (The write half is handed back: dropping it would send FIN.)
    let flood = tokio::spawn(async move {
        sw.write_all(&frames).await.unwrap();
        sw
    });
    let drain = tokio::spawn(async move {
        let mut chats = 0;
        while chats < LINES {
            match sr.next().await {
                Some(Ok(Message::Deliver(Event {
                    kind: Kind::Chat, ..
                }))) => chats += 1,
                Some(Ok(Message::Error { text })) => {
                    panic!("the sender got {text:?} after {chats}")
                }
                Some(Ok(_)) => {}
                other => panic!("the sender's connection: {other:?} after {chats}"),
            }
        }
    });
    timeout(BOUND, reader).await.unwrap().unwrap();
    let _sw = timeout(BOUND, flood).await.unwrap().unwrap();
    timeout(BOUND, drain).await.unwrap().unwrap();
    server.stop().await;
}

/// Identities come from the server: nobody resumes as another client without
/// its token (a resume as an offline client's id replayed its history and
/// let the impostor chat as it), and asking for an id near the top does not
/// wrap the counter onto live clients.
#[tokio::test]
async fn nobody_takes_over_another_clients_identity_and_ids_never_wrap() {
    let (addr, server) = start(Config::default()).await;
    let mut ana = Raw::connect(addr).await;
    let (ana_id, _) = ana.hello(0, 0, "ana").await;
    let ana_token = ana.token;
    assert_ne!(ana_token, 0);
    ana.deliver().await;
    ana.send(Message::Chat {
        sender_seq: 1,
        text: "mine".into(),
    })
    .await;
    ana.deliver().await;
    drop(ana);
    for (id, token) in [
        (ana_id, 0),
        (ana_id, ana_token ^ 1),
        (u64::MAX - 1, 0),
        (12345, 99),
    ] {
        let mut mallory = Raw::connect(addr).await;
        let text = mallory.refused(id, token, 0, "ana").await;
        assert!(text.contains("unknown client id or wrong token"), "{text}");
    }
    // New clients get the next ids, not ones near the top, and the owner
    // still resumes with her token.
    let mut luis = Raw::connect(addr).await;
    let (luis_id, _) = luis.hello(0, 0, "luis").await;
    assert_eq!(luis_id, ana_id + 1);
    let mut back = Raw::connect(addr).await;
    back.hello_as(ana_id, ana_token, 2, "ana").await;
    back.send(Message::Chat {
        sender_seq: 2,
        text: "still me".into(),
    })
    .await;
    loop {
        let d = back.deliver().await;
        if d.1 == Kind::Chat {
            assert_eq!((d.2.as_str(), d.3.as_str()), ("ana", "still me"));
            break;
        }
    }
    server.stop().await;
}

/// Two clients may share a name; the later one is shown marked.
#[tokio::test]
async fn a_second_client_with_a_taken_name_is_shown_marked() {
    let (addr, server) = start(Config::default()).await;
    let mut first = Raw::connect(addr).await;
    first.hello(0, 0, "alice").await;
    assert_eq!(first.name, "alice");
    first.deliver().await;
    let mut second = Raw::connect(addr).await;
    second.hello(0, 0, "alice").await;
    assert_eq!(second.name, "alice#2");
    let join = first.deliver().await;
    assert_eq!((join.1, join.2.as_str()), (Kind::Join, "alice#2"));
    second
        .send(Message::Chat {
            sender_seq: 1,
            text: "hi, I am the other one".into(),
        })
        .await;
    assert_eq!(first.deliver().await.2, "alice#2");
    server.stop().await;
}

/// A client that vanishes without `Leave` no longer pins every event in
/// memory: history is bounded, and on resume it is told where history
/// starts now.
#[tokio::test]
async fn history_is_bounded_and_a_trimmed_resume_is_told_where_it_starts() {
    let (addr, server) = start(Config {
        history: 10,
        history_max_events: 100,
        ..Config::default()
    })
    .await;
    let mut gone = Raw::connect(addr).await;
    let (gone_id, _) = gone.hello(0, 0, "gone").await;
    let gone_token = gone.token;
    assert_eq!(gone.deliver().await.0, 1);
    drop(gone);
    let mut talker = Raw::connect(addr).await;
    talker.hello(0, 0, "talker").await;
    let mut last = 0;
    for n in 1..=1000u64 {
        talker
            .send(Message::Chat {
                sender_seq: n,
                text: format!("line {n}"),
            })
            .await;
    }
    while last < 1000 {
        let d = talker.deliver().await;
        if d.1 == Kind::Chat {
            last += 1;
        }
    }
    let mut back = Raw::connect(addr).await;
    let text = back.refused(gone_id, gone_token, 1, "gone").await;
    assert!(
        text.starts_with("cannot resume: history starts at "),
        "{text}"
    );
    let oldest: u64 = text.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(oldest > 900, "at most 100 events kept: {text}");
    server.stop().await;
}
