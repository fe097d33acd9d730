//! Session traces drawn as sequence diagrams (spec "Debugging and pictures"):
//! both hosts as lifelines, one arrow per segment, lost ones marked with a
//! cross, timeouts and state changes beside this host's line, time going down.
//!
//! A trace is recorded by one process, so it knows when it sent and received;
//! the far end of each arrow is drawn one step later (or earlier), which is
//! the order the peer saw them in.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// More events than this are counted, not drawn (bounded memory on long transfers).
const MAX_EVENTS: usize = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceKind {
    Sent,
    /// Sent, then dropped by the built-in loss.
    SentLost,
    Received,
    /// Arrived, then dropped by the built-in loss.
    ReceivedLost,
    /// Arrived and failed to decode (drawn as a lost arrival).
    Undecodable,
    Timeout,
    Note,
}

#[derive(Debug, Clone)]
pub struct TraceEvent {
    pub at: Duration,
    pub kind: TraceKind,
    pub text: String,
}

#[derive(Debug)]
struct Log {
    /// The first event's time: the diagram starts there.
    start: Option<Instant>,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    events: Vec<TraceEvent>,
    overflow: usize,
}

/// A shared recorder; clones record into the same trace.
#[derive(Debug, Clone)]
pub struct Trace {
    log: Arc<Mutex<Log>>,
}

impl Default for Trace {
    fn default() -> Self {
        Trace::new()
    }
}

