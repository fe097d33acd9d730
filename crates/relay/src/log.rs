//! The durable log (spec: relay.md, "Optional durability"): every event is
//! appended to `events.log` in `--log-dir` before it is handed to any client, so
//! a restarted server keeps its history, its numbering and what it knows of
//! retries, and no delivered (so acknowledged-to-its-sender) message is lost.
//!
//! Records are the protocol's own `Deliver` frames, one after another; a torn
//! last record (a crash mid-write) is ignored on load.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::Error;
use crate::proto::{Codec, Message};
use crate::sequencer::Event;

/// The file inside the log directory.
pub const FILE: &str = "events.log";

/// An open log, appending.
#[derive(Debug)]
pub struct EventLog {
    out: BufWriter<File>,
}

impl EventLog {
    /// Opens (creating) the log in `dir` and returns it with the events it
    /// already holds.
    pub fn open(dir: &Path) -> Result<(EventLog, Vec<Event>), Error> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE);
        let mut bytes = Vec::new();
        if path.exists() {
            File::open(&path)?.read_to_end(&mut bytes)?;
        }
        let mut buf = BytesMut::from(&bytes[..]);
        let mut events = Vec::new();
        let mut good = 0;
        while let Ok(Some(m)) = Codec.decode(&mut buf) {
            if let Message::Deliver {
                seq,
                kind,
                origin,
                sender_seq,
                name,
                text,
            } = m
            {
                events.push(Event {
                    seq,
                    kind,
                    origin,
                    sender_seq,
                    name,
                    text,
                });
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
            events,
        ))
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
        let (mut log, old) = EventLog::open(dir.path()).unwrap();
        assert!(old.is_empty());
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
        let (mut log, back) = EventLog::open(dir.path()).unwrap();
        assert_eq!(back, vec![ev(1), ev(2), ev(3)]);
        log.append(&ev(4)).unwrap();
        drop(log);
        let (_, again) = EventLog::open(dir.path()).unwrap();
        assert_eq!(again.len(), 4);
        assert_eq!(again[3], ev(4));
    }
}
