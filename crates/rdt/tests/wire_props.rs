#![allow(clippy::unwrap_used)]
//! Property tests for both wire formats and for message reassembly.

use bytes::Bytes;
use proptest::prelude::*;
use std::time::Duration;

use rdt::sim::{Network, Script, Sim};
use rdt::{Config, Flags, Format, Segment, Seq};

fn segment() -> impl Strategy<Value = Segment> {
    (
        any::<[bool; 3]>(),
        any::<u32>(),
        any::<u32>(),
        any::<u16>(),
        prop::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|([syn, ack, fin], seq, ackno, window, data)| Segment {
            flags: Flags { syn, ack, fin },
            seq: Seq(seq),
            ack: Seq(ackno),
            window,
            data: Bytes::from(data),
            ..Segment::default()
        })
}

/// A selective-repeat ACK: no data, 1 to 4 SACK blocks.
fn sack_ack() -> impl Strategy<Value = Segment> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<u16>(),
        prop::collection::vec((any::<u32>(), any::<u32>()), 1..=4),
        any::<bool>(),
    )
        .prop_map(|(seq, ackno, window, blocks, fin)| {
            let mut seg = Segment::ack(Seq(seq), Seq(ackno));
            seg.flags.fin = fin;
            seg.window = window;
            for (a, b) in blocks {
                seg.sack.push(Seq(a), Seq(b));
            }
            seg
        })
}

proptest! {
    #[test]
    fn binary_round_trips_sack_blocks(seg in sack_ack()) {
        let mut out = Vec::new();
        Format::Binary.encode(&seg, &mut out);
        prop_assert_eq!(out.len(), 20 + 8 * seg.sack.len());
        prop_assert_eq!(Format::Binary.decode(&out).unwrap(), seg);
    }

    #[test]
    fn binary_round_trips_every_field(seg in segment()) {
        let mut out = Vec::new();
        Format::Binary.encode(&seg, &mut out);
        prop_assert_eq!(Format::Binary.decode(&out).unwrap(), seg);
    }

    #[test]
    fn course_round_trips_flags_data_and_the_number_its_kind_carries(seg in segment()) {
        let mut out = Vec::new();
        Format::Course.encode(&seg, &mut out);
        let back = Format::Course.decode(&out).unwrap();
        prop_assert_eq!(back.flags, seg.flags);
        prop_assert_eq!(back.wire_len, out.len());
        // After a control header the bytes are filler, not data.
        if seg.flags.syn || seg.flags.ack || seg.flags.fin {
            prop_assert!(back.data.is_empty());
            prop_assert_eq!(&back.filler, &seg.data);
        } else {
            prop_assert_eq!(&back.data, &seg.data);
        }
        let number = if seg.flags.ack && seg.data.is_empty() { seg.ack } else { seg.seq };
        prop_assert_eq!((back.seq, back.ack), (number, number));
    }

    #[test]
    fn arbitrary_datagrams_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Format::Course.decode(&data);
        let _ = Format::Binary.decode(&data);
        let shared = Bytes::from(data);
        let _ = Format::Course.decode_shared(&shared);
        let _ = Format::Binary.decode_shared(&shared);
    }

    /// The header and payload handed to the kernel as two pieces are the
    /// datagram `encode` writes, in both formats, SACK ACKs included; the
    /// payload is the segment's own memory, not a copy.
    #[test]
    fn a_split_encoding_is_the_whole_one(seg in segment(), ack in sack_ack()) {
        for format in [Format::Course, Format::Binary] {
            for seg in [&seg, &ack] {
                let mut whole = Vec::new();
                format.encode(seg, &mut whole);
                let mut head = Vec::new();
                let payload = format.encode_split(seg, &mut head);
                head.extend_from_slice(&payload);
                prop_assert_eq!(&head, &whole);
                if !seg.data.is_empty() && seg.sack.is_empty() {
                    prop_assert_eq!(payload.as_ptr(), seg.data.as_ptr());
                }
            }
        }
    }

    /// Decoding a datagram in a buffer of its own gives the same segment as
    /// decoding a borrowed copy, its payload a slice of that buffer.
    #[test]
    fn a_shared_decoding_is_the_borrowed_one(seg in segment(), ack in sack_ack()) {
        for format in [Format::Course, Format::Binary] {
            for seg in [&seg, &ack] {
                let mut out = Vec::new();
                format.encode(seg, &mut out);
                let shared = Bytes::from(out.clone());
                let from_shared = format.decode_shared(&shared).unwrap();
                prop_assert_eq!(&from_shared, &format.decode(&out).unwrap());
                let body = if from_shared.data.is_empty() { &from_shared.filler } else { &from_shared.data };
                if !body.is_empty() {
                    let inside = shared.as_ptr_range().contains(&body.as_ptr());
                    prop_assert!(inside, "the payload is a slice of the datagram");
                }
            }
        }
    }

    /// Any message, any MSS, any recv size: the reads put the message back
    /// together, none is longer than asked, none crosses into the next message.
    #[test]
    fn reads_reassemble_messages(
        messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..4),
        mss in 1usize..40,
        read_size in 1usize..50,
    ) {
        let cfg = Config { mss, ..Config::new(Format::Binary) };
        let script = Script { client_sends: messages.clone(), server_sends: Vec::new(), read_size };
        let report = Sim::new(cfg, Network::perfect(), 1, script).run(Duration::from_secs(600));
        prop_assert!(report.finished);
        prop_assert_eq!(report.server_received, messages.concat());
        // Each read is min(bytes left in its message, read_size): exactly these sizes.
        let expected: Vec<usize> = messages
            .iter()
            .flat_map(|m| m.chunks(read_size).map(<[u8]>::len))
            .collect();
        prop_assert_eq!(report.server_reads, expected);
    }
}
