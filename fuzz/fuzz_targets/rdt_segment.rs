//! Both rdt wire formats on arbitrary datagrams: decoding never panics; every
//! segment that decodes encodes to a datagram that decodes to the same
//! segment (binary: every field; course: flags, data and the one number);
//! decoding from a buffer of the datagram's own (`decode_shared`, the
//! zero-copy path of large datagrams) gives the same segment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdt::Format;

fuzz_target!(|data: &[u8]| {
    for format in [Format::Course, Format::Binary] {
        let shared = format.decode_shared(&bytes::Bytes::copy_from_slice(data));
        let Ok(seg) = format.decode(data) else {
            assert!(shared.is_err(), "both decodings refuse it");
            continue;
        };
        assert_eq!(shared.expect("both decodings take it"), seg);
        let mut again = Vec::new();
        format.encode(&seg, &mut again);
        let back = format.decode(&again).expect("own encoding decodes");
        assert_eq!(back.flags, seg.flags);
        assert_eq!(back.data, seg.data);
        assert_eq!(back.filler, seg.filler);
        match format {
            Format::Binary => assert_eq!(back, seg),
            Format::Course => assert_eq!((back.seq, back.ack), (seg.seq, seg.seq)),
        }
    }
});
