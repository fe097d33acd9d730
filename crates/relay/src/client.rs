//! The relay client (spec: relay.md, "Programs"): sends lines, prints every
//! delivered event once and in order, acknowledges, and reconnects by itself,
//! resuming from the last sequence number it delivered. Its own lines not yet
//! seen sequenced are resent with the same sender number after a reconnect, so
//! the server sequences each once.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;

use crate::Error;
use crate::proto::{Codec, Event, Kind, Message};

/// How a client runs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Server `host:port`.
    pub server: String,
    /// Display name.
    pub name: String,
    /// Give up after this many connection attempts in a row without success.
    pub attempts: u32,
    /// Keep the client's identity, position and unsent lines here, so a
    /// restarted client process resumes where the last one stopped.
    pub state: Option<std::path::PathBuf>,
}

/// One delivered event, as the client shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Global sequence number.
    pub seq: u64,
    /// Chat, join or leave.
    pub kind: Kind,
    /// Who.
    pub name: String,
    /// What.
    pub text: String,
}

impl std::fmt::Display for Delivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Kind::Chat => write!(f, "[{}] {}: {}", self.seq, self.name, self.text),
            Kind::Join => write!(f, "[{}] * {} joined", self.seq, self.name),
            Kind::Leave => write!(f, "[{}] * {} left ({})", self.seq, self.name, self.text),
        }
    }
}

/// What the client remembers across connections (and, with a state file,
/// across processes).
#[derive(Debug, Default, PartialEq, Eq)]
struct State {
    client_id: u64,
    /// The secret the server gave with the id; resuming needs both.
    token: u128,
    delivered: u64,
    sender_seq: u64,
    /// Own lines sent but not yet seen delivered.
    pending: VecDeque<(u64, String)>,
    /// No more lines will come.
    input_done: bool,
}

impl State {
    /// Text form: `id N`, `token HEX`, `delivered N`, `sender_seq N`, then
    /// `pending N TEXT` lines. The file holds a secret: it is written for its
    /// owner only.
    fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        let mut s = format!(
            "id {}\ntoken {:032x}\ndelivered {}\nsender_seq {}\n",
            self.client_id, self.token, self.delivered, self.sender_seq
        );
        for (n, t) in &self.pending {
            let _ = writeln!(s, "pending {n} {t}");
        }
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(s.as_bytes())?;
        }
        std::fs::rename(tmp, path)
    }

    fn load(path: &std::path::Path) -> std::io::Result<State> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(e),
        };
        let mut st = State::default();
        for line in text.lines() {
            let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
            let bad = || {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("bad state line {line:?}"),
                )
            };
            match key {
                "id" => st.client_id = rest.parse().map_err(|_| bad())?,
                "token" => st.token = u128::from_str_radix(rest, 16).map_err(|_| bad())?,
                "delivered" => st.delivered = rest.parse().map_err(|_| bad())?,
                "sender_seq" => st.sender_seq = rest.parse().map_err(|_| bad())?,
                "pending" => {
                    let (n, t) = rest.split_once(' ').unwrap_or((rest, ""));
                    st.pending
                        .push_back((n.parse().map_err(|_| bad())?, t.to_string()));
                }
                _ => return Err(bad()),
            }
        }
        Ok(st)
    }

    fn persist(&self, cfg: &ClientConfig) -> Result<(), Error> {
        if let Some(p) = &cfg.state {
            self.save(p)?;
        }
        Ok(())
    }
}

/// Runs until `lines` ends and every own line was delivered, then leaves.
/// `show` gets every event once, in order.
pub async fn run(
    cfg: &ClientConfig,
    mut lines: mpsc::Receiver<String>,
    mut show: impl FnMut(&Delivered),
) -> Result<(), Error> {
    let mut st = match &cfg.state {
        Some(p) => State::load(p)?,
        None => State::default(),
    };
    let mut failures = 0u32;
    let mut delay = Duration::from_millis(50);
    loop {
        match session(cfg, &mut st, &mut lines, &mut show).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                failures += 1;
                if failures >= cfg.attempts {
                    return Err(e);
                }
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis(), "relay connection lost; reconnecting");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Frames queued for the writer task at most: past that, no new line is
/// taken (deliveries are still read, so the server can always drain us).
const WRITE_QUEUE: usize = 256;
/// A connect attempt that takes longer than this has failed.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Writes queued frames, as many per write as are waiting; shuts the socket
/// down when the queue closes.
async fn write_loop(
    mut w: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::Receiver<Message>,
) -> Result<(), Error> {
    let mut b = BytesMut::new();
    while let Some(m) = rx.recv().await {
        b.clear();
        m.encode(&mut b);
        while let Ok(more) = rx.try_recv() {
            more.encode(&mut b);
        }
        w.write_all(&b).await?;
    }
    let _ = w.shutdown().await;
    Ok(())
}

async fn session(
    cfg: &ClientConfig,
    st: &mut State,
    lines: &mut mpsc::Receiver<String>,
    show: &mut impl FnMut(&Delivered),
) -> Result<(), Error> {
    let s = netkit::connect::connect(&cfg.server, CONNECT_WAIT).await?;
    let (r, w) = s.into_split();
    let mut frames = FramedRead::new(r, Codec);
    // Writing never blocks reading: a server that holds our lines back
    // (backpressure) still gets our acks read... and we still read its events.
    let (wtx, wrx) = mpsc::channel::<Message>(WRITE_QUEUE);
    let mut writer = tokio::spawn(write_loop(w, wrx));
    let result = talk(cfg, st, lines, show, &mut frames, &wtx, &mut writer).await;
    if result.is_err() {
        writer.abort();
        return result;
    }
    // The writer sends what is queued (the last ack, `Leave`) and closes the
    // socket once the queue closes.
    drop(wtx);
    match tokio::time::timeout(Duration::from_secs(10), writer).await {
        Ok(Ok(r)) => r?,
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "could not send the last ack and Leave",
            )
            .into());
        }
    }
    // Then the server closes: reading to its end (briefly) lets it take the
    // `Leave` before anything of ours could look like a reset.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = frames.next().await {}
    })
    .await;
    Ok(())
}

