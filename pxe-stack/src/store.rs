//! Where the DHCP servers keep their leases between batches and runs: the [`LeaseStore`]
//! trait both servers (DHCPv4 and DHCPv6) commit through, and the per-address change log their
//! lease tables keep for it.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::net::IpAddr;
use std::pin::Pin;

/// A lease a [`LeaseStore`] keeps: DHCPv4's [`Lease`](crate::dhcp::Lease) or DHCPv6's
/// [`Lease6`](crate::dhcp6::Lease6).
pub trait StoredLease: Clone + PartialEq + Debug + Send + Sync + 'static {
    /// The address type.
    type Addr: Copy + Eq + Hash + Ord + Debug + Send + Sync + 'static;
    /// The leased address.
    fn addr(&self) -> Self::Addr;
    /// Whether the entry outlives a restart (bound, released, declined); offers do not.
    fn persisted(&self) -> bool;
}

/// One persisted entry that changed: what the address held before and what it holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct Change<L: StoredLease> {
    /// The address.
    pub addr: L::Addr,
    /// The persisted entry the store last confirmed (`None`: nothing, or only an offer).
    pub before: Option<L>,
    /// The persisted entry now (`None`: removed, or only an offer).
    pub after: Option<L>,
}

/// One batch of lease changes for a [`LeaseStore`] to make durable before the server sends
/// the replies that depend on it.
#[derive(Debug, Clone)]
pub struct Commit<L: StoredLease> {
    /// The persisted entries that changed, in address order.
    pub changes: Vec<Change<L>>,
    /// The whole persisted table, for a store that asked for it
    /// ([`LeaseStore::wants_snapshot`]); `None` otherwise.
    pub snapshot: Option<Vec<L>>,
    /// The server's subnets or links (network address, prefix length), so a store can keep
    /// addresses unique per subnet.
    pub subnets: Vec<(IpAddr, u8)>,
    /// Now, in seconds since the Unix epoch: a held lease whose `expires` is not after it has
    /// lapsed, and its address may be bound to another client.
    pub now: u64,
}

/// A binding a store refused: the address a commit tried to give, and what the store holds in
/// its way (the address's other holder, or the client's lease at another address that another
/// server bound meanwhile; `None` when the row went away since).
#[derive(Debug, Clone, PartialEq)]
pub struct RefusedBinding<L: StoredLease> {
    /// The address the refused change was for.
    pub addr: L::Addr,
    /// The store's row in the way, which the server takes in as the truth.
    pub holder: Option<L>,
}

/// What a [`LeaseStore`] call returns.
pub type StoreFuture<'a, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'a>>;

/// Where a DHCP server keeps its leases: a lease file (the default: `dhcp::LeaseFile`,
/// `dhcp6::LeaseFile6`), or a store several servers share, such as `dhcp::PgLeaseStore`
/// (feature `postgres`), which keeps both families.
///
/// The server calls [`commit`](LeaseStore::commit) once per batch of requests, and sends a
/// reply that binds an address only after the commit holding it returned. A shared store is
/// where two servers' bindings meet: it binds an address to a client only when no other client
/// holds it, and hands back what it holds instead, so the server answers with a refusal rather
/// than bind one address twice.
pub trait LeaseStore<L: StoredLease>: Send + Sync + Debug + 'static {
    /// The error the store's calls fail with (the server's own error type).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The leases the store holds now (at startup; for a shared store, what every server
    /// bound).
    fn load(&self) -> StoreFuture<'_, Vec<L>, Self::Error>;

    /// Make `commit` durable. Returns the changes the store refused because another client
    /// holds the address (or the client holds another one): every other change was made. The
    /// server takes the holders in as the truth and does not confirm the refused bindings.
    fn commit(&self, commit: Commit<L>) -> StoreFuture<'_, Vec<RefusedBinding<L>>, Self::Error>;

    /// Entries other servers stored since the last call (a shared store); none by default.
    fn refresh(&self) -> StoreFuture<'_, Vec<L>, Self::Error> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Whether other servers share the store (their pool searches then start from an address
    /// hashed from the client, so they offer it the same address without talking).
    fn shared(&self) -> bool {
        false
    }

    /// Whether [`Commit::snapshot`] must hold the whole table (a file written whole).
    fn wants_snapshot(&self) -> bool {
        false
    }

    /// Whether, while the store cannot be reached, the server may still confirm renewals of
    /// leases the store had confirmed (a shared database: the lease is there, only its new
    /// end time is not). New bindings are never confirmed without the store.
    fn renews_while_down(&self) -> bool {
        false
    }

    /// The store, for logs (`lease file /var/lib/...`, `postgres at ...`).
    fn describe(&self) -> String;
}

