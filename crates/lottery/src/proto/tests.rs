use super::*;

const SEED_BET: &str = "Agustín Emanuel,Zambrano,21689196,2000-05-10,9325";

fn seed_message() -> Vec<u8> {
    let mut m = vec![0x02, 0x05, 0x00, 0x00, 0x00, 0x32];
    m.extend_from_slice(SEED_BET.as_bytes());
    m
}

fn decode_all(codec: &mut ServerCodec, buf: &mut BytesMut) -> Vec<Incoming> {
    std::iter::from_fn(|| codec.decode(buf).unwrap()).collect()
}

fn bet(numero: u16) -> Bet {
    Bet::parse(&format!(
        "Ana,Pérez,{:08},1990-01-0{},{numero}",
        u32::from(numero) * 7,
        numero % 9 + 1
    ))
    .unwrap()
}

#[test]
fn seed_compatibility_bytes() {
    let m = seed_message();
    assert_eq!(m.len(), 6 + 50);
    let got = decode_all(&mut ServerCodec, &mut BytesMut::from(&m[..]));
    assert_eq!(
        got,
        vec![Incoming::Request(Request::Bets {
            agency: 5,
            first: None,
            last: true,
            bets: vec![Bet::parse(SEED_BET).unwrap()],
        })]
    );
    let mut out = BytesMut::new();
    encode_response(&Response::BetProcessed, &mut out);
    assert_eq!(&out[..], &[0x01, 0, 0, 0, 0]);
    // And our client encodes the same request to the same bytes.
    let mut enc = BytesMut::new();
    encode_request(
        &Request::Bets {
            agency: 5,
            first: None,
            last: true,
            bets: vec![Bet::parse(SEED_BET).unwrap()],
        },
        &mut enc,
    );
    assert_eq!(&enc[..], &m[..]);
}

#[test]
fn one_byte_at_a_time_and_ten_in_one_buffer() {
    let mut all = Vec::new();
    for i in 0..10u32 {
        let r = Request::Bets {
            agency: 3,
            first: Some(i * 2),
            last: i == 9,
            bets: vec![bet(i as u16), bet(7574)],
        };
        let mut b = BytesMut::new();
        encode_request(&r, &mut b);
        all.extend_from_slice(&b);
    }
    let whole = decode_all(&mut ServerCodec, &mut BytesMut::from(&all[..]));
    assert_eq!(whole.len(), 10);
    let mut codec = ServerCodec;
    let mut buf = BytesMut::new();
    let mut trickled = Vec::new();
    for b in &all {
        buf.put_u8(*b);
        trickled.extend(decode_all(&mut codec, &mut buf));
    }
    assert_eq!(trickled, whole);
    assert!(buf.is_empty());
}

#[test]
fn oversized_length_is_refused_from_the_header_alone() {
    let mut buf = BytesMut::from(&[req::SEND_BET, 1, 0, 0, 0x20, 0x00][..]);
    match ServerCodec.decode(&mut buf) {
        Err(Error::Net(netkit::Error::TooLong {
            announced: 8192,
            max: 8186,
            ..
        })) => {}
        other => panic!("{other:?}"),
    }
    // The largest legal payload is fine.
    let mut ok = BytesMut::from(&[req::SEND_BET, 1, 0, 0, 0x1f, 0xfa][..]);
    assert!(
        ServerCodec.decode(&mut ok).unwrap().is_none(),
        "waits for 8186 bytes"
    );
    assert!(
        ok.capacity() <= MAX_MESSAGE + 64,
        "reserves at most one message"
    );
}

