//! The durable log (spec: relay.md, "Optional durability"): every event is
//! appended to `events.log` in `--log-dir` before it is handed to any client, so
//! a restarted server keeps its history, its numbering and what it knows of
//! retries, and no delivered (so acknowledged-to-its-sender) message is lost.
//!
//! Records are the protocol's own frames, one after another: a `Deliver` per
//! event, and a `Welcome` per client the server gave an id (with its resume
//! token and name), so clients can resume after a restart. A torn last record
//! (a crash mid-write) is ignored on load; anything else that does not decode
//! (another protocol version, corruption) stops the server with an error that
//! says so, and the file is left as it is.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::Error;
use crate::proto::{Codec, Message};
use crate::sequencer::{Event, KnownClient};

/// The file inside the log directory.
pub const FILE: &str = "events.log";

/// An open log, appending.
#[derive(Debug)]
pub struct EventLog {
    out: BufWriter<File>,
}

impl EventLog {
    /// Opens (creating) the log in `dir` and returns it with the clients and
    /// events it already holds.
    pub fn open(dir: &Path) -> Result<(EventLog, Vec<KnownClient>, Vec<Event>), Error> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE);
        let mut bytes = Vec::new();
        if path.exists() {
            File::open(&path)?.read_to_end(&mut bytes)?;
        }
        let mut buf = BytesMut::from(&bytes[..]);
        let mut events = Vec::new();
        let mut clients = Vec::new();
        let mut good = 0;
        loop {
            let m = match Codec.decode(&mut buf) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    return Err(Error::Log {
                        path: path.display().to_string(),
                        at: good,
                        why: e.to_string(),
                    });
                }
            };
            match m {
                Message::Deliver(event) => events.push(event),
                Message::Welcome {
                    client_id,
                    token,
                    name,
                    ..
                } => clients.push(KnownClient {
                    id: client_id,
                    token,
                    name,
                }),
                _ => {}
            }
            good = bytes.len() - buf.len();
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        // Drop a torn tail so new records start on a frame boundary.
        file.set_len(good as u64)?;
        Ok((
            EventLog {
                out: BufWriter::new(file),
            },
            clients,
            events,
        ))
    }

    /// Records a client the server gave an id to, before it is welcomed.
    pub fn append_client(&mut self, c: &KnownClient) -> Result<(), Error> {
        let mut b = BytesMut::new();
        Message::Welcome {
            client_id: c.id,
            token: c.token,
            next_seq: 0,
            name: c.name.clone(),
        }
        .encode(&mut b);
        self.out.write_all(&b)?;
        self.out.flush()?;
        Ok(())
    }

    /// Appends an event and pushes it to the operating system (a process crash
    /// after this loses nothing).
    pub fn append(&mut self, e: &Event) -> Result<(), Error> {
        let mut b = BytesMut::new();
        e.deliver().encode(&mut b);
        self.out.write_all(&b)?;
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Kind;

    fn ev(seq: u64) -> Event {
        Event {
            seq,
            kind: Kind::Chat,
            origin: 1,
            sender_seq: seq,
            name: "ana".into(),
            text: format!("m{seq}"),
        }
    }

    #[test]
    fn events_survive_a_reopen_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, none, old) = EventLog::open(dir.path()).unwrap();
        assert!(old.is_empty() && none.is_empty());
        let ana = KnownClient {
            id: 1,
            token: 0x1234_5678_9abc_def0_1122_3344_5566_7788,
            name: "ana".into(),
        };
        log.append_client(&ana).unwrap();
        for i in 1..=3 {
            log.append(&ev(i)).unwrap();
        }
        drop(log);
        // A crash in the middle of a fourth record.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE))
            .unwrap();
        f.write_all(&[0, 0, 0, 40, 1, 4, 0]).unwrap();
        drop(f);
        let (mut log, clients, back) = EventLog::open(dir.path()).unwrap();
        assert_eq!(back, vec![ev(1), ev(2), ev(3)]);
        assert_eq!(clients, vec![ana.clone()]);
        log.append(&ev(4)).unwrap();
        drop(log);
        let (_, _, again) = EventLog::open(dir.path()).unwrap();
        assert_eq!(again.len(), 4);
        assert_eq!(again[3], ev(4));
    }

    #[test]
    fn a_log_that_does_not_decode_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        // A record of protocol version 1 (before tokens), then another.
        let mut old = vec![0, 0, 0, 10, 1, 5, 0, 0, 0, 0, 0, 0, 0, 3];
        old.extend_from_slice(&old.clone());
        std::fs::write(dir.path().join(FILE), &old).unwrap();
        let err = EventLog::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("protocol version 1"), "{err}");
        assert_eq!(
            std::fs::read(dir.path().join(FILE)).unwrap(),
            old,
            "untouched"
        );
    }
}
