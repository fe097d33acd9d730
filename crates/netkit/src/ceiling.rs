//! The machine's ceiling for small request/response traffic over loopback TCP,
//! measured by the request/response benchmarks next to their own figures: a
//! single-threaded epoll (mio) server that answers each request with a fixed
//! reply, and a single-threaded epoll load generator keeping one request in
//! flight per connection. No async runtime, no protocol, no allocation per
//! request: what is left is the kernel's cost of two small TCP writes, two reads
//! and two wake-ups per round trip. No server can beat it on the same machine.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);

/// Round trips per second with `clients` connections, one `request` in flight
/// each, every reply `reply_len` bytes, for `secs`.
pub fn round_trips(
    clients: usize,
    request: &[u8],
    reply_len: usize,
    secs: Duration,
) -> io::Result<f64> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let request_len = request.len();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server_stop = std::sync::Arc::clone(&stop);
    let server = std::thread::spawn(move || {
        serve(
            TcpListener::from_std(listener),
            request_len,
            reply_len,
            &server_stop,
        )
    });
    let result = load(addr, clients, request, reply_len, secs);
    stop.store(true, std::sync::atomic::Ordering::Release);
    let served = server
        .join()
        .map_err(|_| io::Error::other("ceiling server panicked"))?;
    served?;
    result
}

fn serve(
    mut listener: TcpListener,
    request_len: usize,
    reply_len: usize,
    stop: &std::sync::atomic::AtomicBool,
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<(TcpStream, usize)> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let reply = vec![b'r'; reply_len * 64];
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        for ev in &events {
            if ev.token() == LISTENER {
                while let Ok((mut s, _)) = listener.accept() {
                    s.set_nodelay(true)?;
                    poll.registry()
                        .register(&mut s, Token(conns.len()), Interest::READABLE)?;
                    conns.push((s, 0));
                }
                continue;
            }
            let Some((s, partial)) = conns.get_mut(ev.token().0) else {
                continue;
            };
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        *partial += n;
                        let whole = (*partial / request_len).min(64);
                        *partial -= whole * request_len;
                        s.write_all(&reply[..whole * reply_len])?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

fn load(
    addr: SocketAddr,
    clients: usize,
    request: &[u8],
    reply_len: usize,
    secs: Duration,
) -> io::Result<f64> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut conns = Vec::with_capacity(clients);
    for i in 0..clients {
        let s = std::net::TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        let mut s = TcpStream::from_std(s);
        poll.registry()
            .register(&mut s, Token(i), Interest::READABLE)?;
        conns.push((s, 0usize));
    }
    for (s, _) in &mut conns {
        s.write_all(request)?;
    }
    let start = Instant::now();
    let mut done = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    while start.elapsed() < secs {
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        for ev in &events {
            let Some((s, partial)) = conns.get_mut(ev.token().0) else {
                continue;
            };
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return Err(io::Error::other("ceiling server closed a connection")),
                    Ok(n) => {
                        *partial += n;
                        let whole = *partial / reply_len;
                        *partial %= reply_len;
                        done += whole as u64;
                        for _ in 0..whole {
                            s.write_all(request)?;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_run_completes_round_trips() {
        // Not a timing test: the machinery answers every request it is sent.
        let rate = round_trips(4, b"ping\n", 3, Duration::from_millis(100)).unwrap();
        assert!(rate > 0.0);
    }
}
