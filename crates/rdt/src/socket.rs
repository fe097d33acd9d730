//! The seed's `SocketTCP` over std UDP sockets (spec "Socket API"): created
//! with no parameters, then `bind`, `connect`, `accept`, `send`, `recv`,
//! `close`, `recv_close`. A thin blocking shell: it moves datagrams between the
//! UDP socket and the sans-IO core and sleeps until the core's next deadline.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::Instant;

use bytes::Bytes;

use crate::config::Config;
use crate::conn::{Connection, Ending, Read, Stats};
use crate::dialect::{Learned, Reading};
use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::isn;
use crate::link::{Link, Options};
use crate::listener::Listener;

/// A reliable, connection-oriented socket over UDP.
#[derive(Debug)]
pub struct RdtSocket {
    opts: Options,
    role: Role,
    /// The peer's reading of the course header, as the connection knew it
    /// when it ended, and what it learned (kept after `close`).
    dialect: Option<(Reading, Vec<Learned>)>,
}

#[derive(Debug)]
enum Role {
    Fresh,
    Bound(Box<Link>),
    Listening(Listener),
    Connected(Box<Endpoint>),
    /// Closed; the counters of the whole connection are kept.
    Done(Stats),
}

impl Default for RdtSocket {
    fn default() -> Self {
        RdtSocket::new()
    }
}

impl RdtSocket {
    /// The seed's constructor: no parameters, course format, MSS 16.
    pub fn new() -> RdtSocket {
        RdtSocket::with_options(Options::default())
    }

    pub fn with_config(config: Config) -> RdtSocket {
        RdtSocket::with_options(Options::new(config))
    }

    pub fn with_options(opts: Options) -> RdtSocket {
        RdtSocket {
            opts,
            role: Role::Fresh,
            dialect: None,
        }
    }

