//! The v6 lease table (keyed by MAC, like DHCPv4's), its shared handle and its file.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::error::Error;
use crate::durable::{JournaledFile, LoadError};
use crate::store::{ChangeLog, LeaseStore, StoreFuture, StoredLease};
use crate::{HostLookup, Mac};

/// Seconds since the Unix epoch (0 for times before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Where an address stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State6 {
    /// Advertised and held for the client until `expires`; not persisted.
    Offered,
    /// Replied to: the client holds it until `expires`.
    Bound,
    /// Given back by the client; kept so the same MAC gets it again.
    Released,
    /// Declined by a client (someone else uses it): out of the pool until `expires`.
    Declined,
}

/// One address and who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease6 {
    /// The address.
    pub addr: Ipv6Addr,
    /// The host (for a declined address, the host that declined it).
    pub mac: Mac,
    /// The DUID the host last used, hex (firmware, iPXE and the installer each have their own).
    pub duid: String,
    /// The IAID of the IA_NA the address went into.
    pub iaid: u32,
    /// When the lease (or advertisement, or quarantine) ends, in seconds since the Unix epoch.
    pub expires: u64,
    /// Where the address stands.
    pub state: State6,
}

impl Lease6 {
    /// Whether the lease still holds the address at `now` (seconds since the epoch).
    pub fn active(&self, now: u64) -> bool {
        self.expires > now && self.state != State6::Released
    }
}

/// Every address the server knows about. Invariant: one entry per address and at most one
/// non-declined address per MAC, so one host keeps one address across its DUIDs.
#[derive(Debug, Clone, Default)]
pub struct LeaseTable6 {
    by_addr: HashMap<Ipv6Addr, Lease6>,
    by_mac: HashMap<Mac, Ipv6Addr>,
    /// Where the last pool search per subnet stopped.
    pub(crate) cursors: HashMap<usize, u128>,
    /// Persisted entries changed since the last [`take_changes`](LeaseTable6::take_changes).
    changed: ChangeLog<Lease6>,
    /// Pool searches start at an address hashed from the MAC (servers sharing a store).
    pub(crate) hashed_start: bool,
}

/// One persisted v6 entry that changed (see [`LeaseTable6::take_changes`]).
pub type Change6 = crate::store::Change<Lease6>;

impl StoredLease for Lease6 {
    type Addr = Ipv6Addr;
    fn addr(&self) -> Ipv6Addr {
        self.addr
    }
    fn persisted(&self) -> bool {
        self.state != State6::Offered
    }
}

impl LeaseTable6 {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A table holding `leases` (for example read from the lease file); offers are skipped.
    pub fn from_leases(leases: impl IntoIterator<Item = Lease6>) -> Self {
        let mut t = Self::new();
        for l in leases {
            if l.state != State6::Offered {
                t.insert(l);
            }
        }
        t
    }

    /// The entry for an address.
    pub fn get(&self, addr: Ipv6Addr) -> Option<&Lease6> {
        self.by_addr.get(&addr)
    }

    /// The entry a MAC holds (bound, offered or released).
    pub fn for_mac(&self, mac: Mac) -> Option<&Lease6> {
        self.by_mac.get(&mac).and_then(|a| self.by_addr.get(a))
    }

    /// Every entry, in address order.
    pub fn leases(&self) -> Vec<Lease6> {
        let mut v: Vec<Lease6> = self.by_addr.values().cloned().collect();
        v.sort_by_key(|l| l.addr);
        v
    }