impl Trace {
    pub fn new() -> Trace {
        Trace {
            log: Arc::new(Mutex::new(Log {
                start: None,
                local: None,
                peer: None,
                events: Vec::new(),
                overflow: 0,
            })),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Log) -> R) -> R {
        f(&mut self.log.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn hosts(&self, local: SocketAddr, peer: SocketAddr) {
        self.with(|log| {
            log.local = Some(local);
            log.peer = Some(peer);
        });
    }

    pub(crate) fn record(&self, kind: TraceKind, text: impl Into<String>) {
        self.with(|log| {
            if log.events.len() >= MAX_EVENTS {
                log.overflow += 1;
                return;
            }
            let at = log.start.get_or_insert_with(Instant::now).elapsed();
            log.events.push(TraceEvent {
                at,
                kind,
                text: text.into(),
            });
        });
    }

    pub fn events(&self) -> Vec<TraceEvent> {
        self.with(|log| log.events.clone())
    }

    /// The diagram as an SVG document.
    pub fn svg(&self) -> String {
        self.with(|log| render(log))
    }
}

const LEFT: f64 = 310.0;
const RIGHT: f64 = 690.0;
const ROW: f64 = 30.0;
const TOP: f64 = 70.0;

fn render(log: &Log) -> String {
    let rows = log.events.len() as f64 + 2.0;
    let height = TOP + rows * ROW + 30.0;
    let mut s = String::new();
    let name = |a: Option<SocketAddr>, who: &str| match a {
        // A client bound to the wildcard address: its port is what identifies it.
        Some(a) if a.ip().is_unspecified() => format!("{who} (port {})", a.port()),
        Some(a) => format!("{who} {a}"),
        None => who.to_string(),
    };
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="820" height="{height}" font-family="monospace" font-size="12">
<defs><marker id="a" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#333"/></marker></defs>
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="30" text-anchor="middle" font-weight="bold">{}</text>
<text x="{RIGHT}" y="30" text-anchor="middle" font-weight="bold">{}</text>
<line x1="{LEFT}" y1="45" x2="{LEFT}" y2="{end}" stroke="#999" stroke-width="2"/>
<line x1="{RIGHT}" y1="45" x2="{RIGHT}" y2="{end}" stroke="#999" stroke-width="2"/>
"##,
        escape(&name(log.local, "this host")),
        escape(&name(log.peer, "peer")),
        end = height - 20.0,
    );
    let mid = f64::midpoint(LEFT, RIGHT);
    let band = ROW * 0.35;
    for (i, e) in log.events.iter().enumerate() {
        let y = TOP + i as f64 * ROW;
        let text = escape(&e.text);
        let _ = writeln!(
            s,
            r##"<text x="8" y="{:.1}" fill="#666">{:.3} ms</text>"##,
            y + 4.0,
            e.at.as_secs_f64() * 1e3
        );
        match e.kind {
            // Each arrow keeps to its own row band, so consecutive ones never cross.
            TraceKind::Sent => arrow(&mut s, (LEFT, y - band), (RIGHT, y + band), &text, false),
            TraceKind::Received => arrow(&mut s, (RIGHT, y - band), (LEFT, y + band), &text, false),
            TraceKind::SentLost => {
                arrow(
                    &mut s,
                    (LEFT, y - band),
                    (mid, y),
                    &format!("{text} (lost)"),
                    true,
                );
                cross(&mut s, mid, y);
            }
            TraceKind::ReceivedLost | TraceKind::Undecodable => {
                arrow(
                    &mut s,
                    (RIGHT, y - band),
                    (mid, y),
                    &format!("{text} (lost)"),
                    true,
                );
                cross(&mut s, mid, y);
            }
            TraceKind::Timeout => {
                let _ = writeln!(
                    s,
                    r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#c60">{text}</text>"##,
                    LEFT - 8.0,
                    y + 4.0
                );
            }
            TraceKind::Note => {
                let _ = writeln!(
                    s,
                    r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#36c">{text}</text>"##,
                    LEFT - 8.0,
                    y + 4.0
                );
            }
        }
    }
    if log.overflow > 0 {
        let y = TOP + log.events.len() as f64 * ROW;
        let _ = writeln!(
            s,
            r#"<text x="{mid}" y="{y}" text-anchor="middle">… {} more events not drawn</text>"#,
            log.overflow
        );
    }
    s.push_str("</svg>\n");
    s
}

fn arrow(s: &mut String, from: (f64, f64), to: (f64, f64), label: &str, lost: bool) {
    let (color, dash) = if lost {
        ("#c00", r#" stroke-dasharray="5,3""#)
    } else {
        ("#333", "")
    };
    let marker = if lost { "" } else { r#" marker-end="url(#a)""# };
    let _ = writeln!(
        s,
        r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}"{dash}{marker}/>"#,
        from.0, from.1, to.0, to.1
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{color}">{label}</text>"#,
        f64::midpoint(from.0, to.0),
        f64::midpoint(from.1, to.1) - 5.0
    );
}

fn cross(s: &mut String, x: f64, y: f64) {
    let _ = writeln!(
        s,
        r##"<path d="M{:.1},{:.1} l10,10 M{:.1},{:.1} l-10,10" stroke="#c00" stroke-width="2"/>"##,
        x - 5.0,
        y - 5.0,
        x + 5.0,
        y - 5.0
    );
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_one_arrow_per_segment_and_marks_losses() {
        let trace = Trace::new();
        trace.hosts(
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        trace.record(TraceKind::Sent, "SYN seq=5");
        trace.record(TraceKind::Received, "SYN-ACK seq=6 ack=6");
        trace.record(TraceKind::SentLost, "ACK 7");
        trace.record(TraceKind::Timeout, "timeout #1");
        trace.record(TraceKind::Note, "state <x> & y");
        let svg = trace.svg();
        assert!(svg.starts_with("<svg"));
        assert_eq!(
            svg.matches("<line").count(),
            2 + 3,
            "two lifelines, three arrows"
        );
        assert!(svg.contains("ACK 7 (lost)"));
        assert_eq!(
            svg.matches("stroke=\"#c00\" stroke-width=\"2\"").count(),
            1,
            "one cross"
        );
        assert!(svg.contains("state &lt;x&gt; &amp; y"));
        assert!(svg.contains("this host 127.0.0.1:1"));
    }

    #[test]
    fn events_beyond_the_cap_are_counted_not_kept() {
        let trace = Trace::new();
        for _ in 0..MAX_EVENTS + 3 {
            trace.record(TraceKind::Sent, "x");
        }
        assert_eq!(trace.events().len(), MAX_EVENTS);
        assert!(trace.svg().contains("… 3 more events not drawn"));
    }
}
