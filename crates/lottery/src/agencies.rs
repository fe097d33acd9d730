//! One live connection per agency (hostile input: any connection could send
//! batches "as agency 1"; the protocol, like the seed's, carries no
//! credentials, so the server at least makes sure that two live connections
//! never speak for the same agency at once).
//!
//! A connection claims the agency named by its first message and keeps it
//! until it closes; a message for another agency on that connection, or a
//! claim on an agency that another live connection holds, is refused and the
//! clash logged (`agencia_duplicada`). The claim is released when the
//! connection's [`Claim`] drops.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Who holds which agency now.
#[derive(Debug, Default)]
pub struct Agencies {
    held: Mutex<HashMap<u8, (u64, SocketAddr)>>,
}

/// A connection's hold on its agency; released on drop.
#[derive(Debug)]
pub struct Claim {
    agencies: Arc<Agencies>,
    agency: u8,
    conn: u64,
}

impl Claim {
    /// The agency held.
    pub fn agency(&self) -> u8 {
        self.agency
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut held = self
            .agencies
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if held.get(&self.agency).is_some_and(|(c, _)| *c == self.conn) {
            held.remove(&self.agency);
        }
    }
}

impl Agencies {
    /// Claims `agency` for connection `conn` from `peer`; `Err` names the
    /// live connection that holds it.
    pub fn claim(
        self: &Arc<Self>,
        agency: u8,
        conn: u64,
        peer: SocketAddr,
    ) -> Result<Claim, SocketAddr> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, holder)) = held.get(&agency) {
            return Err(*holder);
        }
        held.insert(agency, (conn, peer));
        Ok(Claim {
            agencies: Arc::clone(self),
            agency,
            conn,
        })
    }

    /// Agencies held now.
    pub fn held(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn one_connection_per_agency_until_it_closes() {
        let a = Arc::new(Agencies::default());
        let first = a.claim(1, 10, peer(1000)).unwrap();
        assert_eq!(a.claim(1, 11, peer(2000)).unwrap_err(), peer(1000));
        let other = a.claim(2, 11, peer(2000)).unwrap();
        assert_eq!((first.agency(), other.agency(), a.held()), (1, 2, 2));
        drop(first);
        let again = a.claim(1, 12, peer(3000)).unwrap();
        assert_eq!(again.agency(), 1);
        drop(other);
        assert_eq!(a.held(), 1);
    }
}