    /// The entries worth keeping across a restart (everything but offers), in address order.
    pub fn persistent(&self) -> Vec<Lease6> {
        let mut v: Vec<Lease6> = self
            .by_addr
            .values()
            .filter(|l| l.state != State6::Offered)
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

    /// The persisted entries changed since the last call, in address order (see
    /// [`LeaseTable::take_changes`](crate::dhcp::LeaseTable::take_changes)).
    pub fn take_changes(&mut self) -> Vec<Change6> {
        let by_addr = &self.by_addr;
        self.changed.take(|a| by_addr.get(&a).cloned())
    }

    /// Put changes back (a store could not take them).
    pub fn restore_changes(&mut self, changes: Vec<Change6>) {
        self.changed.restore(changes);
    }

    /// Start pool searches at an address hashed from the MAC (see
    /// [`LeaseTable::set_hashed_start`](crate::dhcp::LeaseTable::set_hashed_start)).
    pub fn set_hashed_start(&mut self, on: bool) {
        self.hashed_start = on;
    }

    /// Take in an entry the shared store holds; it is not a change of this server's.
    pub fn absorb(&mut self, lease: Lease6) {
        let addr = lease.addr;
        let prev = (lease.state != State6::Declined)
            .then(|| self.by_mac.get(&lease.mac).copied())
            .flatten();
        self.insert(lease);
        self.changed.forget(addr);
        if let Some(p) = prev {
            self.changed.forget(p);
        }
    }

    /// Drop the entry at `addr` as a store refused it: it was never stored, so its removal is
    /// not a change to store either.
    pub fn discard(&mut self, addr: Ipv6Addr) {
        self.remove(addr);
        self.changed.forget(addr);
    }

    /// Put an entry in, removing whatever the address or the MAC held before.
    pub fn insert(&mut self, lease: Lease6) {
        self.changed
            .touch(lease.addr, self.by_addr.get(&lease.addr));
        if lease.state != State6::Declined
            && let Some(&prev) = self.by_mac.get(&lease.mac)
            && prev != lease.addr
        {
            self.changed.touch(prev, self.by_addr.get(&prev));
        }
        if let Some(old) = self.by_addr.remove(&lease.addr)
            && self.by_mac.get(&old.mac) == Some(&old.addr)
        {
            self.by_mac.remove(&old.mac);
        }
        if lease.state != State6::Declined
            && let Some(prev) = self.by_mac.insert(lease.mac, lease.addr)
            && prev != lease.addr
        {
            self.by_addr.remove(&prev);
        }
        self.by_addr.insert(lease.addr, lease);
    }

    /// Remove the entry for an address.
    pub fn remove(&mut self, addr: Ipv6Addr) -> Option<Lease6> {
        if self.by_addr.contains_key(&addr) {
            self.changed.touch(addr, self.by_addr.get(&addr));
        }
        let old = self.by_addr.remove(&addr)?;
        if self.by_mac.get(&old.mac) == Some(&addr) {
            self.by_mac.remove(&old.mac);
        }
        Some(old)
    }

    /// Whether `mac` may take `addr` at `now`: nobody else holds it (or their hold ran out).
    pub fn free_for(&self, addr: Ipv6Addr, mac: Mac, now: u64) -> bool {
        match self.by_addr.get(&addr) {
            None => true,
            Some(l) if l.state == State6::Declined => l.expires <= now,
            Some(l) => l.mac == mac || !l.active(now),
        }
    }

    /// Drop offers, bound leases and quarantines that ended before `now`; released entries stay
    /// (they only remember affinity). Returns whether a persisted entry was removed.
    pub fn expire(&mut self, now: u64) -> bool {
        let gone: Vec<(Ipv6Addr, State6)> = self
            .by_addr
            .values()
            .filter(|l| l.state != State6::Released && l.expires <= now)
            .map(|l| (l.addr, l.state))
            .collect();
        let mut persisted = false;
        for (addr, state) in gone {
            persisted |= state != State6::Offered;
            self.remove(addr);
        }
        persisted
    }
}

/// A shared handle on a v6 lease table: the server writes through it, the HTTP server reads
/// through [`HostLookup`]. Cloning shares the table.
#[derive(Debug, Clone, Default)]
pub struct Leases6(Arc<RwLock<LeaseTable6>>);

impl crate::store::Ledger<Lease6> for Leases6 {
    fn take_changes(&self, whole: bool) -> (Vec<Change6>, Option<Vec<Lease6>>) {
        let mut table = self.write();
        (table.take_changes(), whole.then(|| table.persistent()))
    }

    fn restore_changes(&self, changes: Vec<Change6>) {
        self.write().restore_changes(changes);
    }

    fn absorb_all(&self, leases: Vec<Lease6>) {
        let mut table = self.write();
        for lease in leases {
            table.absorb(lease);
        }
    }
}

impl Leases6 {
    /// A handle on `table`.
    pub fn new(table: LeaseTable6) -> Self {
        Leases6(Arc::new(RwLock::new(table)))
    }

    /// Read access to the table.
    pub fn read(&self) -> RwLockReadGuard<'_, LeaseTable6> {
        // Every method keeps the invariant before returning: a poisoned lock is still usable.
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write access to the table.
    pub fn write(&self) -> RwLockWriteGuard<'_, LeaseTable6> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of every entry, in address order.
    pub fn snapshot(&self) -> Vec<Lease6> {
        self.read().leases()
    }
}

impl HostLookup for Leases6 {
    fn mac_for(&self, addr: IpAddr) -> Option<Mac> {
        let v6 = match addr {
            IpAddr::V6(a) => a,
            IpAddr::V4(_) => return None,
        };
        let now = unix_secs(SystemTime::now());
        self.read()
            .get(v6)
            .filter(|l| l.state == State6::Bound && l.active(now))
            .map(|l| l.mac)
    }