/// The persisted entries a lease table changed since its last commit, with the entry each
/// address held before its first change.
#[derive(Debug, Clone)]
pub(crate) struct ChangeLog<L: StoredLease> {
    changed: HashMap<L::Addr, Option<L>>,
}

impl<L: StoredLease> Default for ChangeLog<L> {
    fn default() -> Self {
        ChangeLog {
            changed: HashMap::new(),
        }
    }
}

impl<L: StoredLease> ChangeLog<L> {
    /// Note that `addr`, holding `current`, is about to change (before it does).
    pub(crate) fn touch(&mut self, addr: L::Addr, current: Option<&L>) {
        self.changed
            .entry(addr)
            .or_insert_with(|| current.filter(|l| l.persisted()).cloned());
    }

    /// The changes, in address order, `now` giving what each address holds now; those that
    /// changed back to what they were are left out.
    pub(crate) fn take(&mut self, now: impl Fn(L::Addr) -> Option<L>) -> Vec<Change<L>> {
        let mut v: Vec<Change<L>> = self
            .changed
            .drain()
            .filter_map(|(addr, before)| {
                let after = now(addr).filter(|l| l.persisted());
                (before != after).then_some(Change {
                    addr,
                    before,
                    after,
                })
            })
            .collect();
        v.sort_by_key(|c| c.addr);
        v
    }

    /// Put changes back (a store could not take them); a change pending again keeps its older
    /// `before`.
    pub(crate) fn restore(&mut self, changes: Vec<Change<L>>) {
        for c in changes {
            self.changed.insert(c.addr, c.before);
        }
    }

    /// Whether `addr` changed since the last [`take`](Self::take).
    pub(crate) fn contains(&self, addr: L::Addr) -> bool {
        self.changed.contains_key(&addr)
    }

    /// Forget a change (the entry came from the store itself).
    pub(crate) fn forget(&mut self, addr: L::Addr) {
        self.changed.remove(&addr);
    }
}

