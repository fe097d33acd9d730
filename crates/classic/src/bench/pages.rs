//! The live map's subscribers under load (issue #18, TARGETS.md "web"): 200
//! TCP position clients at 20 Hz and 20 WebSocket subscribers of the map's
//! feed, every position timed from its send to each subscriber's delivery;
//! the TCP clients' own latency in the same run and the TCP-only run are the
//! baselines. A subscriber that fell behind gets a fresh snapshot instead of
//! what it missed: each such snapshot counts as dropped.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::{FanOut, SentTable, fan_out, percentile, sent_at, sent_table};
use crate::server::{Options, run_with_web};
use crate::{Error, Kind};

/// What the subscribers saw.
#[derive(Debug, Clone)]
pub struct PagesRow {
    /// WebSocket subscribers.
    pub subscribers: usize,
    /// TCP position clients.
    pub clients: usize,
    /// Positions delivered to subscribers per second.
    pub deliveries_per_s: f64,
    /// Send to subscriber delivery, p50.
    pub p50: Duration,
    /// p99.
    pub p99: Duration,
    /// Snapshots sent because a subscriber fell behind (updates it missed).
    pub dropped: usize,
    /// The TCP clients' p99 in the same run.
    pub tcp_p99: Duration,
}

/// `(x, y)` of a `move` message.
fn move_xy(text: &str) -> Option<(i64, i64)> {
    let rest = text.strip_prefix(r#"{"type":"move","id":"#)?;
    let (_, rest) = rest.split_once(r#","x":"#)?;
    let (x, rest) = rest.split_once(r#","y":"#)?;
    let y = rest.strip_suffix('}')?;
    Some((x.parse().ok()?, y.parse().ok()?))
}

/// One subscriber until `end`: (deliveries, latencies, snapshots after the first).
async fn subscribe(
    web: SocketAddr,
    sent: SentTable,
    end: Instant,
) -> Result<(u64, Vec<Duration>, usize), Error> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{web}/ws"))
        .await
        .map_err(|e| Error::Protocol(format!("WebSocket: {e}")))?;
    let mut deliveries = 0;
    let mut lat = Vec::new();
    let mut snapshots = 0usize;
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            () = tokio::time::sleep_until(end.into()) => break,
        };
        let Some(Ok(Message::Text(t))) = msg else {
            break;
        };
        let now = Instant::now();
        if let Some((x, y)) = move_xy(t.as_str()) {
            deliveries += 1;
            if let Some(at) = sent_at(&sent, x as usize, y) {
                lat.push(now - at);
            }
        } else if t.as_str().starts_with(r#"{"type":"snapshot""#) {
            snapshots += 1;
        }
    }
    Ok((deliveries, lat, snapshots.saturating_sub(1)))
}

/// The positions server with its map page, `clients` TCP clients sending every
/// `period` and `subscribers` WebSocket subscribers, for `secs`.
pub(super) async fn run(
    stop: &CancellationToken,
    clients: usize,
    subscribers: usize,
    period: Duration,
    secs: Duration,
) -> Result<PagesRow, Error> {
    let tcp = TcpListener::bind("127.0.0.1:0").await?;
    let web = TcpListener::bind("127.0.0.1:0").await?;
    let (addr, web_addr) = (tcp.local_addr()?, web.local_addr()?);
    let s = stop.clone();
    let mut opts = Options::new(Kind::Positions);
    opts.max_clients = clients + subscribers + 16;
    tokio::spawn(async move {
        let _ = run_with_web(tcp, Some(web), opts, s.cancelled_owned()).await;
    });
    let sent = sent_table(clients);
    let end = Instant::now() + secs;
    let subs: Vec<_> = (0..subscribers)
        .map(|_| {
            tokio::spawn(subscribe(
                web_addr,
                sent.clone(),
                end + Duration::from_millis(200),
            ))
        })
        .collect();
    let FanOut {
        latencies: tcp_lat, ..
    } = fan_out(addr, clients, period, end, false, &sent).await?;
    let mut deliveries = 0;
    let mut lat = Vec::new();
    let mut dropped = 0;
    for s in subs {
        let (d, l, missed) = s
            .await
            .map_err(|e| Error::Protocol(format!("subscriber task: {e}")))??;
        deliveries += d;
        lat.extend(l);
        dropped += missed;
    }
    lat.sort_unstable();
    Ok(PagesRow {
        subscribers,
        clients,
        deliveries_per_s: deliveries as f64 / secs.as_secs_f64(),
        p50: percentile(&lat, 0.50),
        p99: percentile(&lat, 0.99),
        dropped,
        tcp_p99: percentile(&tcp_lat, 0.99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_are_read_back() {
        assert_eq!(
            move_xy(r#"{"type":"move","id":10001,"x":3,"y":-4}"#),
            Some((3, -4))
        );
        assert_eq!(move_xy(r#"{"type":"join","id":10001}"#), None);
    }
}
