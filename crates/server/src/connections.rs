//! Who holds the listener's connection slots, so that one client address cannot hold them all.
//!
//! A connection takes a slot when it is accepted, before its TLS handshake. An address may hold
//! at most `max_per_address` slots: past that its new connections are closed at once, without a
//! handshake. When every slot is taken, an idle keep-alive connection gives up its slot to the
//! newcomer, taken from the address that holds the most: a client that parks connections loses
//! them first, and a client that asks for little always finds room.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Why a connection got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its address holds `max_per_address` connections already.
    PerAddress,
    /// Every slot is busy with a request (none idle to give up).
    Full,
}

/// One connection's state, shared between its task and the registry.
#[derive(Debug, Default)]
pub struct ConnectionState {
    /// Requests being answered on it.
    in_flight: AtomicUsize,
    /// It finished its TLS handshake (an idle connection that has not is not keep-alive).
    established: AtomicBool,
    /// Its slot was handed to another connection; the task must close it.
    evicted: AtomicBool,
    close: Notify,
}

impl ConnectionState {
    pub fn handshake_done(&self) {
        self.established.store(true, Ordering::Release);
    }

    /// A request starts on this connection; the guard marks its end.
    pub fn request(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        RequestGuard(Arc::clone(self))
    }

    fn idle(&self) -> bool {
        self.established.load(Ordering::Acquire) && self.in_flight.load(Ordering::Acquire) == 0
    }

    /// Completes when the registry asks this connection to close.
    pub async fn closing(&self) {
        let notified = self.close.notified();
        if self.evicted.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }
}

/// Marks the end of a request (see [`ConnectionState::request`]).
pub struct RequestGuard(Arc<ConnectionState>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    per_address: HashMap<IpAddr, usize>,
    connections: HashMap<u64, (IpAddr, Arc<ConnectionState>)>,
}

/// The slots of one listener.
pub struct Connections {
    max_total: usize,
    max_per_address: usize,
    inner: Mutex<Inner>,
}

impl Connections {
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_address,
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(inner) => inner,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A slot for a connection from `address`, evicting an idle one if every slot is taken.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Slot, Refusal> {
        let address = mayfly_acme::limits::client_key(address);
        let mut inner = self.lock();
        if inner.per_address.get(&address).copied().unwrap_or(0) >= self.max_per_address {
            return Err(Refusal::PerAddress);
        }
        if inner.connections.len() >= self.max_total {
            let victim = inner
                .connections
                .iter()
                .filter(|(_, (_, state))| state.idle())
                .max_by_key(|(_, (holder, _))| inner.per_address.get(holder).copied())
                .map(|(id, _)| *id);
            let Some(victim) = victim else {
                return Err(Refusal::Full);
            };
            if let Some((holder, state)) = inner.connections.remove(&victim) {
                release(&mut inner, holder);
                state.evicted.store(true, Ordering::Release);
                state.close.notify_one();
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let state = Arc::new(ConnectionState::default());
        inner.connections.insert(id, (address, Arc::clone(&state)));
        *inner.per_address.entry(address).or_insert(0) += 1;
        Ok(Slot {
            id,
            address,
            state,
            registry: Arc::clone(self),
        })
    }

    /// Connections held now, in all and by `address`.
    pub fn held(&self, address: IpAddr) -> (usize, usize) {
        let address = mayfly_acme::limits::client_key(address);
        let inner = self.lock();
        (
            inner.connections.len(),
            inner.per_address.get(&address).copied().unwrap_or(0),
        )
    }
}

fn release(inner: &mut Inner, address: IpAddr) {
    if let Some(count) = inner.per_address.get_mut(&address) {
        *count -= 1;
        if *count == 0 {
            inner.per_address.remove(&address);
        }
    }
}

/// A connection's slot, given back when dropped (unless it was already handed on).
pub struct Slot {
    id: u64,
    address: IpAddr,
    pub state: Arc<ConnectionState>,
    registry: Arc<Connections>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        if inner.connections.remove(&self.id).is_some() {
            release(&mut inner, self.address);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn the_addresses_of_one_ipv6_64_hold_one_share() {
        let connections = Connections::new(10, 2);
        let host = |last: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]);
        let held = [
            connections.admit(host(1)).unwrap(),
            connections.admit(host(2)).unwrap(),
        ];
        assert_eq!(connections.admit(host(3)).err(), Some(Refusal::PerAddress));
        assert_eq!(connections.held(host(9)), (2, 2));
        connections
            .admit(IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]))
            .unwrap();
        drop(held);
    }

    #[test]
    fn an_address_holds_at_most_its_share() {
        let connections = Connections::new(10, 2);
        let a = [
            connections.admit(address(1)).unwrap(),
            connections.admit(address(1)).unwrap(),
        ];
        assert_eq!(
            connections.admit(address(1)).err(),
            Some(Refusal::PerAddress)
        );
        let b = connections.admit(address(2)).unwrap();
        drop(a);
        assert_eq!(connections.held(address(1)), (1, 0));
        connections.admit(address(1)).unwrap();
        drop(b);
    }

    #[test]
    fn when_full_an_idle_connection_of_the_greediest_address_gives_way() {
        let connections = Connections::new(3, 3);
        let greedy: Vec<Slot> = (0..2)
            .map(|_| connections.admit(address(1)).unwrap())
            .collect();
        let modest = connections.admit(address(2)).unwrap();
        for slot in greedy.iter().chain([&modest]) {
            slot.state.handshake_done();
        }
        // Busy connections are never evicted.
        let busy: Vec<RequestGuard> = greedy
            .iter()
            .chain([&modest])
            .map(|s| s.state.request())
            .collect();
        assert_eq!(connections.admit(address(3)).err(), Some(Refusal::Full));
        drop(busy);
        let newcomer = connections.admit(address(3)).unwrap();
        let evicted: Vec<&Slot> = greedy
            .iter()
            .filter(|s| s.state.evicted.load(Ordering::Acquire))
            .collect();
        assert_eq!(evicted.len(), 1, "one of the greedy address's connections");
        assert!(!modest.state.evicted.load(Ordering::Acquire));
        assert_eq!(connections.held(address(1)), (3, 1));
        drop(greedy);
        assert_eq!(connections.held(address(3)), (2, 1));
        drop(newcomer);
    }

    #[test]
    fn a_connection_still_in_its_handshake_is_not_idle() {
        let connections = Connections::new(1, 1);
        let _handshaking = connections.admit(address(1)).unwrap();
        assert_eq!(connections.admit(address(2)).err(), Some(Refusal::Full));
    }

    #[tokio::test]
    async fn an_evicted_connection_is_told_to_close() {
        let connections = Connections::new(1, 1);
        let slot = connections.admit(address(1)).unwrap();
        slot.state.handshake_done();
        let state = Arc::clone(&slot.state);
        let waiting = tokio::spawn(async move { state.closing().await });
        tokio::task::yield_now().await;
        let _newcomer = connections.admit(address(2)).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the evicted connection heard it must close")
            .unwrap();
    }
}