/// A hash of a client's identity (its MAC, or its client identifier): the same on every server
/// and in every run, so servers sharing a store start the client's pool search at the same
/// address. FNV-1a, then murmur3's 32-bit finalizer: FNV alone keeps sequential MACs (a rack's
/// NICs, perfdhcp's clients) close together modulo the pool size, and their searches would
/// start on each other's addresses.
pub(crate) fn client_hash(bytes: &[u8]) -> u32 {
    let mut h = bytes.iter().fold(0x811c_9dc5_u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The lease table behind a server's shared handle, as a [`Keeper`] drives it: each call takes
/// the table's lock once.
pub(crate) trait Ledger<L: StoredLease> {
    /// The changes since the last call and, when `whole`, every persisted entry, taken together.
    fn take_changes(&self, whole: bool) -> (Vec<Change<L>>, Option<Vec<L>>);
    /// Put changes back (the store could not take them).
    fn restore_changes(&self, changes: Vec<Change<L>>);
    /// Take in entries the shared store holds (they are not this server's changes).
    fn absorb_all(&self, leases: Vec<L>);
}

/// How a batch's commit went.
pub(crate) enum Committed<L: StoredLease> {
    /// Stored, except the bindings the store refused.
    Stored {
        /// The refused bindings, with what holds them.
        refused: Vec<RefusedBinding<L>>,
        /// What the commit held.
        changes: Vec<Change<L>>,
    },
    /// The store failed: the changes are pending again in the table.
    Down {
        /// What the commit held (to tell renewals of leases the store confirmed).
        changes: Vec<Change<L>>,
        /// Whether the store lets such renewals be confirmed meanwhile
        /// ([`LeaseStore::renews_while_down`]).
        renewals: bool,
    },
}

/// A server's hold on its store: the store, and whether its last commit failed, so an outage
/// is logged once when it starts and once when it ends (not once per batch).
#[derive(Debug)]
pub(crate) struct Keeper<L: StoredLease, E> {
    pub(crate) store: std::sync::Arc<dyn LeaseStore<L, Error = E>>,
    down: std::sync::atomic::AtomicBool,
    /// What the server cannot do while the store is away, for the log line.
    withheld: &'static str,
}

impl<L: StoredLease, E: std::error::Error + Send + Sync + 'static> Keeper<L, E> {
    pub(crate) fn new(
        store: std::sync::Arc<dyn LeaseStore<L, Error = E>>,
        withheld: &'static str,
    ) -> Self {
        Keeper {
            store,
            down: Default::default(),
            withheld,
        }
    }

    /// [`LeaseStore::commit`], logging an outage's start and end.
    pub(crate) async fn commit(&self, commit: Commit<L>) -> Result<Vec<RefusedBinding<L>>, E> {
        use std::sync::atomic::Ordering::Relaxed;
        let result = self.store.commit(commit).await;
        match &result {
            Ok(_) if self.down.swap(false, Relaxed) => {
                tracing::warn!(store = %self.store.describe(), "lease store is back: {} again", self.withheld);
            }
            Err(e) if !self.down.swap(true, Relaxed) => {
                tracing::error!(store = %self.store.describe(), error = %e, "LEASE STORE UNAVAILABLE: no {} until it is back", self.withheld);
            }
            _ => {}
        }
        result
    }

    /// Takes in what the other servers sharing the store bound since the last refresh; a failure
    /// takes in nothing (the next refresh catches up).
    pub(crate) async fn refresh(&self, table: &impl Ledger<L>) {
        match self.store.refresh().await {
            Ok(leases) => table.absorb_all(leases),
            Err(e) => {
                tracing::debug!(store = %self.store.describe(), error = %e, "lease store refresh failed");
            }
        }
    }

    fn commit_of(&self, table: &impl Ledger<L>, subnets: Vec<(IpAddr, u8)>, now: u64) -> Commit<L> {
        let (changes, snapshot) = table.take_changes(self.store.wants_snapshot());
        Commit {
            changes,
            snapshot,
            subnets,
            now,
        }
    }

    /// Commits what `table` changed since its last commit, before the replies that depend on
    /// it go out; on failure the changes stay pending in the table.
    pub(crate) async fn commit_changes(
        &self,
        table: &impl Ledger<L>,
        subnets: Vec<(IpAddr, u8)>,
        now: u64,
    ) -> Committed<L> {
        let commit = self.commit_of(table, subnets, now);
        let changes = commit.changes.clone();
        match self.commit(commit).await {
            Ok(refused) => Committed::Stored { refused, changes },
            Err(_) => {
                table.restore_changes(changes.clone());
                Committed::Down {
                    changes,
                    renewals: self.store.renews_while_down(),
                }
            }
        }
    }

    /// Commits whatever is still pending (at shutdown).
    ///
    /// # Errors
    /// The store's, when it cannot take the changes.
    pub(crate) async fn flush(
        &self,
        table: &impl Ledger<L>,
        subnets: Vec<(IpAddr, u8)>,
        now: u64,
    ) -> Result<(), E> {
        let commit = self.commit_of(table, subnets, now);
        if !commit.changes.is_empty() || commit.snapshot.is_some() {
            self.commit(commit).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::client_hash;

    #[test]
    fn sequential_macs_start_apart() {
        // FNV-1a alone maps consecutive MACs to starts a few fixed strides apart (17 distinct
        // steps over 1000 MACs in a 4096-address pool), so two runs of sequential MACs walk
        // over each other's addresses; with the finalizer the steps look random (~900).
        let pool = 4096;
        let starts: Vec<u32> = (0u32..1000)
            .map(|i| {
                let b = i.to_be_bytes();
                client_hash(&[0x52, 0x54, 0, 0, b[2], b[3]]) % pool
            })
            .collect();
        let steps: std::collections::HashSet<u32> = starts
            .windows(2)
            .map(|w| (w[1] + pool - w[0]) % pool)
            .collect();
        assert!(steps.len() > 500, "only {} distinct steps", steps.len());
    }
}
