//! PostgreSQL's binary `COPY` format for the `bets` table, written straight
//! into one buffer (what the driver's row writer does per value through a
//! trait object, here without the per-row await): the signature, flags and
//! header-extension length; per row the field count and each field as a
//! 32-bit length and its bytes (`int8` batch, `int4` place in it, `int2`
//! agency, four `text` as their UTF-8 bytes, `int4` numero, all big-endian);
//! the trailer `-1`.

use bytes::{BufMut, BytesMut};

use crate::bet::Bet;

/// The binary COPY signature.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Bytes sent to the server at a time.
pub const CHUNK: usize = 256 * 1024;

/// Fields per row: batch, pos, agency, nombre, apellido, documento,
/// nacimiento, numero.
const FIELDS: i16 = 8;

/// Starts a COPY stream.
pub fn header(buf: &mut BytesMut) {
    buf.put_slice(SIGNATURE);
    buf.put_i32(0); // flags: no OIDs
    buf.put_i32(0); // header extension length
}

fn text(buf: &mut BytesMut, s: &str) {
    // A field is at most a bet's length, far below i32::MAX (8 KiB messages).
    buf.put_i32(s.len() as i32);
    buf.put_slice(s.as_bytes());
}

/// One bet of `agency`, `pos` of batch `batch`, as a row.
pub fn row(buf: &mut BytesMut, batch: i64, pos: usize, agency: u8, bet: &Bet) {
    buf.put_i16(FIELDS);
    buf.put_i32(8);
    buf.put_i64(batch);
    buf.put_i32(4);
    // A batch holds at most one 8 KiB message of bets.
    buf.put_i32(pos as i32);
    buf.put_i32(2);
    buf.put_i16(i16::from(agency));
    text(buf, &bet.nombre);
    text(buf, &bet.apellido);
    text(buf, &bet.documento);
    text(buf, &bet.nacimiento);
    buf.put_i32(4);
    buf.put_i32(i32::from(bet.numero));
}

/// Ends a COPY stream.
pub fn trailer(buf: &mut BytesMut) {
    buf.put_i16(-1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_byte_for_byte() {
        let bet = Bet {
            nombre: "Ñu".into(),
            apellido: "P".into(),
            documento: "12".into(),
            nacimiento: "2000-01-02".into(),
            numero: 7574,
        };
        let mut b = BytesMut::new();
        header(&mut b);
        row(&mut b, 258, 1, 3, &bet);
        trailer(&mut b);
        let mut want = b"PGCOPY\n\xff\r\n\0".to_vec();
        want.extend([0, 0, 0, 0, 0, 0, 0, 0]);
        want.extend([0, 8]);
        want.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 1, 2]);
        want.extend([0, 0, 0, 4, 0, 0, 0, 1]);
        want.extend([0, 0, 0, 2, 0, 3]);
        want.extend([0, 0, 0, 3, 0xc3, 0x91, b'u']);
        want.extend([0, 0, 0, 1, b'P']);
        want.extend([0, 0, 0, 2, b'1', b'2']);
        want.extend([0, 0, 0, 10]);
        want.extend(b"2000-01-02");
        want.extend([0, 0, 0, 4, 0, 0, 0x1d, 0x96]);
        want.extend([0xff, 0xff]);
        assert_eq!(&b[..], &want[..]);
    }
}
