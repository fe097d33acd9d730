//! Segmentation offload at the link's edges, so the engine sees real packets
//! while the kernel moves big ones (issue #14: "offloads only where every rule
//! still sees real packets").
//!
//! The devices speak the virtio-net header (`IFF_VNET_HDR`) and offer the
//! kernel TCP segmentation offload. A read may then hold a TCP super-packet of
//! up to 64 KiB: [`split`] cuts it into the MTU-sized segments the wire would
//! carry (each with its own IP length and ID, TCP sequence number and flags),
//! and the engine decides on each. On the way out, [`Coalescer`] joins the
//! segments that survive in order back into one super-packet per run, which
//! the receiving kernel takes in one write as it would from GRO.
//!
//! Checksums: the kernel leaves TCP and UDP checksums of outgoing packets to
//! the "hardware" (`NEEDS_CSUM`: the field holds the pseudo-header sum). They
//! stay that way through the link, and the receiving device is told so, unless
//! the direction corrupts packets: then every checksum is completed before the
//! engine sees the packet, and the packet is written as it is, so the receiver
//! verifies it and a flipped byte is caught as on a real wire.

use bytes::Bytes;

/// Size of the virtio-net header before every packet.
pub(crate) const VNET_HDR_LEN: usize = 10;
/// `flags`: the L4 checksum is to be completed from `csum_start`.
pub(crate) const F_NEEDS_CSUM: u8 = 1;
/// `gso_type` values.
pub(crate) const GSO_NONE: u8 = 0;
pub(crate) const GSO_TCPV4: u8 = 1;
pub(crate) const GSO_TCPV6: u8 = 4;
/// UDP segmentation (USO): one train of datagrams of `gso_size` payload bytes.
pub(crate) const GSO_UDP_L4: u8 = 5;
const GSO_ECN: u8 = 0x80;
/// Offset of the checksum in a TCP header.
const TCP_CSUM: u16 = 16;
/// Offset of the checksum in a UDP header.
const UDP_CSUM: u16 = 6;
/// Length of a UDP header.
const UDP_HEADER: usize = 8;
/// Segments joined at most into one write.
const MAX_JOINED: usize = 64;

