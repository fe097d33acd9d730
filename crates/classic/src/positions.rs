//! The positions protocol (spec: classic.md, "positions"), pure.
//!
//! Client → server: `x i16 LE | y i16 LE`. Server → every client (the sender
//! included): ASCII `<id> (<x>, <y>)`, e.g. `22904 (3, -4)`, no terminator. A
//! broadcast ends at its `)`, which is how a client splits coalesced ones.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::Error;

/// One position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// x
    pub x: i16,
    /// y
    pub y: i16,
}

impl Position {
    /// The 4 wire bytes.
    pub fn encode(self) -> [u8; 4] {
        let [a, b] = self.x.to_le_bytes();
        let [c, d] = self.y.to_le_bytes();
        [a, b, c, d]
    }
}

/// The broadcast text for client `id` at `p`.
pub fn broadcast(id: u32, p: Position) -> Bytes {
    let mut b = BytesMut::with_capacity(24);
    b.put_slice(format!("{id} ({}, {})", p.x, p.y).as_bytes());
    b.freeze()
}

/// One broadcast, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Who moved.
    pub id: u32,
    /// Where to.
    pub at: Position,
}

/// Parses `<id> (<x>, <y>)`.
pub fn parse_broadcast(text: &str) -> Option<Seen> {
    let (id, rest) = text.split_once(" (")?;
    let (x, y) = rest.strip_suffix(')')?.split_once(", ")?;
    Some(Seen {
        id: id.parse().ok()?,
        at: Position {
            x: x.parse().ok()?,
            y: y.parse().ok()?,
        },
    })
}

/// The server side: whole 4-byte positions out of any segmentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct ServerCodec;

impl Decoder for ServerCodec {
    type Item = Position;
    type Error = Error;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Position>, Error> {
        if src.len() < 4 {
            return Ok(None);
        }
        let x = src.get_i16_le();
        let y = src.get_i16_le();
        Ok(Some(Position { x, y }))
    }
}

/// The client side: broadcasts out of any segmentation, split at `)`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClientCodec;

/// Longest broadcast text (`99999 (-32768, -32768)` is 22 bytes); more without
/// a `)` means the peer is not a positions server.
const MAX_BROADCAST: usize = 64;

impl Decoder for ClientCodec {
    type Item = String;
    type Error = Error;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<String>, Error> {
        match src.iter().position(|&b| b == b')') {
            Some(i) => {
                let msg = src.split_to(i + 1);
                Ok(Some(String::from_utf8_lossy(&msg).into_owned()))
            }
            None if src.len() > MAX_BROADCAST => Err(Error::Protocol(format!(
                "{} bytes without a ')': not a positions broadcast",
                src.len()
            ))),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_bytes() {
        assert_eq!(Position { x: 3, y: -4 }.encode(), [3, 0, 0xfc, 0xff]);
        assert_eq!(
            &broadcast(22904, Position { x: 3, y: -4 })[..],
            b"22904 (3, -4)"
        );
        assert_eq!(
            parse_broadcast("22904 (3, -4)"),
            Some(Seen {
                id: 22904,
                at: Position { x: 3, y: -4 }
            })
        );
        assert_eq!(parse_broadcast("22904 (3 -4)"), None);
    }

    #[test]
    fn coalesced_and_split_broadcasts() {
        let mut buf = BytesMut::from(&b"10000 (0, 0)10001 (-1, 5)100"[..]);
        let mut c = ClientCodec;
        assert_eq!(c.decode(&mut buf).unwrap().as_deref(), Some("10000 (0, 0)"));
        assert_eq!(
            c.decode(&mut buf).unwrap().as_deref(),
            Some("10001 (-1, 5)")
        );
        assert_eq!(c.decode(&mut buf).unwrap(), None);
        buf.put_slice(b"02 (7, 7)");
        assert_eq!(c.decode(&mut buf).unwrap().as_deref(), Some("10002 (7, 7)"));
        let mut junk = BytesMut::from(&[b'x'; 65][..]);
        assert!(c.decode(&mut junk).is_err());
    }

    #[test]
    fn server_takes_whole_positions_only() {
        let mut s = ServerCodec;
        let mut buf = BytesMut::from(&[1u8, 0, 2][..]);
        assert_eq!(s.decode(&mut buf).unwrap(), None);
        buf.put_slice(&[0, 9, 0, 9, 0]);
        assert_eq!(s.decode(&mut buf).unwrap(), Some(Position { x: 1, y: 2 }));
        assert_eq!(s.decode(&mut buf).unwrap(), Some(Position { x: 9, y: 9 }));
        assert_eq!(s.decode(&mut buf).unwrap(), None);
    }
}
