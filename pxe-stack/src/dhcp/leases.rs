//! The lease table: pure state that [`respond`](super::respond) changes, and the shared handle
//! other servers read through [`HostLookup`].

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::store::{Change, ChangeLog, StoredLease};
use crate::{HostLookup, Mac};

/// Where an address stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Offered and held for the client until `expires`; not persisted.
    Offered,
    /// Acknowledged: the client holds it until `expires`.
    Bound,
    /// Given back by the client; kept so the same MAC gets it again.
    Released,
    /// Declined by a client, or answered a ping probe (someone else uses it): out of the pool
    /// until `expires`.
    Declined,
}

/// One address and who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The address.
    pub addr: Ipv4Addr,
    /// The client (for a declined address, the client that declined it, or the client it was
    /// about to be offered to when a ping probe found it in use).
    pub mac: Mac,
    /// When the lease (or offer, or quarantine) ends, in seconds since the Unix epoch.
    pub expires: u64,
    /// The hostname handed out or sent by the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Where the address stands.
    pub state: State,
    /// The client identifier (option 61, colon-separated hex) the lease is keyed by, under
    /// [`LeaseIdentity::ClientId`](crate::LeaseIdentity::ClientId); `None` for leases keyed by
    /// MAC (the default rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// Who a lease belongs to: a MAC, or (under [`LeaseIdentity::ClientId`](crate::LeaseIdentity))
/// a client identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Mac(Mac),
    ClientId(String),
}

impl Lease {
    /// The identity this lease is keyed by.
    pub(crate) fn key(&self) -> Key {
        match &self.client_id {
            Some(id) => Key::ClientId(id.clone()),
            None => Key::Mac(self.mac),
        }
    }

    /// Whether the lease belongs to `key` (without building a key of its own).
    pub(crate) fn held_by(&self, key: &Key) -> bool {
        match key {
            Key::Mac(m) => self.client_id.is_none() && self.mac == *m,
            Key::ClientId(id) => self.client_id.as_deref() == Some(id.as_str()),
        }
    }

    /// Whether the lease still holds the address at `now` (seconds since the epoch).
    pub fn active(&self, now: u64) -> bool {
        self.expires > now && self.state != State::Released
    }
}

/// Seconds since the Unix epoch (0 for times before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Every address the server knows about. Invariant: one entry per address and at most one
/// non-declined address per client (its MAC, or under
/// [`LeaseIdentity::ClientId`](crate::LeaseIdentity::ClientId) its client identifier), so two
/// clients never hold one address.
#[derive(Debug, Clone, Default)]
pub struct LeaseTable {
    by_addr: HashMap<Ipv4Addr, Lease>,
    by_key: HashMap<Key, Ipv4Addr>,
    chained: HashSet<Mac>,
    /// Addresses a ping probe found silent, with the client they were then offered to; while
    /// the entry stays with that client, a repeated DISCOVER gets its offer without a new probe.
    probed: HashMap<Ipv4Addr, Mac>,
    /// Where the last pool search per subnet stopped, so searches do not rescan from the start.
    pub(crate) cursors: HashMap<usize, u32>,
    /// Persisted entries changed since the last [`take_changes`](LeaseTable::take_changes),
    /// for a store that keeps leases one by one (such as the shared PostgreSQL one).
    changed: ChangeLog<Lease>,
    /// Pool searches start at a point hashed from the client instead of at the shared cursor
    /// (see [`set_hashed_start`](LeaseTable::set_hashed_start)).
    pub(crate) hashed_start: bool,
}

impl StoredLease for Lease {
    type Addr = Ipv4Addr;
    fn addr(&self) -> Ipv4Addr {
        self.addr
    }
    fn persisted(&self) -> bool {
        self.state != State::Offered
    }
}

