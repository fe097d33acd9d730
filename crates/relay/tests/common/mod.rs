//! What the relay's wire tests share: a server with extra listeners, one of
//! our native clients driven by the test, waiting for a delivery.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use netkit::testing::Served;
use relay::client::{ClientConfig, Delivered, run as run_client};
use relay::proto::Kind;
use relay::server::{Config, Extra, run_with};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;

pub const BOUND: Duration = Duration::from_secs(30);

/// A server with the chat page: (native address, page address, the server).
pub async fn start_with_web(config: Config) -> (SocketAddr, SocketAddr, Served<()>) {
    let native = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addrs = (native.local_addr().unwrap(), web.local_addr().unwrap());
    let server = Served::spawn(addrs.0, |shutdown| async move {
        let extra = Extra {
            legacy: None,
            web: Some(web),
        };
        run_with(native, extra, config, shutdown).await.unwrap();
    });
    (addrs.0, addrs.1, server)
}

/// One of our clients: its line sender, and what it saw, as it comes.
pub fn native(
    addr: SocketAddr,
    name: &str,
) -> (mpsc::Sender<String>, mpsc::UnboundedReceiver<Delivered>) {
    let (tx, rx) = mpsc::channel(1024);
    let (seen_tx, seen) = mpsc::unbounded_channel();
    let cfg = ClientConfig {
        server: addr.to_string(),
        name: name.into(),
        attempts: 20,
        state: None,
    };
    tokio::spawn(async move {
        let _ = run_client(&cfg, rx, |d| {
            let _ = seen_tx.send(d.clone());
        })
        .await;
    });
    (tx, seen)
}

/// Waits for the chat line `text` among what a client sees.
pub async fn delivered(rx: &mut mpsc::UnboundedReceiver<Delivered>, text: &str) -> Delivered {
    timeout(BOUND, async {
        loop {
            let d = rx.recv().await.unwrap();
            if d.kind == Kind::Chat && d.text == text {
                return d;
            }
        }
    })
    .await
    .unwrap()
}
