//! Connecting a client to a server, with an error that names what could not
//! be reached and the likely reason (issue #19): `cannot connect to
//! 127.0.0.1:1: connection refused (is the server running?)` rather than a
//! bare `Connection refused (os error 111)`.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::Error;

/// Connects to `addr` (`host:port`), giving up after `wait`. Sets
/// `TCP_NODELAY`: every protocol here writes whole messages.
pub async fn connect(addr: &str, wait: Duration) -> Result<TcpStream, Error> {
    let failed = |why: String| Error::Connect {
        addr: addr.to_string(),
        why,
    };
    match tokio::time::timeout(wait, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(failed(reason(&e))),
        Err(_) => Err(failed(format!(
            "no answer within {wait:?} (is the address right, and the server up?)"
        ))),
    }
}

/// Why a connect failed, in words, with a hint where one helps.
pub fn reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            "connection refused (is the server running, on that port?)".into()
        }
        io::ErrorKind::TimedOut => "timed out (is the address right, and the server up?)".into(),
        io::ErrorKind::InvalidInput => format!("{e} (expected host:port)"),
        io::ErrorKind::AddrNotAvailable | io::ErrorKind::HostUnreachable => {
            format!("{e} (is the address right?)")
        }
        _ if e.to_string().contains("failed to lookup address") => {
            "no such host (is the name right?)".into()
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connect_names_the_address_and_the_likely_cause() {
        // A port just released: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let e = connect(&addr, Duration::from_secs(5)).await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("cannot connect to {addr}: connection refused")),
            "{text}"
        );
        assert!(text.contains("is the server running"), "{text}");
        assert!(e.is_refused());
    }

    #[tokio::test]
    async fn a_bad_address_says_what_was_expected() {
        let e = connect("no-port-here", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("cannot connect to no-port-here"),
            "{e}"
        );
        assert!(!e.is_refused());
    }

    #[tokio::test]
    async fn a_listening_server_is_reached() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let s = connect(&addr, Duration::from_secs(5)).await.unwrap();
        assert!(s.nodelay().unwrap());
    }
}