impl LeaseTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A table holding `leases` (for example read from the lease file). A later entry for the
    /// same address or MAC replaces an earlier one; offers are skipped.
    pub fn from_leases(leases: impl IntoIterator<Item = Lease>) -> Self {
        let mut t = Self::new();
        for l in leases {
            if l.state != State::Offered {
                t.insert(l);
            }
        }
        t
    }

    /// The entry for an address.
    pub fn get(&self, addr: Ipv4Addr) -> Option<&Lease> {
        self.by_addr.get(&addr)
    }

    /// The entry a MAC holds (bound, offered or released). Under
    /// [`LeaseIdentity::ClientId`](crate::LeaseIdentity::ClientId) a MAC may hold several
    /// (one per client identifier): then the bound one that lasts longest.
    pub fn for_mac(&self, mac: Mac) -> Option<&Lease> {
        self.for_key(&Key::Mac(mac)).or_else(|| {
            self.by_addr
                .values()
                .filter(|l| l.mac == mac && l.client_id.is_some() && l.state != State::Declined)
                .max_by_key(|l| (l.state == State::Bound, l.expires, l.addr))
        })
    }

    /// The entry a client holds.
    pub(crate) fn for_key(&self, key: &Key) -> Option<&Lease> {
        self.by_key.get(key).and_then(|a| self.by_addr.get(a))
    }

    /// Every entry, in address order.
    pub fn leases(&self) -> Vec<Lease> {
        let mut v: Vec<Lease> = self.by_addr.values().cloned().collect();
        v.sort_by_key(|l| l.addr);
        v
    }

    /// The entries worth keeping across a restart (everything but offers), in address order.
    pub fn persistent(&self) -> Vec<Lease> {
        let mut v: Vec<Lease> = self
            .by_addr
            .values()
            .filter(|l| l.state != State::Offered)
            .cloned()
            .collect();
        v.sort_by_key(|l| l.addr);
        v
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    /// Note that the entry at `addr` is about to change (before it does).
    fn touch(&mut self, addr: Ipv4Addr) {
        self.changed.touch(addr, self.by_addr.get(&addr));
    }

    /// The persisted entries changed since the last call, in address order; entries that
    /// changed back to what they were are left out. Offers are never changes.
    pub fn take_changes(&mut self) -> Vec<Change<Lease>> {
        let by_addr = &self.by_addr;
        self.changed.take(|a| by_addr.get(&a).cloned())
    }

    /// Put changes back (a store could not take them), to be taken again with the next ones.
    /// A change already pending again keeps its older `before`.
    pub fn restore_changes(&mut self, changes: Vec<Change<Lease>>) {
        self.changed.restore(changes);
    }

    /// Whether the entry at `addr` changed since the last [`take_changes`](Self::take_changes).
    pub fn is_changed(&self, addr: Ipv4Addr) -> bool {
        self.changed.contains(addr)
    }

    /// Start pool searches at a point hashed from the client (its MAC or client identifier)
    /// rather than where the last search stopped. Servers that share one lease store then
    /// offer a client the same address independently, instead of each offering its next free
    /// one to whoever asks first, which would make their ACKs collide.
    pub fn set_hashed_start(&mut self, on: bool) {
        self.hashed_start = on;
    }

    /// Take in an entry the shared store holds (another server's, or the store's answer to a
    /// conflict): it replaces what this table held at that address and for that client, and
    /// is not a change of this server's to store.
    pub fn absorb(&mut self, lease: Lease) {
        let addr = lease.addr;
        let prev = (lease.state != State::Declined)
            .then(|| self.by_key.get(&lease.key()).copied())
            .flatten();
        self.insert(lease);
        self.changed.forget(addr);
        if let Some(p) = prev {
            self.changed.forget(p);
        }
    }

    /// Drop the entry at `addr` as a store refused it: it was never stored, so its removal is
    /// not a change to store either.
    pub fn discard(&mut self, addr: Ipv4Addr) {
        self.remove(addr);
        self.changed.forget(addr);
    }

    /// Put an entry in, removing whatever the address or the MAC held before.
    pub fn insert(&mut self, lease: Lease) {
        self.touch(lease.addr);
        if lease.state != State::Declined
            && let Some(&prev) = self.by_key.get(&lease.key())
            && prev != lease.addr
        {
            self.touch(prev);
        }
        if lease.state == State::Declined
            || self
                .probed
                .get(&lease.addr)
                .is_some_and(|m| *m != lease.mac)
        {
            self.probed.remove(&lease.addr);
        }
        if let Some(old) = self.by_addr.remove(&lease.addr) {
            let key = old.key();
            if self.by_key.get(&key) == Some(&old.addr) {
                self.by_key.remove(&key);
            }
        }
        if lease.state != State::Declined
            && let Some(prev) = self.by_key.insert(lease.key(), lease.addr)
            && prev != lease.addr
        {
            self.by_addr.remove(&prev);
            self.probed.remove(&prev);
        }
        self.by_addr.insert(lease.addr, lease);
    }

    /// Remove the entry for an address.
    pub fn remove(&mut self, addr: Ipv4Addr) -> Option<Lease> {
        if self.by_addr.contains_key(&addr) {
            self.touch(addr);
        }
        self.probed.remove(&addr);
        let old = self.by_addr.remove(&addr)?;
        let key = old.key();
        if self.by_key.get(&key) == Some(&addr) {
            self.by_key.remove(&key);
        }
        Some(old)
    }

    /// Whether `mac` may take `addr` at `now`: nobody else holds it (or their hold ran out).
    pub fn free_for(&self, addr: Ipv4Addr, mac: Mac, now: u64) -> bool {
        self.free_for_key(addr, &Key::Mac(mac), now)
    }

    /// Whether the client `key` may take `addr` at `now`.
    pub(crate) fn free_for_key(&self, addr: Ipv4Addr, key: &Key, now: u64) -> bool {
        match self.by_addr.get(&addr) {
            None => true,
            Some(l) if l.state == State::Declined => l.expires <= now,
            Some(l) => l.held_by(key) || !l.active(now),
        }
    }

    /// Drop offers, bound leases and quarantines that ended before `now`; released entries stay
    /// (they only remember affinity). Returns whether a persisted entry was removed.
    pub fn expire(&mut self, now: u64) -> bool {
        let gone: Vec<(Ipv4Addr, State)> = self
            .by_addr
            .values()
            .filter(|l| l.state != State::Released && l.expires <= now)
            .map(|l| (l.addr, l.state))
            .collect();
        let mut persisted = false;
        for (addr, state) in gone {
            persisted |= state != State::Offered;
            self.remove(addr);
        }
        persisted
    }

    /// Remember that a ping probe of `addr`, held for `mac`, got no answer.
    pub(crate) fn mark_probed(&mut self, addr: Ipv4Addr, mac: Mac) {
        self.probed.insert(addr, mac);
    }

    /// Whether a ping probe of `addr` came back silent while it was held for `mac`.
    pub(crate) fn is_probed(&self, addr: Ipv4Addr, mac: Mac) -> bool {
        self.probed.get(&addr) == Some(&mac)
    }

    /// Remember that `mac` has been sent the chainloaded iPXE binary (see [`ChainMode::Stateful`](crate::ChainMode::Stateful)).
    pub fn mark_chained(&mut self, mac: Mac) {
        self.chained.insert(mac);
    }

    /// Forget the chained mark of `mac`.
    pub fn unmark_chained(&mut self, mac: Mac) {
        self.chained.remove(&mac);
    }

    /// Whether `mac` is marked chained.
    pub fn is_chained(&self, mac: Mac) -> bool {
        self.chained.contains(&mac)
    }
}

