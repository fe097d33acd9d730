//! PostgreSQL's binary `COPY` format for `bet_batches`, written straight into
//! one buffer: the signature, flags and header-extension length; per row the
//! field count and each field as a 32-bit length (-1: NULL) and its bytes,
//! big-endian (`int8` batch, `int2` agency, `int8` first place or NULL,
//! `int4` count, `text` the bets one per line); the trailer `-1`.

use bytes::{BufMut, BytesMut};

use crate::store::BatchJob;

/// The binary COPY signature.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Bytes sent to the server at a time.
pub const CHUNK: usize = 256 * 1024;

/// Fields per row: batch, agency, first, count, bets.
const FIELDS: i16 = 5;

/// Starts a COPY stream.
pub fn header(buf: &mut BytesMut) {
    buf.put_slice(SIGNATURE);
    buf.put_i32(0); // flags: no OIDs
    buf.put_i32(0); // header extension length
}

/// One batch, numbered `batch`, as a row.
pub fn row(buf: &mut BytesMut, batch: i64, job: &BatchJob) {
    buf.put_i16(FIELDS);
    buf.put_i32(8);
    buf.put_i64(batch);
    buf.put_i32(2);
    buf.put_i16(i16::from(job.agency));
    match job.placed {
        Some(p) => {
            buf.put_i32(8);
            buf.put_i64(i64::from(p.first));
        }
        None => buf.put_i32(-1),
    }
    buf.put_i32(4);
    // A batch is one message of at most 8 KiB: its counts fit an i32.
    buf.put_i32(job.bets.len() as i32);
    let len_at = buf.len();
    buf.put_i32(0);
    for (i, bet) in job.bets.iter().enumerate() {
        if i > 0 {
            buf.put_u8(b'\n');
        }
        for (j, field) in [&bet.nombre, &bet.apellido, &bet.documento, &bet.nacimiento]
            .into_iter()
            .enumerate()
        {
            if j > 0 {
                buf.put_u8(b',');
            }
            buf.put_slice(field.as_bytes());
        }
        buf.put_u8(b',');
        let n = itoa_u16(bet.numero);
        buf.put_slice(n.as_bytes());
    }
    let len = (buf.len() - len_at - 4) as i32;
    buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
}

/// `n` in decimal, without going through `fmt`.
fn itoa_u16(n: u16) -> Digits {
    let mut d = Digits {
        bytes: [0; 5],
        start: 5,
    };
    let mut n = n;
    loop {
        d.start -= 1;
        d.bytes[d.start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break d;
        }
    }
}

struct Digits {
    bytes: [u8; 5],
    start: usize,
}

impl Digits {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// Ends a COPY stream.
pub fn trailer(buf: &mut BytesMut) {
    buf.put_i16(-1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bet::Bet;

    fn bet(nombre: &str, numero: u16) -> Bet {
        Bet {
            nombre: nombre.into(),
            apellido: "P".into(),
            documento: "12".into(),
            nacimiento: "2000-01-02".into(),
            numero,
        }
    }

    #[test]
    fn a_batch_row_byte_for_byte() {
        let job = BatchJob::new(3, Some(258), false, vec![bet("Ñu", 7574), bet("A", 0)]);
        let mut b = BytesMut::new();
        header(&mut b);
        row(&mut b, 9, &job);
        trailer(&mut b);
        let mut want = b"PGCOPY\n\xff\r\n\0".to_vec();
        want.extend([0, 0, 0, 0, 0, 0, 0, 0]);
        want.extend([0, 5]);
        want.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 9]);
        want.extend([0, 0, 0, 2, 0, 3]);
        want.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 1, 2]);
        want.extend([0, 0, 0, 4, 0, 0, 0, 2]);
        let text = "Ñu,P,12,2000-01-02,7574\nA,P,12,2000-01-02,0";
        want.extend((text.len() as i32).to_be_bytes());
        want.extend(text.as_bytes());
        want.extend([0xff, 0xff]);
        assert_eq!(&b[..], &want[..]);
    }

    #[test]
    fn an_unplaced_batch_has_a_null_first() {
        let job = BatchJob::new(1, None, true, vec![bet("A", 65535)]);
        let mut b = BytesMut::new();
        row(&mut b, 1, &job);
        assert_eq!(&b[20..24], &[0xff, 0xff, 0xff, 0xff]);
        assert!(b.ends_with(b",65535"));
    }
}