#[test]
fn malformed_bet_rejects_the_batch_naming_the_bet() {
    let payload = format!("{}\0Ana,Pérez,1,1990-01-01,99999", bet(1));
    match decode_request(req::SEND_BET, 2, payload.as_bytes()).unwrap() {
        Incoming::Rejected { agency: 2, reason } => {
            assert!(
                reason.starts_with("bet 2 of the batch: numero \"99999\""),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    match decode_request(req::SEND_LAST_BET, 2, b"A\xff,B,1,2000-01-01,5").unwrap() {
        Incoming::Rejected { reason, .. } => assert!(reason.contains("UTF-8"), "{reason}"),
        other @ Incoming::Request(_) => panic!("{other:?}"),
    }
}

#[test]
fn structural_errors_are_fatal() {
    assert!(matches!(
        decode_request(9, 1, b""),
        Err(Error::UnknownCode { code: 9, .. })
    ));
    assert!(matches!(
        decode_request(req::SEND_BATCH, 1, b"\0\0"),
        Err(Error::Malformed { .. })
    ));
    assert!(matches!(
        decode_request(req::SEND_BATCH, 1, b"\0\0\0\x01\x02"),
        Err(Error::Malformed { .. })
    ));
    assert!(matches!(
        decode_request(req::ASK_WINNERS, 1, b"x"),
        Err(Error::Malformed { .. })
    ));
}

#[test]
fn empty_payload_and_trailing_nul() {
    assert_eq!(parse_bets(b"").unwrap(), vec![]);
    let one = format!("{}\0", bet(5));
    assert_eq!(parse_bets(one.as_bytes()).unwrap().len(), 1);
    assert!(parse_bets(format!("{}\0\0", bet(5)).as_bytes()).is_err());
}

#[test]
fn eof_mid_message_is_an_error_and_clean_eof_is_not() {
    let m = seed_message();
    let mut buf = BytesMut::from(&m[..20]);
    assert!(matches!(
        ServerCodec.decode_eof(&mut buf),
        Err(Error::Net(netkit::Error::UnexpectedEof {
            part: "payload",
            got: 20,
            expected: 56
        }))
    ));
    assert!(
        ServerCodec
            .decode_eof(&mut BytesMut::new())
            .unwrap()
            .is_none()
    );
}

#[test]
fn winners_split_into_parts_that_fit() {
    let many: Vec<String> = (0..3000).map(|i| format!("{i:08}")).collect();
    let parts = winners_parts(&many);
    assert!(parts.len() > 1);
    let mut back = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let mut b = BytesMut::new();
        encode_response(p, &mut b);
        assert!(b.len() <= MAX_MESSAGE);
        match ClientCodec.decode(&mut b).unwrap().unwrap() {
            Response::Winners { documentos, more } => {
                assert_eq!(more, i + 1 < parts.len());
                back.extend(documentos);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(back, many);
    assert_eq!(
        winners_parts(&[]),
        vec![Response::Winners {
            documentos: vec![],
            more: false
        }]
    );
}

#[test]
fn responses_round_trip() {
    for r in [
        Response::BetProcessed,
        Response::Error("bet 3 of the batch: numero \"x\" is not a number".into()),
        Response::Winners {
            documentos: vec!["01".into(), "02".into()],
            more: false,
        },
    ] {
        let mut b = BytesMut::new();
        encode_response(&r, &mut b);
        assert_eq!(ClientCodec.decode(&mut b).unwrap().unwrap(), r);
        assert!(b.is_empty());
    }
    let long = "é".repeat(5000);
    let mut b = BytesMut::new();
    encode_response(&Response::Error(long), &mut b);
    assert!(b.len() <= MAX_MESSAGE, "error text cut to one message");
    assert!(matches!(
        ClientCodec.decode(&mut b).unwrap().unwrap(),
        Response::Error(_)
    ));
}

proptest::proptest! {
    #[test]
    fn decoder_never_panics_and_never_overreads(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let mut buf = BytesMut::from(&data[..]);
        let before = buf.len();
        let _ = ServerCodec.decode(&mut buf);
        proptest::prop_assert!(buf.len() <= before);
        let mut buf = BytesMut::from(&data[..]);
        let _ = ClientCodec.decode(&mut buf);
    }

    #[test]
    fn requests_round_trip(agency in 1u8..=255, first in proptest::option::of(0u32..1000), last: bool, numeros in proptest::collection::vec(0u16..=9999, 0..20), wait in proptest::option::of(proptest::num::u32::ANY)) {
        let bets: Vec<Bet> = numeros.into_iter().map(bet).collect();
        for r in [
            Request::Bets { agency, first, last, bets },
            Request::AskWinners { agency, wait_ms: wait },
            Request::Resume { agency },
        ] {
            let mut b = BytesMut::new();
            encode_request(&r, &mut b);
            let got = ServerCodec.decode(&mut b).unwrap().unwrap();
            proptest::prop_assert_eq!(got, Incoming::Request(r));
            proptest::prop_assert!(b.is_empty());
        }
    }

    #[test]
    fn new_responses_round_trip(done: u16, expected: u16, next: u32, digest: u64, fin: bool) {
        for r in [
            Response::NotYet { done, expected },
            Response::Progress { next, digest, done: fin },
            Response::AgencyTaken(format!("agency {done} is already connected")),
            Response::Unavailable(format!("cannot reach PostgreSQL ({done})")),
        ] {
            let mut b = BytesMut::new();
            encode_response(&r, &mut b);
            proptest::prop_assert_eq!(ClientCodec.decode(&mut b).unwrap().unwrap(), r);
            proptest::prop_assert!(b.is_empty());
        }
    }
}

#[test]
fn new_message_layouts_byte_for_byte() {
    let mut b = BytesMut::new();
    encode_request(
        &Request::AskWinners {
            agency: 2,
            wait_ms: Some(1500),
        },
        &mut b,
    );
    assert_eq!(&b[..], &[4, 2, 0, 0, 0, 4, 0, 0, 0x05, 0xdc]);
    let mut b = BytesMut::new();
    encode_request(&Request::Resume { agency: 9 }, &mut b);
    assert_eq!(&b[..], &[5, 9, 0, 0, 0, 0]);
    let mut b = BytesMut::new();
    encode_response(
        &Response::NotYet {
            done: 3,
            expected: 5,
        },
        &mut b,
    );
    assert_eq!(&b[..], &[5, 0, 0, 0, 4, 0, 3, 0, 5]);
    let mut b = BytesMut::new();
    encode_response(
        &Response::Progress {
            next: 300,
            digest: 0x0102_0304_0506_0708,
            done: true,
        },
        &mut b,
    );
    assert_eq!(
        &b[..],
        &[6, 0, 0, 0, 13, 0, 0, 1, 44, 1, 2, 3, 4, 5, 6, 7, 8, 1]
    );
}

#[test]
fn malformed_new_messages_are_refused_naming_the_field() {
    for (code, payload, what) in [
        (req::ASK_WINNERS, &[0u8, 1][..], "ASK_WINNERS"),
        (req::RESUME, &[0u8][..], "RESUME"),
    ] {
        let err = decode_request(code, 1, payload).unwrap_err();
        assert!(err.to_string().contains(what), "{err}");
    }
    for (code, payload, what) in [
        (resp::NOT_YET, &[0u8, 1, 2][..], "NOT_YET"),
        (resp::PROGRESS, &[0u8; 12][..], "PROGRESS"),
        (
            resp::PROGRESS,
            &[0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2][..],
            "flags",
        ),
    ] {
        let err = decode_response(code, payload).unwrap_err();
        assert!(err.to_string().contains(what), "{err}");
    }
}
