//! The math server's request decoder on arbitrary bytes, whole and in pieces:
//! never panics, never buffers a command past its cap, and the pieces do not
//! change the requests decoded; every decoded request has a reply.
#![no_main]

use bytes::BytesMut;
use classic::math::{COMMAND_LIMIT, HEADER, ServerCodec};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fn decode(chunks: &[&[u8]]) -> Vec<String> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match ServerCodec.decode(&mut buf) {
                Ok(Some(req)) => {
                    assert!(req.command.len() <= COMMAND_LIMIT.max);
                    assert!(req.reply().starts_with("El resultado de la operacion es "));
                    out.push(format!("{req:?}"));
                }
                Ok(None) => break,
                Err(e) => {
                    out.push(e.to_string());
                    return out;
                }
            }
        }
        assert!(buf.len() < HEADER + COMMAND_LIMIT.max + 8, "buffered past one request");
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let pieces: Vec<&[u8]> = data.chunks(3).collect();
    assert_eq!(decode(&[data]), decode(&pieces));
});
