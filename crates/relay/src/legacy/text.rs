//! What the original chat's payloads say, in our events' terms (issue #17):
//! its chat lines are `name: text`, its join notices
//! `Server: ('IP', PORT) has joined the net`.

use crate::proto::Kind;

/// The name an original client goes by until its first line names it: its
/// address as the original server printed it.
pub fn address_name(peer: std::net::SocketAddr) -> String {
    format!("('{}', {})", peer.ip(), peer.port())
}

/// The payload an original client shows for one of our events.
pub fn payload(kind: Kind, name: &str, text: &str) -> String {
    match kind {
        Kind::Chat => format!("{name}: {text}"),
        Kind::Join => format!("Server: {name} has joined the net"),
        Kind::Leave if text.is_empty() => format!("Server: {name} has left the net"),
        Kind::Leave => format!("Server: {name} has left the net ({text})"),
    }
}

/// An original client's line as (name, text): `name: text`, or, with no
/// `": "` in it, the whole line said by `fallback`.
pub fn split_line<'a>(line: &'a str, fallback: &'a str) -> (&'a str, &'a str) {
    match line.split_once(": ") {
        Some((name, text)) if !name.is_empty() => (name, text),
        _ => (fallback, line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_as_the_original_prints_them() {
        let peer: std::net::SocketAddr =
            "127.0.0.1:50412".parse().unwrap_or_else(|_| unreachable!());
        let name = address_name(peer);
        assert_eq!(
            payload(Kind::Join, &name, ""),
            "Server: ('127.0.0.1', 50412) has joined the net"
        );
        assert_eq!(payload(Kind::Chat, "ana", "hola: sí"), "ana: hola: sí");
        assert_eq!(
            payload(Kind::Leave, "ana", "heartbeat timeout"),
            "Server: ana has left the net (heartbeat timeout)"
        );
    }

    #[test]
    fn lines_split_at_the_first_colon_space() {
        assert_eq!(split_line("ana: hola: sí", "x"), ("ana", "hola: sí"));
        assert_eq!(split_line("sin nombre", "x"), ("x", "sin nombre"));
        assert_eq!(split_line(": vacío", "x"), ("x", ": vacío"));
    }
}