    fn addr_for(&self, mac: Mac) -> Option<IpAddr> {
        let now = unix_secs(SystemTime::now());
        self.read()
            .for_mac(mac)
            .filter(|l| l.state == State6::Bound && l.active(now))
            .map(|l| IpAddr::V6(l.addr))
    }
}

const VERSION: u32 = 1;

/// Where v6 leases live between runs: the whole table as JSON, replaced atomically (temporary
/// file, fsync, rename, directory fsync), and a journal of the changes since, as for DHCPv4
/// (see [`LeaseFile`](crate::dhcp::LeaseFile)).
#[derive(Debug, Clone)]
pub struct LeaseFile6 {
    file: JournaledFile,
}

impl PartialEq for LeaseFile6 {
    fn eq(&self, other: &Self) -> bool {
        self.file.path == other.file.path
    }
}

impl Eq for LeaseFile6 {}

impl LeaseFile6 {
    /// A lease file at `path` (created on the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LeaseFile6 {
            file: JournaledFile::new(path.into(), VERSION),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// Read the leases (the table, and the journal replayed over it); a missing file is an
    /// empty table.
    pub fn load(&self) -> Result<Vec<Lease6>, Error> {
        self.file.load().map_err(|e| self.load_error(e))
    }

    /// Replace the file with `leases`, durably, emptying its journal.
    pub fn save(&self, leases: &[Lease6]) -> Result<(), Error> {
        self.file.save(leases).map_err(|e| self.io_error(e))
    }

    /// Append `changes` to the journal (`<file>.journal`), durably.
    pub fn append(&self, changes: &[Change6]) -> Result<(), Error> {
        self.file.append(changes).map_err(|e| self.io_error(e))
    }

    fn io_error(&self, source: std::io::Error) -> Error {
        Error::LeaseFile {
            path: self.file.path.clone(),
            source,
        }
    }

    fn load_error(&self, e: LoadError) -> Error {
        match e {
            LoadError::Io(source) => self.io_error(source),
            LoadError::Format(reason) => Error::LeaseFileFormat {
                path: self.file.path.clone(),
                reason,
            },
        }
    }
}

impl LeaseStore<Lease6> for LeaseFile6 {
    type Error = Error;

    fn load(&self) -> StoreFuture<'_, Vec<Lease6>, Error> {
        Box::pin(async {
            self.file
                .load_blocking()
                .await
                .map_err(|e| self.load_error(e))
        })
    }

    fn commit(
        &self,
        commit: crate::store::Commit<Lease6>,
    ) -> StoreFuture<'_, Vec<crate::store::RefusedBinding<Lease6>>, Error> {
        Box::pin(async {
            self.file
                .commit(commit)
                .await
                .map_err(|e| self.io_error(e))?;
            Ok(Vec::new())
        })
    }

    fn wants_snapshot(&self) -> bool {
        self.file.wants_snapshot()
    }

    fn describe(&self) -> String {
        format!("lease file {}", self.file.path.display())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn lease(mac: u8, addr: u16, state: State6, expires: u64) -> Lease6 {
        Lease6 {
            addr: Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, addr),
            mac: Mac([0x52, 0x54, 0, 0, 0, mac]),
            duid: "000300015254000000".into(),
            iaid: 1,
            expires,
            state,
        }
    }

    #[test]
    fn one_address_per_mac_and_host_lookup() {
        let leases = Leases6::default();
        let now = unix_secs(SystemTime::now());
        leases
            .write()
            .insert(lease(1, 0x10, State6::Bound, now + 100));
        leases
            .write()
            .insert(lease(1, 0x11, State6::Bound, now + 100));
        assert_eq!(leases.read().len(), 1);
        let mac = Mac([0x52, 0x54, 0, 0, 0, 1]);
        let addr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 0x11));
        assert_eq!(leases.mac_for(addr), Some(mac));
        assert_eq!(leases.addr_for(mac), Some(addr));
        assert_eq!(leases.mac_for("10.0.0.1".parse().unwrap()), None);
        leases
            .write()
            .insert(lease(2, 0x12, State6::Offered, now + 100));
        assert_eq!(
            leases.mac_for(IpAddr::V6(Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 0x12))),
            None
        );
        leases
            .write()
            .insert(lease(3, 0x13, State6::Declined, now + 100));
        assert!(!leases.read().free_for(
            Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 0x13),
            Mac([0x52, 0x54, 0, 0, 0, 3]),
            now
        ));
        assert!(leases.write().expire(now + 100));
        assert!(leases.read().is_empty());
    }

    #[test]
    fn lease_file_round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = LeaseFile6::new(dir.path().join("leases6.json"));
        assert_eq!(file.load().unwrap(), vec![]);
        let leases = vec![lease(1, 0x10, State6::Bound, 1_900_000_000)];
        file.save(&leases).unwrap();
        assert_eq!(file.load().unwrap(), leases);
        fs::write(file.path(), b"{not json").unwrap();
        assert!(matches!(file.load(), Err(Error::LeaseFileFormat { .. })));
        fs::write(file.path(), br#"{"version":9,"leases":[]}"#).unwrap();
        assert!(matches!(file.load(), Err(Error::LeaseFileFormat { .. })));
        let bad = LeaseFile6::new(dir.path().join("missing/leases6.json"));
        assert!(matches!(bad.save(&leases), Err(Error::LeaseFile { .. })));
    }
}
