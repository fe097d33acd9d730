//! `--trace-cwnd FILE` (issue #15): the congestion window and the goodput
//! of a sending socket over time, drawn as two stacked line charts. The
//! socket records a sample after each turn of its loop when cwnd changed or
//! half a millisecond passed; memory is bounded (samples past the cap are
//! counted, not kept).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::plot::{Panel, Series, svg};

const MAX_SAMPLES: usize = 50_000;
const EVERY: Duration = Duration::from_micros(500);

#[derive(Debug, Default)]
struct Log {
    start: Option<Instant>,
    /// (time since start, cwnd in bytes, bytes acknowledged so far).
    samples: Vec<(Duration, Option<usize>, u64)>,
    dropped: usize,
}

/// A shared recorder; clones record into the same log.
#[derive(Debug, Clone, Default)]
pub struct CwndTrace {
    log: Arc<Mutex<Log>>,
}

impl CwndTrace {
    pub fn new() -> CwndTrace {
        CwndTrace::default()
    }

    /// One observation of the sender.
    pub fn record(&self, now: Instant, cwnd: Option<usize>, acked: u64) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let start = *log.start.get_or_insert(now);
        let at = now.saturating_duration_since(start);
        if let Some(&(last_at, last_cwnd, _)) = log.samples.last()
            && last_cwnd == cwnd
            && at < last_at + EVERY
        {
            return;
        }
        if log.samples.len() >= MAX_SAMPLES {
            log.dropped += 1;
            return;
        }
        log.samples.push((at, cwnd, acked));
    }

    /// Samples kept.
    pub fn len(&self) -> usize {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .samples
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// cwnd (KiB) over time, and the goodput (MB/s) in about a hundred steps.
    pub fn svg(&self) -> String {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let cwnd: Vec<(f64, f64)> = log
            .samples
            .iter()
            .filter_map(|&(at, c, _)| c.map(|c| (ms(at), c as f64 / 1024.0)))
            .collect();
        let total = log.samples.last().map_or(Duration::ZERO, |s| s.0);
        let bin = (total / 100).max(Duration::from_millis(1));
        let mut goodput = Vec::new();
        let mut from = log.samples.first().copied();
        for &s in &log.samples {
            if let Some(f) = from
                && s.0 >= f.0 + bin
            {
                let secs = s.0.saturating_sub(f.0).as_secs_f64();
                goodput.push((ms(s.0), (s.2 - f.2) as f64 / secs / 1e6));
                from = Some(s);
            }
        }
        let title = if log.dropped > 0 {
            format!("congestion window (first {MAX_SAMPLES} samples)")
        } else {
            "congestion window".to_string()
        };
        svg(&[
            Panel {
                title,
                x_label: "time (ms)".into(),
                y_label: "cwnd (KiB)".into(),
                series: vec![Series {
                    name: "cwnd".into(),
                    points: cwnd,
                }],
            },
            Panel {
                title: "goodput".into(),
                x_label: "time (ms)".into(),
                y_label: "MB/s".into(),
                series: vec![Series {
                    name: "acknowledged".into(),
                    points: goodput,
                }],
            },
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_when_cwnd_changes_or_time_passes_and_draws_both_charts() {
        let t = CwndTrace::new();
        let t0 = Instant::now();
        t.record(t0, Some(1_000), 0);
        t.record(t0 + Duration::from_micros(10), Some(1_000), 10);
        assert_eq!(t.len(), 1, "same cwnd, too soon: not kept");
        t.record(t0 + Duration::from_micros(20), Some(2_000), 20);
        for i in 1..=40u64 {
            t.record(t0 + Duration::from_millis(i), Some(2_000), i * 1_000_000);
        }
        assert_eq!(t.len(), 42);
        let doc = t.svg();
        assert_eq!(doc.matches("<polyline").count(), 2);
        assert!(doc.contains("cwnd (KiB)") && doc.contains("MB/s"));
    }
}
