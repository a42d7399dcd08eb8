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
    connected: AtomicUsize,
    clients: Mutex<Clients>,
    max_connections: usize,
    max_per_ip: usize,
    /// Whether loopback peers count against `max_per_ip` too. Off by
    /// default: on a VPS loopback means a local benchmark, test or proxy,
    /// which opens thousands of connections from one address on purpose.
    limit_loopback: bool,
}

impl Registry {
    /// `max_per_ip` of 0 means no per-address limit. Loopback peers are
    /// exempt from it unless [`Registry::limit_loopback`] says otherwise.
    pub fn new(max_connections: usize, max_per_ip: usize) -> Self {
        Registry {
            next_id: AtomicI32::new(1),
            connected: AtomicUsize::new(0),
            clients: Mutex::new(Clients::default()),
            max_connections,
            max_per_ip,
            limit_loopback: false,
        }
    }

    /// Also applies the per-IP limit to loopback peers (127.0.0.0/8, ::1).
    pub fn limit_loopback(mut self, limit: bool) -> Self {
        self.limit_loopback = limit;
        self
    }

    /// Whether `ip` is held to the per-IP limit.
    fn per_ip_limited(&self, ip: IpAddr) -> bool {
        self.max_per_ip > 0 && (self.limit_loopback || !is_loopback(ip))
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
        if self.per_ip_limited(ip) && from_ip >= self.max_per_ip {
            return Err(Refusal::PerIpLimit {
                ip,
                max: self.max_per_ip,
            });
        }
        let id = self.next_id.load(Ordering::Relaxed);
        if id == ClientId::MAX {
            return Err(Refusal::IdsExhausted);
        }
        self.next_id.store(id + 1, Ordering::Relaxed);
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

/// Loopback, including IPv4 loopback seen through a dual-stack socket
/// (`::ffff:127.0.0.1`).
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
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

    #[test]
    fn loopback_is_exempt_from_the_per_ip_limit_unless_asked() {
        let registry = Arc::new(Registry::new(100, 2));
        let local: Vec<_> = (1..=5)
            .map(|port| registry.register(Service::Math, peer([127, 0, 0, 1], port)))
            .collect();
        assert!(local.iter().all(Result::is_ok), "loopback is exempt");
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:9".parse().unwrap();
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        let more: Vec<_> = [mapped, mapped, mapped, v6, v6, v6]
            .into_iter()
            .map(|addr| registry.register(Service::Math, addr))
            .collect();
        assert!(
            more.iter().all(Result::is_ok),
            "::1 and mapped 127.0.0.1 too"
        );
        assert_eq!(registry.len(), 11);

        let strict = Arc::new(Registry::new(100, 2).limit_loopback(true));
        let _a = strict.register(Service::Math, peer([127, 0, 0, 1], 1));
        let _b = strict.register(Service::Math, peer([127, 0, 0, 1], 2));
        assert!(matches!(
            strict.register(Service::Math, peer([127, 0, 0, 1], 3)),
            Err(Refusal::PerIpLimit { max: 2, .. })
        ));
    }
}