/// A shared handle on a lease table: the server writes through it, the HTTP server and
/// Ignition serving read through [`HostLookup`]. Cloning shares the table.
#[derive(Debug, Clone, Default)]
pub struct Leases(Arc<RwLock<LeaseTable>>);

impl crate::store::Ledger<Lease> for Leases {
    fn take_changes(&self, whole: bool) -> (Vec<Change<Lease>>, Option<Vec<Lease>>) {
        let mut table = self.write();
        (table.take_changes(), whole.then(|| table.persistent()))
    }

    fn restore_changes(&self, changes: Vec<Change<Lease>>) {
        self.write().restore_changes(changes);
    }

    fn absorb_all(&self, leases: Vec<Lease>) {
        let mut table = self.write();
        for lease in leases {
            table.absorb(lease);
        }
    }
}

impl Leases {
    /// A handle on `table`.
    pub fn new(table: LeaseTable) -> Self {
        Leases(Arc::new(RwLock::new(table)))
    }

    /// Read access to the table.
    pub fn read(&self) -> RwLockReadGuard<'_, LeaseTable> {
        // A panic while holding the lock leaves consistent data (every method keeps the
        // invariant before returning), so a poisoned lock is still usable.
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write access to the table.
    pub fn write(&self) -> RwLockWriteGuard<'_, LeaseTable> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Mark `mac` as chained: its next iPXE DHCP gets the script instead of `undionly.kpxe`.
    /// The TFTP server calls this when it has sent the boot file.
    pub fn mark_chained(&self, mac: Mac) {
        self.write().mark_chained(mac);
    }

    /// A copy of every entry, in address order.
    pub fn snapshot(&self) -> Vec<Lease> {
        self.read().leases()
    }
}

impl HostLookup for Leases {
    fn mac_for(&self, addr: IpAddr) -> Option<Mac> {
        let IpAddr::V4(v4) = addr else {
            return None;
        };
        let now = unix_secs(SystemTime::now());
        self.read()
            .get(v4)
            .filter(|l| l.state == State::Bound && l.active(now))
            .map(|l| l.mac)
    }