/// Queues `m` for the writer; a writer that is gone is the connection's end.
async fn queue(wtx: &mpsc::Sender<Message>, m: Message) -> Result<(), Error> {
    wtx.send(m).await.map_err(|_| {
        Error::Io(std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "the connection's writer stopped",
        ))
    })
}

/// The handshake: our Hello (new, or resuming with our id, token and last
/// sequence number), the server's Welcome (our id and token, kept).
async fn greet(
    cfg: &ClientConfig,
    st: &mut State,
    frames: &mut FramedRead<tokio::net::tcp::OwnedReadHalf, Codec>,
    wtx: &mpsc::Sender<Message>,
) -> Result<(), Error> {
    queue(
        wtx,
        Message::Hello {
            client_id: st.client_id,
            token: st.token,
            resume_from: st.delivered,
            name: cfg.name.clone(),
        },
    )
    .await?;
    match frames.next().await {
        Some(Ok(Message::Welcome {
            client_id, token, ..
        })) => {
            st.client_id = client_id;
            st.token = token;
            st.persist(cfg)?;
        }
        Some(Ok(Message::Error { text })) => {
            return Err(Error::Malformed {
                what: "welcome",
                why: format!("server refused: {text}"),
            });
        }
        Some(Ok(other)) => {
            return Err(Error::Malformed {
                what: "welcome",
                why: format!("got {other:?}"),
            });
        }
        Some(Err(e)) => return Err(e),
        None => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed during hello",
            )
            .into());
        }
    }
    Ok(())
}

async fn talk(
    cfg: &ClientConfig,
    st: &mut State,
    lines: &mut mpsc::Receiver<String>,
    show: &mut impl FnMut(&Delivered),
    frames: &mut FramedRead<tokio::net::tcp::OwnedReadHalf, Codec>,
    wtx: &mpsc::Sender<Message>,
    writer: &mut tokio::task::JoinHandle<Result<(), Error>>,
) -> Result<(), Error> {
    greet(cfg, st, frames, wtx).await?;
    // Lines sent before but not seen sequenced go again, same numbers.
    let resend: Vec<Message> = st
        .pending
        .iter()
        .map(|(n, t)| Message::Chat {
            sender_seq: *n,
            text: t.clone(),
        })
        .collect();
    for m in resend {
        queue(wtx, m).await?;
    }
    loop {
        if st.input_done && st.pending.is_empty() {
            queue(wtx, Message::Ack { seq: st.delivered }).await?;
            queue(wtx, Message::Leave).await?;
            return Ok(());
        }
        tokio::select! {
            frame = frames.next() => match frame {
                Some(Ok(Message::Deliver(Event { seq, kind, origin, sender_seq, name, text }))) => {
                    if seq <= st.delivered {
                        continue; // seen before a reconnect: never shown twice
                    }
                    st.delivered = seq;
                    if kind == Kind::Chat && origin == st.client_id {
                        st.pending.retain(|(n, _)| *n != sender_seq);
                    }
                    // Remembered before shown: a process killed at any point
                    // never shows again, once restarted, what it showed.
                    st.persist(cfg)?;
                    show(&Delivered { seq, kind, name, text });
                    // Acks are cumulative: one skipped when the queue is full
                    // is covered by the next.
                    if frames.read_buffer().is_empty() {
                        let _ = wtx.try_send(Message::Ack { seq: st.delivered });
                    }
                }
                Some(Ok(Message::Ping { nonce })) => {
                    let _ = wtx.try_send(Message::Pong { nonce });
                }
                Some(Ok(Message::Error { text })) => {
                    return Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, format!("server: {text}")).into());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the server closed the connection").into()),
            },
            line = lines.recv(), if !st.input_done && wtx.capacity() > 0 => match line {
                Some(text) => {
                    st.sender_seq += 1;
                    st.pending.push_back((st.sender_seq, text.clone()));
                    st.persist(cfg)?;
                    queue(wtx, Message::Chat { sender_seq: st.sender_seq, text }).await?;
                }
                None => st.input_done = true,
            },
            done = &mut *writer => {
                return match done {
                    Ok(Err(e)) => Err(e),
                    _ => Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the connection's writer stopped").into()),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        assert_eq!(
            State::load(&path).unwrap(),
            State::default(),
            "no file: a new client"
        );
        let mut st = State {
            client_id: 7,
            token: 0xdead_beef_0000_0000_0000_0000_0000_0001,
            delivered: 41,
            sender_seq: 3,
            ..State::default()
        };
        st.pending.push_back((2, "two words".into()));
        st.pending.push_back((3, String::new()));
        st.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), st);
        std::fs::write(&path, "id x\n").unwrap();
        assert!(
            State::load(&path).is_err(),
            "a corrupt file is an error, not a fresh start"
        );
    }
}
