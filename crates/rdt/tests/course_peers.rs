#![allow(clippy::unwrap_used)]
//! The variants of other course implementations we accept (spec: "be liberal
//! in what you accept"), played byte for byte against one connection core: a
//! handshake ACK that does not consume a number, and a four-segment close.
//! (Every reading of `dialect.rs` is played in `tests/dialects.rs`.)

use std::time::{Duration, Instant};

use rdt::conn::{Connection, Output};
use rdt::{Config, DialectChoice, Ending, Format, Read, Reading, State};

/// The seed's reading, forced: one ACK per segment, the seed's numbers.
fn seed() -> Config {
    Config {
        dialect: DialectChoice::Forced(Reading::SEED),
        ..Config::default()
    }
}

/// Everything the core sent, as course datagrams.
fn sent(conn: &mut Connection) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(o) = conn.poll_output() {
        if let Output::Transmit(seg) = o {
            let mut bytes = Vec::new();
            Format::Course.encode(&seg, &mut bytes);
            out.push(String::from_utf8(bytes).unwrap());
        }
    }
    out
}

fn peer(conn: &mut Connection, now: Instant, datagram: &str) {
    conn.handle_segment(now, Format::Course.decode(datagram.as_bytes()).unwrap());
}

#[test]
fn a_peer_whose_handshake_ack_consumes_nothing_sends_data_from_x_plus_1() {
    let t0 = Instant::now();
    let syn = Format::Course.decode(b"1|||0|||0|||40|||").unwrap();
    let mut server = Connection::accept(Config::default(), t0, &syn, rdt::Seq(0));
    assert_eq!(sent(&mut server), ["1|||1|||0|||41|||"]);
    peer(&mut server, t0, "0|||1|||0|||41|||");
    assert_eq!(server.state(), State::Established);
    // Until the unit is settled each segment gets one ACK per reading still
    // possible, the seed's first.
    peer(&mut server, t0, "0|||0|||0|||41|||3");
    assert_eq!(sent(&mut server)[0], "0|||1|||0|||42|||");
    peer(&mut server, t0, "0|||0|||0|||42|||abc");
    assert_eq!(sent(&mut server)[0], "0|||1|||0|||45|||");
    assert_eq!(server.read(10).unwrap(), Read::Data(b"abc".to_vec()));
    // Three bytes advanced the number by three: bytes. One ACK from now on.
    // (the next message's length segment)
    peer(&mut server, t0, "0|||0|||0|||45|||2");
    assert_eq!(sent(&mut server), ["0|||1|||0|||46|||"]);
}

#[test]
fn a_peer_that_answers_our_fin_with_an_ack_then_its_own_fin() {
    let t0 = Instant::now();
    let mut client = Connection::connect(seed(), t0, rdt::Seq(10));
    assert_eq!(sent(&mut client), ["1|||0|||0|||10|||"]);
    peer(&mut client, t0, "1|||1|||0|||11|||");
    assert_eq!(sent(&mut client), ["0|||1|||0|||12|||"]);
    client.close(t0);
    assert_eq!(sent(&mut client), ["0|||0|||1|||12|||"]);
    // Four-segment close: a plain ACK of our FIN ...
    peer(&mut client, t0, "0|||1|||0|||13|||");
    assert_eq!(client.state(), State::FinWait2);
    assert!(sent(&mut client).is_empty());
    // ... then the peer's FIN, numbered on from there, answered with the final ACK.
    peer(
        &mut client,
        t0 + Duration::from_millis(10),
        "0|||0|||1|||13|||",
    );
    assert_eq!(client.state(), State::TimeWait);
    assert_eq!(sent(&mut client), ["0|||1|||0|||14|||"]);
    let timeout = client.config().timeout;
    client.handle_timeout(t0 + Duration::from_millis(10) + timeout);
    client.handle_timeout(t0 + Duration::from_millis(10) + timeout * 2);
    assert_eq!(
        sent(&mut client),
        ["0|||1|||0|||14|||", "0|||1|||0|||14|||"]
    );
    assert_eq!(client.ending(), Some(Ending::Graceful));
}

/// The receive buffer is bounded: data past `recv_buffer` that the
/// application has not read is left unacknowledged (the sender will resend
/// it), and taken once the application has read.
#[test]
fn data_past_the_receive_buffer_waits_for_the_application() {
    let t0 = Instant::now();
    let cfg = Config {
        recv_buffer: 8,
        ..seed()
    };
    let syn = Format::Course.decode(b"1|||0|||0|||0|||").unwrap();
    let mut server = Connection::accept(cfg, t0, &syn, rdt::Seq(0));
    sent(&mut server);
    peer(&mut server, t0, "0|||1|||0|||2|||");
    peer(&mut server, t0, "0|||0|||0|||2|||12");
    assert_eq!(sent(&mut server), ["0|||1|||0|||4|||"]);
    peer(&mut server, t0, "0|||0|||0|||4|||abcdefgh");
    assert_eq!(sent(&mut server), ["0|||1|||0|||12|||"]);
    // Eight bytes held, none read: four more do not fit.
    peer(&mut server, t0, "0|||0|||0|||12|||ijkl");
    assert!(sent(&mut server).is_empty(), "not acknowledged");
    assert_eq!(server.read(8).unwrap(), Read::Data(b"abcdefgh".to_vec()));
    // The sender's retransmission is taken now.
    peer(&mut server, t0, "0|||0|||0|||12|||ijkl");
    assert_eq!(sent(&mut server), ["0|||1|||0|||16|||"]);
    assert_eq!(server.read(8).unwrap(), Read::Data(b"ijkl".to_vec()));
}
