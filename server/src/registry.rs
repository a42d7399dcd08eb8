//! The one registry of connected clients: ids from one space shared by every
//! service, who is connected where, and the connection limits.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use shared::ClientId;

/// Which listener a client came in through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// The native game protocol.
    Game,
    TestPackets,
    Math,
    Positions,
}

impl Service {
    pub const ALL: [Service; 4] = [
        Service::Game,
        Service::TestPackets,
        Service::Math,
        Service::Positions,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Service::Game => "game",
            Service::TestPackets => "test_packets",
            Service::Math => "math",
            Service::Positions => "positions",
        }
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Why a connection was refused before it got an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("server full ({max} connections)")]
    ServerFull { max: usize },
    #[error("too many connections from {ip} ({max})")]
    PerIpLimit { ip: IpAddr, max: usize },
    #[error("client ids exhausted")]
    IdsExhausted,
}

impl Refusal {
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::ServerFull { .. } => "server_full",
            Refusal::PerIpLimit { .. } => "per_ip_limit",
            Refusal::IdsExhausted => "ids_exhausted",
        }
    }
}

/// What the registry knows about one connected client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEntry {
    pub service: Service,
    pub peer: SocketAddr,
}

#[derive(Debug, Default)]
struct Clients {
    by_id: HashMap<ClientId, ClientEntry>,
    per_ip: HashMap<IpAddr, usize>,
}

/// Connected clients of every service.
#[derive(Debug)]
pub struct Registry {
    next_id: AtomicI32,
    /// The ids this registry hands out, in order, wrapping around (an id
    /// still in use is skipped): `1..=i32::MAX - 1` alone, or one node's
    /// slice of the id space in a cluster.
    ids: std::ops::RangeInclusive<ClientId>,
    connected: AtomicUsize,
    clients: Mutex<Clients>,
    max_connections: usize,
    max_per_ip: usize,
}

impl Registry {
    /// `max_per_ip` of 0 means no per-address limit.
    pub fn new(max_connections: usize, max_per_ip: usize) -> Self {
        Registry {
            next_id: AtomicI32::new(1),
            ids: 1..=ClientId::MAX - 1,
            connected: AtomicUsize::new(0),
            clients: Mutex::new(Clients::default()),
            max_connections,
            max_per_ip,
        }
    }

    /// Hands out ids from `ids` only (a cluster node's slice).
    pub fn with_ids(mut self, ids: std::ops::RangeInclusive<ClientId>) -> Self {
        self.next_id = AtomicI32::new(*ids.start());
        self.ids = ids;
        self
    }

    /// The next id not in use, wrapping around at the end of the range.
    fn next_free_id(&self, clients: &Clients) -> Option<ClientId> {
        let span = i64::from(*self.ids.end()) - i64::from(*self.ids.start()) + 1;
        let mut id = self.next_id.load(Ordering::Relaxed);
        for _ in 0..span.min(clients.by_id.len() as i64 + 1) {
            let candidate = id;
            id = if id >= *self.ids.end() {
                *self.ids.start()
            } else {
                id + 1
            };
            if !clients.by_id.contains_key(&candidate) {
                self.next_id.store(id, Ordering::Relaxed);
                return Some(candidate);
            }
        }
        None
    }

    /// Admits a new connection and gives it the next id, or refuses it.
    /// The client stays registered until the returned handle is dropped.
    pub fn register(
        self: &Arc<Self>,
        service: Service,
        peer: SocketAddr,
    ) -> Result<Registration, Refusal> {
        let mut clients = self.lock();
        if clients.by_id.len() >= self.max_connections {
            return Err(Refusal::ServerFull {
                max: self.max_connections,
            });
        }
        let ip = peer.ip();
        let from_ip = clients.per_ip.get(&ip).copied().unwrap_or(0);
        if self.max_per_ip > 0 && from_ip >= self.max_per_ip {
            return Err(Refusal::PerIpLimit {
                ip,
                max: self.max_per_ip,
            });
        }
        let Some(id) = self.next_free_id(&clients) else {
            return Err(Refusal::IdsExhausted);
        };
        clients.by_id.insert(id, ClientEntry { service, peer });
        clients.per_ip.insert(ip, from_ip + 1);
        self.connected.store(clients.by_id.len(), Ordering::Relaxed);
        Ok(Registration {
            registry: Arc::clone(self),
            id,
            service,
        })
    }