/// The virtio-net header (in the host's byte order, as TUN uses it unless
/// told otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VnetHdr {
    /// `F_NEEDS_CSUM` or 0.
    pub flags: u8,
    /// `GSO_*`.
    pub gso_type: u8,
    /// Length of the headers (IP + TCP) of a super-packet.
    pub hdr_len: u16,
    /// Payload bytes per segment of a super-packet.
    pub gso_size: u16,
    /// Where the checksummed part starts (the L4 header).
    pub csum_start: u16,
    /// Where the checksum field is, from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Parses the first [`VNET_HDR_LEN`] bytes.
    pub fn parse(b: &[u8]) -> Option<Self> {
        let u = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        (b.len() >= VNET_HDR_LEN).then(|| Self {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }

    /// The header's bytes.
    pub fn encode(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    fn partial(csum_start: usize, csum_offset: u16) -> Self {
        Self {
            flags: F_NEEDS_CSUM,
            csum_start: csum_start as u16,
            csum_offset,
            ..Self::default()
        }
    }
}

/// Where a TCP or UDP packet's headers are.
#[derive(Debug, Clone, Copy)]
struct L4Layout {
    v6: bool,
    /// IP header length.
    ip: usize,
    /// IP + TCP header length.
    hl: usize,
}

/// A TCP packet's header layout, if `p` is a plain TCP packet (IPv4 with any
/// options, IPv6 without extension headers).
fn tcp_layout(p: &[u8]) -> Option<L4Layout> {
    let (v6, ip) = match p.first()? >> 4 {
        4 if *p.get(9)? == 6 => (false, usize::from(p[0] & 0x0f) * 4),
        6 if *p.get(6)? == 6 => (true, 40),
        _ => return None,
    };
    if ip < 20 {
        return None;
    }
    let tcp = usize::from(*p.get(ip + 12)? >> 4) * 4;
    (tcp >= 20 && p.len() >= ip + tcp).then_some(L4Layout {
        v6,
        ip,
        hl: ip + tcp,
    })
}

/// A UDP packet's header layout, if `p` is a plain UDP packet (IPv4 with any
/// options, IPv6 without extension headers).
fn udp_layout(p: &[u8]) -> Option<L4Layout> {
    let (v6, ip) = match p.first()? >> 4 {
        4 if *p.get(9)? == 17 => (false, usize::from(p[0] & 0x0f) * 4),
        6 if *p.get(6)? == 17 => (true, 40),
        _ => return None,
    };
    (ip >= 20 && p.len() >= ip + UDP_HEADER).then_some(L4Layout {
        v6,
        ip,
        hl: ip + UDP_HEADER,
    })
}

/// Cuts one read (virtio-net header and packet) into the packets the wire
/// would carry, each with the header to write it with. A read that is not
/// what its header says is passed on whole, as read.
pub(crate) fn split(read: &[u8], complete: bool, out: &mut Vec<(Bytes, VnetHdr)>) {
    let Some(hdr) = VnetHdr::parse(read) else {
        return;
    };
    let pkt = &read[VNET_HDR_LEN..];
    let gso = hdr.gso_type & !GSO_ECN;
    if gso == GSO_NONE {
        let mut hdr = hdr;
        let mut p = pkt.to_vec();
        if complete && hdr.flags & F_NEEDS_CSUM != 0 && complete_checksum(&mut p, &hdr) {
            hdr.flags = 0;
        }
        out.push((Bytes::from(p), hdr));
        return;
    }
    if gso == GSO_UDP_L4 {
        split_udp(pkt, hdr, complete, out);
        return;
    }
    let layout = tcp_layout(pkt).filter(|l| l.v6 == (gso == GSO_TCPV6));
    let (Some(l), true) = (
        layout,
        hdr.gso_size > 0 && matches!(gso, GSO_TCPV4 | GSO_TCPV6),
    ) else {
        out.push((Bytes::copy_from_slice(pkt), hdr));
        return;
    };
    let mss = usize::from(hdr.gso_size);
    let payload = &pkt[l.hl..];
    let count = payload.len().div_ceil(mss).max(1);
    let seq0 = u32::from_be_bytes([pkt[l.ip + 4], pkt[l.ip + 5], pkt[l.ip + 6], pkt[l.ip + 7]]);
    let id0 = u16::from_be_bytes([pkt[4], pkt[5]]);
    let flags0 = pkt[l.ip + 13];
    for i in 0..count {
        let chunk = &payload[(i * mss).min(payload.len())..((i + 1) * mss).min(payload.len())];
        let mut s = Vec::with_capacity(l.hl + chunk.len());
        s.extend_from_slice(&pkt[..l.hl]);
        s.extend_from_slice(chunk);
        let mut flags = flags0;
        if i + 1 < count {
            flags &= !(0x01 | 0x08); // FIN and PSH only on the last
        }
        if i > 0 {
            flags &= !0x80; // CWR only on the first
        }
        s[l.ip + 13] = flags;
        let seq = seq0.wrapping_add((i * mss) as u32);
        s[l.ip + 4..l.ip + 8].copy_from_slice(&seq.to_be_bytes());
        set_id(&mut s, l, id0, i);
        set_lengths(&mut s, l);
        out.push(finish(s, l, TCP_CSUM, complete));
    }
}

/// The `i`th packet cut from a super-packet whose IPv4 ID was `id0` gets ID
/// `id0 + i` (IPv6 has none).
fn set_id(s: &mut [u8], l: L4Layout, id0: u16, i: usize) {
    if !l.v6 {
        s[4..6].copy_from_slice(&id0.wrapping_add(i as u16).to_be_bytes());
    }
}

/// A packet cut from a super-packet with its header: the L4 checksum left
/// partial, or completed when the direction corrupts.
fn finish(mut s: Vec<u8>, l: L4Layout, csum_offset: u16, complete: bool) -> (Bytes, VnetHdr) {
    let mut h = VnetHdr::partial(l.ip, csum_offset);
    if complete && complete_checksum(&mut s, &h) {
        h.flags = 0;
    }
    (Bytes::from(s), h)
}

/// Cuts a UDP train into its datagrams: each gets the train's headers with
/// its own lengths, IPv4 ID and checksums (as the kernel's software
/// segmentation would).
fn split_udp(pkt: &[u8], hdr: VnetHdr, complete: bool, out: &mut Vec<(Bytes, VnetHdr)>) {
    let (Some(l), true) = (udp_layout(pkt), hdr.gso_size > 0) else {
        out.push((Bytes::copy_from_slice(pkt), hdr));
        return;
    };
    let size = usize::from(hdr.gso_size);
    let payload = &pkt[l.hl..];
    let id0 = u16::from_be_bytes([pkt[4], pkt[5]]);
    for (i, chunk) in payload.chunks(size).enumerate() {
        let mut s = Vec::with_capacity(l.hl + chunk.len());
        s.extend_from_slice(&pkt[..l.hl]);
        s.extend_from_slice(chunk);
        set_id(&mut s, l, id0, i);
        set_udp_lengths(&mut s, l);
        out.push(finish(s, l, UDP_CSUM, complete));
    }
}

/// Sets the IP length (and the IPv4 header checksum) and the TCP checksum
/// field to the pseudo-header sum for the packet's length, as the kernel
/// leaves it for the hardware.
fn set_lengths(s: &mut [u8], l: L4Layout) {
    set_ip_lengths(s, l, 6, TCP_CSUM);
}

/// [`set_lengths`] for UDP, whose header holds its length too.
fn set_udp_lengths(s: &mut [u8], l: L4Layout) {
    let l4 = (s.len() - l.ip) as u16;
    s[l.ip + 4..l.ip + 6].copy_from_slice(&l4.to_be_bytes());
    set_ip_lengths(s, l, 17, UDP_CSUM);
}

/// The IP length (and IPv4 header checksum) and the L4 checksum field at
/// `csum` set to the pseudo-header sum of protocol `proto`.
fn set_ip_lengths(s: &mut [u8], l: L4Layout, proto: u64, csum: u16) {
    let l4 = s.len() - l.ip;
    let mut sum: u64 = proto + l4 as u64;
    if l.v6 {
        s[4..6].copy_from_slice(&(l4 as u16).to_be_bytes());
        sum += add16(&s[8..40]);
    } else {
        let total = s.len() as u16;
        s[2..4].copy_from_slice(&total.to_be_bytes());
        s[10..12].fill(0);
        let c = !fold(add16(&s[..l.ip]));
        s[10..12].copy_from_slice(&c.to_be_bytes());
        sum += add16(&s[12..20]);
    }
    let at = l.ip + usize::from(csum);
    s[at..at + 2].copy_from_slice(&fold(sum).to_be_bytes());
}

/// Completes a checksum the kernel left partial: the field holds the
/// pseudo-header sum; the checksum covers it and every byte from
/// `csum_start`. False if the header points outside the packet.
pub(crate) fn complete_checksum(p: &mut [u8], hdr: &VnetHdr) -> bool {
    let start = usize::from(hdr.csum_start);
    let at = start + usize::from(hdr.csum_offset);
    if at + 2 > p.len() {
        return false;
    }
    let mut c = !fold(add16(&p[start..]));
    // UDP sends a computed 0 as 0xffff (0 means "no checksum"); TCP never
    // produces it from a sum of a nonzero pseudo-header, so this is harmless.
    if c == 0 {
        c = 0xffff;
    }
    p[at..at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// One's-complement sum of big-endian 16-bit words (odd length padded).
fn add16(b: &[u8]) -> u64 {
    let mut sum = 0u64;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        sum += (w >> 48) + ((w >> 32) & 0xffff) + ((w >> 16) & 0xffff) + (w & 0xffff);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = rest.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Joins consecutive TCP segments of one flow back into super-packets, and
/// consecutive UDP datagrams of one flow and size into trains, for writing;
/// everything else is written as it is.
#[derive(Debug, Default)]
pub(crate) struct Coalescer {
    /// Virtio-net header space, then the group's first packet and the
    /// payloads appended to it.
    buf: Vec<u8>,
    hdr: VnetHdr,
    layout: Option<L4Layout>,
    /// The group is UDP datagrams (else TCP segments).
    udp: bool,
    count: usize,
    mss: usize,
    next_seq: u32,
    /// The last segment's payload length and flags.
    last_len: usize,
    last_flags: u8,
}

/// A packet the coalescer may join: its layout and whether it is UDP.
fn joinable(pkt: &[u8], hdr: VnetHdr) -> Option<(L4Layout, bool)> {
    if hdr.flags != F_NEEDS_CSUM || hdr.gso_type != GSO_NONE {
        return None;
    }
    let (layout, udp) = match hdr.csum_offset {
        TCP_CSUM => (tcp_layout(pkt)?, false),
        UDP_CSUM => (udp_layout(pkt)?, true),
        _ => return None,
    };
    (usize::from(hdr.csum_start) == layout.ip && pkt.len() > layout.hl).then_some((layout, udp))
}

impl Coalescer {
    /// Takes the next packet to write, writing out what it cannot join.
    pub(crate) fn push(&mut self, pkt: &[u8], hdr: VnetHdr, write: &mut impl FnMut(&[u8])) {
        let Some((l, udp)) = joinable(pkt, hdr) else {
            self.flush(write);
            self.buf.clear();
            self.buf.extend_from_slice(&hdr.encode());
            self.buf.extend_from_slice(pkt);
            write(&self.buf);
            return;
        };
        if self.count > 0 && self.udp == udp && self.joins(pkt, l) {
            self.buf.extend_from_slice(&pkt[l.hl..]);
            self.count += 1;
            self.note_last(pkt, l);
            return;
        }
        self.flush(write);
        self.buf.clear();
        self.buf.extend_from_slice(&hdr.encode());
        self.buf.extend_from_slice(pkt);
        self.hdr = hdr;
        self.layout = Some(l);
        self.udp = udp;
        self.count = 1;
        self.mss = pkt.len() - l.hl;
        self.note_last(pkt, l);
    }

    fn note_last(&mut self, pkt: &[u8], l: L4Layout) {
        let len = pkt.len() - l.hl;
        self.last_len = len;
        if self.udp {
            return;
        }
        let seq = u32::from_be_bytes([pkt[l.ip + 4], pkt[l.ip + 5], pkt[l.ip + 6], pkt[l.ip + 7]]);
        self.next_seq = seq.wrapping_add(len as u32);
        self.last_flags = pkt[l.ip + 13];
    }

    /// Whether `pkt` continues the group: same flow and headers but for
    /// lengths, IPv4 ID and checksums; full-sized segments before it; for
    /// TCP, a sequence number that follows on and only ACK on the one before.
    fn joins(&self, pkt: &[u8], l: L4Layout) -> bool {
        let Some(g) = self.layout else { return false };
        let first = &self.buf[VNET_HDR_LEN..];
        let len = pkt.len() - l.hl;
        let same = |r: std::ops::Range<usize>| first[r.clone()] == pkt[r];
        let common = g.v6 == l.v6
            && g.ip == l.ip
            && g.hl == l.hl
            && self.count < MAX_JOINED
            && self.last_len == self.mss
            && len <= self.mss
            && self.buf.len() - VNET_HDR_LEN + len <= 65_535
            && if l.v6 {
                same(0..4) && same(6..40)
            } else {
                same(0..2) && same(6..10) && same(12..l.ip)
            }
            // Ports.
            && same(l.ip..l.ip + 4);
        if !common {
            return false;
        }
        if self.udp {
            return true;
        }
        let seq = u32::from_be_bytes([pkt[l.ip + 4], pkt[l.ip + 5], pkt[l.ip + 6], pkt[l.ip + 7]]);
        self.last_flags == 0x10
            && pkt[l.ip + 13] & !(0x10 | 0x08 | 0x01) == 0
            && seq == self.next_seq
            // ACK number, window and options (not seq, flags, checksum).
            && same(l.ip + 8..l.ip + 13)
            && same(l.ip + 14..l.ip + 16)
            && same(l.ip + 18..l.hl)
    }

    /// Writes the group, joined if it holds more than one segment.
    pub(crate) fn flush(&mut self, write: &mut impl FnMut(&[u8])) {
        if self.count == 0 {
            return;
        }
        if let (true, Some(l)) = (self.count > 1, self.layout) {
            let pkt = &mut self.buf[VNET_HDR_LEN..];
            let (gso_type, csum_offset) = if self.udp {
                set_udp_lengths(pkt, l);
                (GSO_UDP_L4, UDP_CSUM)
            } else {
                pkt[l.ip + 13] = self.last_flags;
                set_lengths(pkt, l);
                (if l.v6 { GSO_TCPV6 } else { GSO_TCPV4 }, TCP_CSUM)
            };
            let hdr = VnetHdr {
                flags: F_NEEDS_CSUM,
                gso_type,
                hdr_len: l.hl as u16,
                gso_size: self.mss as u16,
                csum_start: l.ip as u16,
                csum_offset,
            };
            self.buf[..VNET_HDR_LEN].copy_from_slice(&hdr.encode());
        }
        write(&self.buf);
        self.count = 0;
        self.layout = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 TCP packet 10.0.0.1:1000 → 10.0.0.2:2000 with a timestamp
    /// option, `payload` bytes, flags, seq.
    fn tcp4(payload: &[u8], seq: u32, flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 20 + 32];
        p[0] = 0x45;
        p[6] = 0x40; // DF
        p[8] = 64;
        p[9] = 6;
        p[4..6].copy_from_slice(&7u16.to_be_bytes());
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let t = 20;
        p[t..t + 2].copy_from_slice(&1000u16.to_be_bytes());
        p[t + 2..t + 4].copy_from_slice(&2000u16.to_be_bytes());
        p[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
        p[t + 8..t + 12].copy_from_slice(&99u32.to_be_bytes());
        p[t + 12] = 8 << 4;
        p[t + 13] = flags;
        p[t + 14..t + 16].copy_from_slice(&500u16.to_be_bytes());
        p[t + 20..t + 32].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6]);
        p.extend_from_slice(payload);
        let l = tcp_layout(&p).unwrap();
        set_lengths(&mut p, l);
        p
    }

    fn valid_tcp_checksum(p: &[u8]) -> bool {
        let l = tcp_layout(p).unwrap();
        let mut sum = add16(&p[12..20]) + 6 + (p.len() - l.ip) as u64;
        sum += add16(&p[l.ip..]);
        fold(sum) == 0xffff
    }

    fn valid_ip_checksum(p: &[u8]) -> bool {
        fold(add16(&p[..20])) == 0xffff
    }

    fn read_of(pkt: &[u8], hdr: VnetHdr) -> Vec<u8> {
        let mut r = hdr.encode().to_vec();
        r.extend_from_slice(pkt);
        r
    }

    #[test]
    fn the_header_round_trips() {
        let h = VnetHdr {
            flags: 1,
            gso_type: 4,
            hdr_len: 66,
            gso_size: 1428,
            csum_start: 40,
            csum_offset: 16,
        };
        assert_eq!(VnetHdr::parse(&h.encode()), Some(h));
        assert_eq!(VnetHdr::parse(&[0; 9]), None);
    }

    #[test]
    fn a_completed_checksum_is_the_internet_checksum() {
        let payload: Vec<u8> = (0..=255u8).cycle().take(1001).collect();
        let mut p = tcp4(&payload, 1, 0x18);
        assert!(!valid_tcp_checksum(&p), "partial before");
        assert!(complete_checksum(&mut p, &VnetHdr::partial(20, TCP_CSUM)));
        assert!(valid_tcp_checksum(&p));
        assert!(valid_ip_checksum(&p));
        assert!(!complete_checksum(
            &mut p[..30],
            &VnetHdr::partial(20, TCP_CSUM)
        ));
    }

    fn super_packet(n: usize, mss: usize, flags: u8) -> (Vec<u8>, Vec<u8>) {
        let payload: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        let pkt = tcp4(&payload, 1_000, flags);
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 52,
            gso_size: mss as u16,
            csum_start: 20,
            csum_offset: TCP_CSUM,
        };
        (read_of(&pkt, hdr), payload)
    }

    #[test]
    fn a_super_packet_splits_into_wire_segments() {
        let (read, payload) = super_packet(10_000, 1448, 0x18);
        let mut out = Vec::new();
        split(&read, true, &mut out);
        assert_eq!(out.len(), 7);
        let mut joined = Vec::new();
        for (i, (s, h)) in out.iter().enumerate() {
            assert!(s.len() <= 52 + 1448);
            assert_eq!(h.flags, 0, "completed");
            assert!(valid_tcp_checksum(s) && valid_ip_checksum(s), "segment {i}");
            let seq = u32::from_be_bytes([s[24], s[25], s[26], s[27]]);
            assert_eq!(seq as usize, 1_000 + i * 1448);
            assert_eq!(u16::from_be_bytes([s[4], s[5]]) as usize, 7 + i, "IPv4 ID");
            let psh = s[33] & 0x08 != 0;
            assert_eq!(psh, i == 6, "PSH on the last only");
            joined.extend_from_slice(&s[52..]);
        }
        assert_eq!(joined, payload);
    }

    #[test]
    fn segments_join_back_into_one_write() {
        let (read, payload) = super_packet(10_000, 1448, 0x18);
        let mut segs = Vec::new();
        split(&read, false, &mut segs);
        let mut writes: Vec<Vec<u8>> = Vec::new();
        let mut c = Coalescer::default();
        for (s, h) in &segs {
            c.push(s, *h, &mut |w| writes.push(w.to_vec()));
        }
        c.flush(&mut |w| writes.push(w.to_vec()));
        assert_eq!(writes.len(), 1);
        let h = VnetHdr::parse(&writes[0]).unwrap();
        assert_eq!((h.gso_type, h.gso_size, h.hdr_len), (GSO_TCPV4, 1448, 52));
        let p = &writes[0][VNET_HDR_LEN..];
        assert_eq!(&p[52..], &payload[..]);
        assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
        assert_eq!(p[33], 0x18, "the last segment's flags");
        assert!(valid_ip_checksum(p));
        let mut full = p.to_vec();
        complete_checksum(&mut full, &h);
        assert!(valid_tcp_checksum(&full));
    }

    #[test]
    fn a_gap_or_another_flow_starts_a_new_write() {
        let (read, _) = super_packet(4 * 1448, 1448, 0x10);
        let mut segs = Vec::new();
        split(&read, false, &mut segs);
        segs.remove(1); // lost
        let mut writes = Vec::new();
        let mut c = Coalescer::default();
        for (s, h) in &segs {
            c.push(s, *h, &mut |w| writes.push(w.len()));
        }
        let other = tcp4(&[1, 2, 3], 5, 0x18);
        c.push(&other, VnetHdr::partial(20, TCP_CSUM), &mut |w| {
            writes.push(w.len());
        });
        c.flush(&mut |w| writes.push(w.len()));
        // seg 0 alone; segs 2 and 3 joined; the other flow's packet.
        assert_eq!(
            writes,
            vec![10 + 52 + 1448, 10 + 52 + 2 * 1448, 10 + 52 + 3]
        );
    }

    #[test]
    fn completed_packets_are_never_joined() {
        let (read, _) = super_packet(3 * 1448, 1448, 0x10);
        let mut segs = Vec::new();
        split(&read, true, &mut segs);
        let mut writes = 0;
        let mut c = Coalescer::default();
        for (s, h) in &segs {
            c.push(s, *h, &mut |_| writes += 1);
        }
        c.flush(&mut |_| writes += 1);
        assert_eq!(writes, 3);
    }

    /// An IPv4 UDP train 10.0.0.1:1000 → 10.0.0.2:2000 of `payload`, as the
    /// kernel hands it over with UDP segmentation offload.
    fn udp_train(payload: &[u8], size: u16) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[6] = 0x40;
        p[8] = 64;
        p[9] = 17;
        p[4..6].copy_from_slice(&40u16.to_be_bytes());
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        p[20..22].copy_from_slice(&1000u16.to_be_bytes());
        p[22..24].copy_from_slice(&2000u16.to_be_bytes());
        p.extend_from_slice(payload);
        let l = udp_layout(&p).unwrap();
        set_udp_lengths(&mut p, l);
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_UDP_L4,
            hdr_len: 28,
            gso_size: size,
            csum_start: 20,
            csum_offset: UDP_CSUM,
        };
        read_of(&p, hdr)
    }

    fn valid_udp_checksum(p: &[u8]) -> bool {
        let mut sum = add16(&p[12..20]) + 17 + (p.len() - 20) as u64;
        sum += add16(&p[20..]);
        fold(sum) == 0xffff
    }

    #[test]
    fn a_udp_train_splits_into_its_datagrams() {
        let payload: Vec<u8> = (0..3_500u32).map(|i| (i * 13 % 251) as u8).collect();
        let mut out = Vec::new();
        split(&udp_train(&payload, 1_400), true, &mut out);
        let lens: Vec<usize> = out.iter().map(|(s, _)| s.len()).collect();
        assert_eq!(lens, [1_428, 1_428, 728]);
        let mut joined = Vec::new();
        for (i, (s, h)) in out.iter().enumerate() {
            assert_eq!(h.flags, 0, "completed");
            assert!(
                valid_ip_checksum(s) && valid_udp_checksum(s),
                "datagram {i}"
            );
            assert_eq!(usize::from(u16::from_be_bytes([s[2], s[3]])), s.len());
            assert_eq!(
                usize::from(u16::from_be_bytes([s[24], s[25]])),
                s.len() - 20
            );
            assert_eq!(u16::from_be_bytes([s[4], s[5]]) as usize, 40 + i, "IPv4 ID");
            joined.extend_from_slice(&s[28..]);
        }
        assert_eq!(joined, payload);
    }

    #[test]
    fn udp_datagrams_join_into_a_train_and_a_lost_one_leaves_no_gap() {
        let payload: Vec<u8> = (0..5_000u32).map(|i| (i % 241) as u8).collect();
        let mut dgrams = Vec::new();
        split(&udp_train(&payload, 1_000), false, &mut dgrams);
        assert_eq!(dgrams.len(), 5);
        dgrams.remove(2); // lost on the way: datagrams need no continuity
        let mut writes: Vec<Vec<u8>> = Vec::new();
        let mut c = Coalescer::default();
        for (s, h) in &dgrams {
            c.push(s, *h, &mut |w| writes.push(w.to_vec()));
        }
        c.flush(&mut |w| writes.push(w.to_vec()));
        assert_eq!(writes.len(), 1, "one train");
        let h = VnetHdr::parse(&writes[0]).unwrap();
        assert_eq!(
            (h.gso_type, h.gso_size, h.hdr_len, h.csum_offset),
            (GSO_UDP_L4, 1_000, 28, UDP_CSUM)
        );
        let p = &writes[0][VNET_HDR_LEN..];
        assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
        assert_eq!(
            usize::from(u16::from_be_bytes([p[24], p[25]])),
            p.len() - 20
        );
        let mut expect = payload[..2_000].to_vec();
        expect.extend_from_slice(&payload[3_000..]);
        assert_eq!(&p[28..], &expect[..]);
        // Cut again, it is the same datagrams.
        let mut again = Vec::new();
        split(&writes[0], true, &mut again);
        assert_eq!(again.len(), 4);
        assert!(again.iter().all(|(s, _)| valid_udp_checksum(s)));
    }

    #[test]
    fn a_shorter_datagram_ends_a_udp_train() {
        let mut dgrams = Vec::new();
        split(&udp_train(&[1; 2_500], 1_000), false, &mut dgrams);
        split(&udp_train(&[2; 2_000], 1_000), false, &mut dgrams);
        let mut writes = Vec::new();
        let mut c = Coalescer::default();
        for (s, h) in &dgrams {
            c.push(s, *h, &mut |w| writes.push(w.len()));
        }
        c.flush(&mut |w| writes.push(w.len()));
        // 1000+1000+500, then 1000+1000: the 500 closed the first train.
        assert_eq!(writes, vec![10 + 28 + 2_500, 10 + 28 + 2_000]);
    }

    #[test]
    fn a_read_that_is_not_what_it_says_passes_whole() {
        let mut out = Vec::new();
        let hdr = VnetHdr {
            gso_type: GSO_TCPV4,
            gso_size: 100,
            ..VnetHdr::default()
        };
        split(&read_of(&[0x45, 0, 0, 20], hdr), false, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1, hdr);
        split(&[1, 2, 3], false, &mut out);
        assert_eq!(out.len(), 1, "shorter than a header: nothing");
    }
}
