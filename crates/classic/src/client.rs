//! The three clients (spec: classic.md). Each prints what the original printed,
//! reads replies whole however they are segmented, and, when the server goes
//! away, says so in one clear line and either stops or reconnects with backoff.

use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use crate::math::{OPERATIONS, ReplySplitter, Request};
use crate::positions::{self, Position};
use crate::{Error, TEST_PACKET};

/// How a client runs.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Server `host:port`.
    pub server: String,
    /// Time between two messages.
    pub interval: Duration,
    /// Messages to send before stopping (`None`: forever).
    pub count: Option<u64>,
    /// Reconnect (with backoff) when the server goes away, instead of stopping.
    pub reconnect: bool,
    /// Seed of the random operations and moves.
    pub seed: u64,
}

/// Connects, and decides what a lost connection means: stop with the error,
/// or (with `reconnect`) say so and connect again with backoff.
struct Connector<'a> {
    opts: &'a ClientOptions,
    delay: Duration,
}

/// A connect attempt that takes longer than this has failed.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

impl<'a> Connector<'a> {
    fn new(opts: &'a ClientOptions) -> Self {
        Self {
            opts,
            delay: Duration::from_millis(100),
        }
    }

    async fn connect(&mut self, say: &mut impl FnMut(String)) -> Result<TcpStream, Error> {
        loop {
            match netkit::connect::connect(&self.opts.server, CONNECT_WAIT).await {
                Ok(s) => {
                    self.delay = Duration::from_millis(100);
                    return Ok(s);
                }
                Err(e) if self.opts.reconnect => {
                    say(format!("{e}; retrying in {} ms", self.delay.as_millis()));
                    tokio::time::sleep(self.delay).await;
                    self.delay = (self.delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A session ended with `e`: `Ok` to reconnect, `Err` to stop.
    fn lost(&self, e: Error, say: &mut impl FnMut(String)) -> Result<(), Error> {
        if self.opts.reconnect {
            say(format!("{e}; reconnecting"));
            Ok(())
        } else {
            Err(e)
        }
    }
}

fn lost(e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::BrokenPipe => Error::ServerClosed,
        _ => Error::Io(e),
    }
}

/// The echo client: `Test Packet`, wait for the echo, print it, wait, repeat.
pub async fn echo(opts: &ClientOptions, mut say: impl FnMut(String)) -> Result<(), Error> {
    let mut sent = 0u64;
    let mut conn = Connector::new(opts);
    loop {
        let mut s = conn.connect(&mut say).await?;
        match echo_session(&mut s, opts, &mut sent, &mut say).await {
            Ok(()) => return Ok(()),
            Err(e) => conn.lost(e, &mut say)?,
        }
    }
}

async fn echo_session(
    s: &mut TcpStream,
    opts: &ClientOptions,
    sent: &mut u64,
    say: &mut impl FnMut(String),
) -> Result<(), Error> {
    while opts.count.is_none_or(|c| *sent < c) {
        s.write_all(TEST_PACKET).await.map_err(lost)?;
        let mut back = [0u8; TEST_PACKET.len()];
        s.read_exact(&mut back).await.map_err(lost)?;
        say(String::from_utf8_lossy(&back).into_owned());
        *sent += 1;
        if opts.count.is_none_or(|c| *sent < c) {
            tokio::time::sleep(opts.interval).await;
        }
    }
    Ok(())
}

/// The math client: a random operation on a, b in -100..=100 every interval.
pub async fn math(opts: &ClientOptions, mut say: impl FnMut(String)) -> Result<(), Error> {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut sent = 0u64;
    let mut conn = Connector::new(opts);
    loop {
        let mut s = conn.connect(&mut say).await?;
        match math_session(&mut s, opts, &mut rng, &mut sent, &mut say).await {
            Ok(()) => return Ok(()),
            Err(e) => conn.lost(e, &mut say)?,
        }
    }
}

async fn math_session(
    s: &mut TcpStream,
    opts: &ClientOptions,
    rng: &mut ChaCha8Rng,
    sent: &mut u64,
    say: &mut impl FnMut(String),
) -> Result<(), Error> {
    let mut replies = ReplySplitter::default();
    while opts.count.is_none_or(|c| *sent < c) {
        let op = OPERATIONS[rng.random_range(0..OPERATIONS.len())];
        let (a, b) = (
            rng.random_range(-100..=100i16),
            rng.random_range(-100..=100i16),
        );
        say(format!("Enviando peticion de {op} para {a} y {b}"));
        let req = Request::new(op, a, b);
        let mut out = BytesMut::new();
        req.encode(&mut out);
        s.write_all(&out).await.map_err(lost)?;
        let result = read_reply(s, &mut replies, &req.result()).await?;
        say(format!("{}{result}", crate::math::REPLY_PREFIX));
        *sent += 1;
        if opts.count.is_none_or(|c| *sent < c) {
            tokio::time::sleep(opts.interval).await;
        }
    }
    Ok(())
}

/// Reads one reply: complete when it reads as expected, or when the next one
/// starts, or (an unexpected answer from someone else's server) after a pause.
async fn read_reply(
    s: &mut TcpStream,
    replies: &mut ReplySplitter,
    expected: &str,
) -> Result<String, Error> {
    let mut buf = [0u8; 1024];
    loop {
        if let Some(r) = replies.next(Some(expected)) {
            return Ok(r);
        }
        let wait = if replies.pending() > 0 {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(30)
        };
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Err(_) if replies.pending() > 0 => return Ok(replies.take_rest()),
            Err(_) => return Err(Error::Protocol("no reply from the server in 30 s".into())),
            Ok(Ok(0)) => return Err(Error::ServerClosed),
            Ok(Ok(n)) => replies.feed(&buf[..n]),
            Ok(Err(e)) => return Err(lost(e)),
        }
    }
}

/// The positions client: sends (0, 0), then a move of -1, 0 or +1 per
/// coordinate every interval, and prints every broadcast it receives.
pub async fn positions(opts: &ClientOptions, mut say: impl FnMut(String)) -> Result<(), Error> {
    let mut state = Walk {
        rng: ChaCha8Rng::seed_from_u64(opts.seed),
        sent: 0,
        at: Position::default(),
    };
    let mut conn = Connector::new(opts);
    loop {
        let s = conn.connect(&mut say).await?;
        match positions_session(s, opts, &mut state, &mut say).await {
            Ok(()) => return Ok(()),
            Err(e) => conn.lost(e, &mut say)?,
        }
    }
}

/// Where the positions client is, across reconnections.
struct Walk {
    rng: ChaCha8Rng,
    sent: u64,
    at: Position,
}

async fn positions_session(
    s: TcpStream,
    opts: &ClientOptions,
    walk: &mut Walk,
    say: &mut impl FnMut(String),
) -> Result<(), Error> {
    let (r, mut w) = s.into_split();
    let mut frames = FramedRead::new(r, positions::ClientCodec);
    let mut tick = tokio::time::interval(opts.interval);
    let mut linger: Option<tokio::time::Instant> = None;
    loop {
        let more = opts.count.is_none_or(|c| walk.sent < c);
        if !more && linger.is_none() {
            linger = Some(tokio::time::Instant::now() + opts.interval);
        }
        tokio::select! {
            _ = tick.tick(), if more => {
                if walk.sent > 0 {
                    walk.at.x = walk.at.x.saturating_add(walk.rng.random_range(-1..=1));
                    walk.at.y = walk.at.y.saturating_add(walk.rng.random_range(-1..=1));
                }
                w.write_all(&walk.at.encode()).await.map_err(lost)?;
                walk.sent += 1;
            }
            msg = frames.next() => match msg {
                Some(Ok(text)) => say(text),
                Some(Err(e)) => return Err(e),
                None => return Err(Error::ServerClosed),
            },
            // After the last position, linger one interval for the broadcasts.
            () = tokio::time::sleep_until(linger.unwrap_or_else(tokio::time::Instant::now)), if linger.is_some() => return Ok(()),
        }
    }
}