    /// Clients connected right now, all services counted.
    pub fn len(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Connected clients per service.
    pub fn count_by_service(&self) -> HashMap<Service, usize> {
        let mut counts: HashMap<Service, usize> = Service::ALL.iter().map(|&s| (s, 0)).collect();
        for entry in self.lock().by_id.values() {
            *counts.entry(entry.service).or_default() += 1;
        }
        counts
    }

    pub fn get(&self, id: ClientId) -> Option<ClientEntry> {
        self.lock().by_id.get(&id).cloned()
    }

    fn remove(&self, id: ClientId) {
        let mut clients = self.lock();
        if let Some(entry) = clients.by_id.remove(&id) {
            let ip = entry.peer.ip();
            match clients.per_ip.get_mut(&ip) {
                Some(n) if *n > 1 => *n -= 1,
                _ => {
                    clients.per_ip.remove(&ip);
                }
            }
        }
        self.connected.store(clients.by_id.len(), Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Clients> {
        // A panic elsewhere while holding the lock leaves plain data behind;
        // keep serving rather than poisoning every later connection.
        self.clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A registered client; dropping it removes the client from the registry, so
/// every way a connection can end (error, timeout, shutdown, panic) cleans up.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<Registry>,
    id: ClientId,
    service: Service,
}

impl Registration {
    pub fn id(&self) -> ClientId {
        self.id
    }

    pub fn service(&self) -> Service {
        self.service
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((ip, port))
    }

    #[test]
    fn ids_are_unique_positive_and_shared_by_services() {
        let registry = Arc::new(Registry::new(10, 0));
        let a = registry
            .register(Service::Math, peer([127, 0, 0, 1], 1))
            .unwrap();
        let b = registry
            .register(Service::Positions, peer([127, 0, 0, 1], 2))
            .unwrap();
        assert_eq!((a.id(), b.id()), (1, 2));
        drop(a);
        let c = registry
            .register(Service::Game, peer([127, 0, 0, 1], 3))
            .unwrap();
        assert_eq!(c.id(), 3, "ids are never reused");
        assert_eq!(registry.len(), 2);
        assert_eq!(registry.count_by_service()[&Service::Math], 0);
        assert_eq!(registry.count_by_service()[&Service::Game], 1);
    }

    #[test]
    fn a_node_slice_wraps_around_and_skips_ids_in_use() {
        let registry = Arc::new(Registry::new(10, 0).with_ids(0x0100_0001..=0x0100_0003));
        let register = || registry.register(Service::Math, peer([127, 0, 0, 1], 1));
        let a = register().unwrap();
        let b = register().unwrap();
        assert_eq!((a.id(), b.id()), (0x0100_0001, 0x0100_0002));
        drop(b);
        let c = register().unwrap();
        let d = register().unwrap();
        assert_eq!(c.id(), 0x0100_0003);
        assert_eq!(d.id(), 0x0100_0002, "wraps, skipping the id still in use");
        assert_eq!(register().unwrap_err(), Refusal::IdsExhausted);
        drop(a);
    }

    #[test]
    fn limits_refuse_and_free_up() {
        let registry = Arc::new(Registry::new(3, 2));
        let a = registry
            .register(Service::Math, peer([10, 0, 0, 1], 1))
            .unwrap();
        let _b = registry
            .register(Service::Math, peer([10, 0, 0, 1], 2))
            .unwrap();
        assert!(matches!(
            registry.register(Service::Math, peer([10, 0, 0, 1], 3)),
            Err(Refusal::PerIpLimit { max: 2, .. })
        ));
        let _c = registry
            .register(Service::Math, peer([10, 0, 0, 2], 1))
            .unwrap();
        assert_eq!(
            registry
                .register(Service::Math, peer([10, 0, 0, 3], 1))
                .unwrap_err(),
            Refusal::ServerFull { max: 3 }
        );
        drop(a);
        assert!(
            registry
                .register(Service::Math, peer([10, 0, 0, 1], 4))
                .is_ok()
        );
    }
}