    fn addr_for(&self, mac: Mac) -> Option<IpAddr> {
        let now = unix_secs(SystemTime::now());
        self.read()
            .for_mac(mac)
            .filter(|l| l.state == State::Bound && l.active(now))
            .map(|l| IpAddr::V4(l.addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(mac: u8, addr: u8, state: State, expires: u64) -> Lease {
        Lease {
            addr: Ipv4Addr::new(10, 0, 0, addr),
            mac: Mac([0x52, 0x54, 0, 0, 0, mac]),
            expires,
            hostname: None,
            state,
            client_id: None,
        }
    }

    #[test]
    fn one_mac_per_address_and_one_address_per_mac() {
        let mut t = LeaseTable::new();
        t.insert(lease(1, 10, State::Bound, 100));
        t.insert(lease(1, 11, State::Bound, 100));
        assert!(t.get(Ipv4Addr::new(10, 0, 0, 10)).is_none());
        assert_eq!(
            t.for_mac(Mac([0x52, 0x54, 0, 0, 0, 1])).unwrap().addr,
            Ipv4Addr::new(10, 0, 0, 11)
        );
        t.insert(lease(2, 11, State::Bound, 100));
        assert!(t.for_mac(Mac([0x52, 0x54, 0, 0, 0, 1])).is_none());
        assert_eq!(t.len(), 1);
        // A declined address does not count as the decliner's address.
        t.insert(lease(2, 12, State::Declined, 100));
        assert_eq!(
            t.for_mac(Mac([0x52, 0x54, 0, 0, 0, 2])).unwrap().addr,
            Ipv4Addr::new(10, 0, 0, 11)
        );
        assert!(!t.free_for(
            Ipv4Addr::new(10, 0, 0, 12),
            Mac([0x52, 0x54, 0, 0, 0, 2]),
            50
        ));
        assert!(t.free_for(
            Ipv4Addr::new(10, 0, 0, 12),
            Mac([0x52, 0x54, 0, 0, 0, 2]),
            100
        ));
    }

    #[test]
    fn expiry_and_lookup() {
        let leases = Leases::default();
        let now = unix_secs(SystemTime::now());
        leases.write().insert(lease(1, 10, State::Bound, now + 100));
        leases
            .write()
            .insert(lease(2, 11, State::Bound, now.saturating_sub(1)));
        leases
            .write()
            .insert(lease(3, 12, State::Offered, now + 100));
        let mac1 = Mac([0x52, 0x54, 0, 0, 0, 1]);
        assert_eq!(
            leases.mac_for(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 10))),
            Some(mac1)
        );
        assert_eq!(
            leases.addr_for(mac1),
            Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 10)))
        );
        assert_eq!(
            leases.mac_for(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11))),
            None
        );
        assert_eq!(
            leases.mac_for(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 12))),
            None
        );
        assert!(leases.write().expire(now));
        assert_eq!(leases.snapshot().len(), 2);
        assert_eq!(leases.read().persistent().len(), 1);
    }

    #[test]
    fn changes_are_what_a_store_must_write() {
        let mut t = LeaseTable::new();
        t.insert(lease(1, 10, State::Offered, 100));
        assert_eq!(t.take_changes(), vec![], "offers are not changes");
        t.insert(lease(1, 10, State::Bound, 100));
        let c = t.take_changes();
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].before.clone(), c[0].after.clone()),
            (None, Some(lease(1, 10, State::Bound, 100)))
        );
        // The client moves: its old address is a removal, its new one a put.
        t.insert(lease(1, 11, State::Bound, 100));
        let c = t.take_changes();
        assert_eq!(
            c.iter()
                .map(|c| (c.addr.octets()[3], c.after.is_some()))
                .collect::<Vec<_>>(),
            vec![(10, false), (11, true)]
        );
        // Changed and changed back: nothing to write.
        t.insert(lease(1, 11, State::Released, 100));
        t.insert(lease(1, 11, State::Bound, 100));
        assert_eq!(t.take_changes(), vec![]);
        // A failed commit puts changes back, keeping the older `before`.
        t.insert(lease(1, 11, State::Bound, 200));
        let failed = t.take_changes();
        t.insert(lease(1, 11, State::Bound, 300));
        t.restore_changes(failed);
        let c = t.take_changes();
        assert_eq!(c[0].before.as_ref().unwrap().expires, 100);
        assert_eq!(c[0].after.as_ref().unwrap().expires, 300);
        assert!(!t.is_changed(Ipv4Addr::new(10, 0, 0, 11)));
        // What another server stored is taken in, not written back.
        t.absorb(lease(2, 12, State::Bound, 100));
        t.absorb(lease(1, 13, State::Bound, 100));
        assert_eq!(t.take_changes(), vec![]);
        assert_eq!(
            t.for_mac(Mac([0x52, 0x54, 0, 0, 0, 1])).unwrap().addr,
            Ipv4Addr::new(10, 0, 0, 13)
        );
        assert!(t.get(Ipv4Addr::new(10, 0, 0, 11)).is_none());
    }
}