    /// Listens on `addr` (the seed's `bind`); `accept` then takes clients.
    pub fn bind(&mut self, addr: impl ToSocketAddrs) -> Result<(), Error> {
        self.opts.config.validate()?;
        let udp = UdpSocket::bind(addr).map_err(|e| Error::io("bind", e))?;
        let rng = self.opts.rng();
        self.role = Role::Bound(Box::new(Link::new(udp, self.opts.clone(), rng)?));
        Ok(())
    }

    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        match &self.role {
            Role::Bound(link) => link.local_addr(),
            Role::Listening(l) => Ok(l.local_addr()),
            Role::Connected(e) => e.link.local_addr(),
            Role::Fresh | Role::Done(_) => Err(Error::Usage("bound")),
        }
    }

    /// The peer's address: for a client, the server's per-connection socket.
    pub fn peer_addr(&self) -> Result<SocketAddr, Error> {
        match &self.role {
            Role::Connected(e) => Ok(e.peer),
            _ => Err(Error::Usage("connected")),
        }
    }

    /// The peer's reading of the course header as this connection knows it
    /// (learned or forced), and what it learned, in order (also after the close).
    pub fn dialect(&self) -> Option<(Reading, Vec<Learned>)> {
        match &self.role {
            Role::Connected(e) => Some((
                e.conn.dialect().reading(),
                e.conn.dialect().learned().to_vec(),
            )),
            _ => self.dialect.clone(),
        }
    }

    /// The connection's counters (also after `close` or `recv_close`).
    pub fn stats(&self) -> Option<Stats> {
        match &self.role {
            Role::Connected(e) => Some(e.conn.stats()),
            Role::Done(stats) => Some(*stats),
            _ => None,
        }
    }

    /// The client side of the 3-way handshake with the listener at `addr`.
    pub fn connect(&mut self, addr: impl ToSocketAddrs) -> Result<(), Error> {
        self.opts.config.validate()?;
        let server = addr
            .to_socket_addrs()
            .map_err(|e| Error::io("resolve address", e))?
            .next()
            .ok_or(Error::Usage("given an address that resolves"))?;
        let mut link = match std::mem::replace(&mut self.role, Role::Fresh) {
            Role::Bound(link) => *link,
            Role::Fresh => {
                let any: SocketAddr = if server.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let udp = UdpSocket::bind(any).map_err(|e| Error::io("bind", e))?;
                Link::new(udp, self.opts.clone(), self.opts.rng())?
            }
            other => {
                self.role = other;
                return Err(Error::Usage(
                    "fresh or bound (already connected or listening)",
                ));
            }
        };
        let isn = isn::initial(self.opts.config.format, link.rng());
        link.trace_hosts(server);
        let conn = Connection::connect(self.opts.config.clone(), Instant::now(), isn);
        let mut endpoint = Endpoint::client(link, server, conn);
        endpoint.drive(|c| Ok(c.is_established().then_some(())))?;
        endpoint.trace_hosts();
        self.role = Role::Connected(Box::new(endpoint));
        Ok(())
    }

    /// The server side of the handshake: returns a socket on a new port that
    /// carries the connection, and that socket's address. This socket keeps
    /// listening for other clients.
    pub fn accept(&mut self) -> Result<(RdtSocket, SocketAddr), Error> {
        let listener = self.listening()?;
        let endpoint = listener.accept()?;
        self.accepted(endpoint)
    }

    /// `accept`, waiting at most `wait`: `None` if no handshake completed in time.
    pub fn accept_within(
        &mut self,
        wait: std::time::Duration,
    ) -> Result<Option<(RdtSocket, SocketAddr)>, Error> {
        let listener = self.listening()?;
        match listener.accept_within(wait)? {
            Some(endpoint) => self.accepted(endpoint).map(Some),
            None => Ok(None),
        }
    }

    /// The listener, started on the bound socket by the first accept.
    fn listening(&mut self) -> Result<&Listener, Error> {
        if let Role::Bound(_) = self.role {
            let Role::Bound(link) = std::mem::replace(&mut self.role, Role::Fresh) else {
                unreachable!("matched just above")
            };
            self.role = Role::Listening(Listener::start(*link, self.opts.clone())?);
        }
        match &self.role {
            Role::Listening(listener) => Ok(listener),
            _ => Err(Error::Usage("bound (call bind first)")),
        }
    }

    fn accepted(&self, endpoint: Endpoint) -> Result<(RdtSocket, SocketAddr), Error> {
        let addr = endpoint.link.local_addr()?;
        Ok((
            RdtSocket {
                opts: self.opts.clone(),
                role: Role::Connected(Box::new(endpoint)),
                dialect: None,
            },
            addr,
        ))
    }

    /// Sends one message: its length, then its data in MSS segments, each
    /// acknowledged before the next (the seed's `send`). Returns once all is acknowledged.
    pub fn send(&mut self, message: &[u8]) -> Result<(), Error> {
        self.send_with_progress(message, |_| {})
    }

    /// `send`, calling `progress` with the bytes of this message acknowledged so far.
    pub fn send_with_progress(
        &mut self,
        message: &[u8],
        progress: impl FnMut(u64),
    ) -> Result<(), Error> {
        // The message goes to the core a part at a time, copied into buffers
        // that are used again once acknowledged: never copied whole, hot in
        // the cache when sent.
        let mut pool = crate::parts::PartPool::default();
        self.send_parts(message.len(), |r| pool.copy(&message[r]), progress)
    }

    /// [`RdtSocket::send`] of a message already in a [`Bytes`]: its segments
    /// are slices of it, so it is copied once, into the kernel (as TCP's
    /// `write` copies), not first into buffers of ours.
    pub fn send_bytes(&mut self, message: &Bytes) -> Result<(), Error> {
        self.send_bytes_with_progress(message, |_| {})
    }

    /// [`RdtSocket::send_bytes`], calling `progress` as `send_with_progress` does.
    pub fn send_bytes_with_progress(
        &mut self,
        message: &Bytes,
        progress: impl FnMut(u64),
    ) -> Result<(), Error> {
        self.send_parts(message.len(), |r| message.slice(r), progress)
    }

    /// Sends a message of `len` bytes whose parts `part` gives, one part
    /// ahead of what the window sends.
    fn send_parts(
        &mut self,
        len: usize,
        mut part: impl FnMut(std::ops::Range<usize>) -> Bytes,
        mut progress: impl FnMut(u64),
    ) -> Result<(), Error> {
        let e = self.endpoint()?;
        let before = e.conn.stats().bytes_acked;
        let length_segment = len.to_string().len() as u64;
        let size = feed_part(e.conn.config());
        e.conn.begin_message(Instant::now(), len)?;
        let mut fed = 0;
        e.drive(|c| {
            while fed < len && c.unsent_bytes() < size {
                let end = (fed + size).min(len);
                c.write_more(Instant::now(), part(fed..end))?;
                fed = end;
            }
            progress((c.stats().bytes_acked - before).saturating_sub(length_segment));
            Ok((fed == len && c.all_acked()).then_some(()))
        })
    }

    /// Returns min(bytes left in the current message, `buff_size`) bytes once
    /// they are here (the seed's `recv`); an empty vector once the peer closed.
    pub fn recv(&mut self, buff_size: usize) -> Result<Vec<u8>, Error> {
        let e = self.endpoint()?;
        e.drive(|c| match c.read(buff_size)? {
            Read::Data(d) => Ok(Some(d)),
            Read::End => Ok(Some(Vec::new())),
            Read::Pending => Ok(None),
        })
    }

    /// [`RdtSocket::recv`] into `buf` (its length is the `buff_size`): the
    /// bytes copied, 0 once the peer closed (or if `buf` is empty, as with
    /// `std::io::Read`). No allocation per call, for a receiver that passes
    /// the data on (to a file, a pipe) and keeps none.
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let e = self.endpoint()?;
        e.drive(|c| c.read_into(buf))
    }

    /// Everything the peer sends until it closes, then the answer to its
    /// close (`recv` until the end, then `recv_close`): the whole exchange of
    /// a receiving program in one call.
    pub fn recv_to_end(&mut self) -> Result<(Vec<u8>, Ending), Error> {
        // The parts are joined once the close is answered: one vector grown
        // as data comes would, at some doubling, copy megabytes in the middle
        // of the transfer, a stall long enough for the sender's timer to fire
        // (`rdt bench` saw 7 spurious retransmissions in 20,000 segments).
        let mut parts = Vec::new();
        loop {
            let chunk = self.recv(1 << 20)?;
            if chunk.is_empty() {
                break;
            }
            parts.push(chunk);
        }
        let ending = self.recv_close()?;
        Ok((parts.concat(), ending))
    }

    /// Starts the close (the seed's `close()`): FIN, resent on each timeout,
    /// given up after `close_timeouts` (3); on FIN-ACK the final ACK as many
    /// times, one timeout apart.
    pub fn close(&mut self) -> Result<Ending, Error> {
        let e = self.endpoint()?;
        e.conn.close(Instant::now());
        let ending = e.drive(|c| Ok(c.ending()));
        self.finished();
        ending
    }

    /// Answers the peer's close (the seed's `recv_close()`): waits for its FIN,
    /// sends FIN-ACK, and waits at most `close_timeouts` (3) timeouts for the last ACK.
    pub fn recv_close(&mut self) -> Result<Ending, Error> {
        let e = self.endpoint()?;
        let ending = e.drive(|c| Ok(c.ending()));
        self.finished();
        ending
    }

    /// Keeps what the ended connection knew, and drops its socket.
    fn finished(&mut self) {
        if let Role::Connected(e) = &self.role {
            self.dialect = Some((
                e.conn.dialect().reading(),
                e.conn.dialect().learned().to_vec(),
            ));
            self.role = Role::Done(e.conn.stats());
        }
    }

    fn endpoint(&mut self) -> Result<&mut Endpoint, Error> {
        match &mut self.role {
            Role::Connected(e) => Ok(e),
            Role::Done(_) => Err(Error::Closed),
            _ => Err(Error::Usage("connected")),
        }
    }
}

/// How much of a message `send` hands the core at a time: a whole number of
/// segments (so no short segment lands mid-message), about 256 KiB and at
/// least 4 segments. Small enough to stay in the cache and be reused as soon
/// as its segments are acknowledged (parts of several MiB were fresh pages to
/// fault in, every one); the window never waits for one, as `send` adds parts
/// until one is waiting beyond what the window took.
fn feed_part(cfg: &crate::config::Config) -> usize {
    let mss = cfg.mss.max(1);
    (256usize << 10).div_ceil(mss).max(4) * mss
}

/// The byte stream of a connection (message boundaries are not kept): reads
/// with [`RdtSocket::recv_into`], 0 at the end, so `std::io::copy` and every
/// reader adaptor work on a connected socket.
impl std::io::Read for RdtSocket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.recv_into(buf).map_err(std::io::Error::other)
    }
}
