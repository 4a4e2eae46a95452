//! The DHCPv4 server's default [`LeaseStore`]: the lease file (the whole table as JSON,
//! replaced atomically).

use std::path::{Path, PathBuf};

use super::error::Error;
use super::leases::Lease;
use crate::durable::{JournaledFile, LoadError};
pub use crate::store::LeaseStore;
use crate::store::{Change, Commit, StoreFuture};

const VERSION: u32 = 1;

/// Where leases live between runs: the table, and a journal of the changes since.
///
/// [`save`](LeaseFile::save) writes a temporary file next to the target, fsyncs it, renames it
/// over the target and fsyncs the directory, so a crash leaves either the old or the new table,
/// never a torn one. As a [`LeaseStore`], a batch appends its changes to `<file>.journal` (one
/// JSON line per address, fdatasync) instead, so it costs its own changes rather than the whole
/// table; the table is rewritten (and the journal emptied) once the journal outgrows it.
/// [`load`](LeaseFile::load) replays the journal over the table.
#[derive(Debug, Clone)]
pub struct LeaseFile {
    file: JournaledFile,
}

impl PartialEq for LeaseFile {
    fn eq(&self, other: &Self) -> bool {
        self.file.path == other.file.path
    }
}

impl Eq for LeaseFile {}

impl LeaseFile {
    /// A lease file at `path` (created on the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LeaseFile {
            file: JournaledFile::new(path.into(), VERSION),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// Read the leases (the table, and the journal replayed over it); a missing file is an
    /// empty table.
    pub fn load(&self) -> Result<Vec<Lease>, Error> {
        self.file.load().map_err(|e| self.load_error(e))
    }

    /// Replace the file with `leases`, durably, emptying its journal.
    pub fn save(&self, leases: &[Lease]) -> Result<(), Error> {
        self.file.save(leases).map_err(|e| self.io_error(e))
    }

    /// Append `changes` to the journal (`<file>.journal`), durably.
    pub fn append(&self, changes: &[Change<Lease>]) -> Result<(), Error> {
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

impl LeaseStore<Lease> for LeaseFile {
    type Error = Error;

    fn load(&self) -> StoreFuture<'_, Vec<Lease>, Error> {
        Box::pin(async {
            self.file
                .load_blocking()
                .await
                .map_err(|e| self.load_error(e))
        })
    }

    fn commit(
        &self,
        commit: Commit<Lease>,
    ) -> StoreFuture<'_, Vec<crate::store::RefusedBinding<Lease>>, Error> {
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
    use crate::Mac;
    use crate::dhcp::leases::State;
    use std::net::Ipv4Addr;

    #[test]
    fn round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = LeaseFile::new(dir.path().join("leases.json"));
        assert_eq!(file.load().unwrap(), vec![]);
        let leases = vec![Lease {
            addr: Ipv4Addr::new(10, 0, 0, 5),
            mac: Mac([0x52, 0x54, 0, 0, 0, 1]),
            expires: 1_900_000_000,
            hostname: Some("master-0".into()),
            state: State::Bound,
            client_id: None,
        }];
        file.save(&leases).unwrap();
        assert_eq!(file.load().unwrap(), leases);
        file.save(&[]).unwrap();
        assert_eq!(file.load().unwrap(), vec![]);
        fs::write(file.path(), b"{not json").unwrap();
        assert!(matches!(file.load(), Err(Error::LeaseFileFormat { .. })));
        fs::write(file.path(), br#"{"version":9,"leases":[]}"#).unwrap();
        assert!(matches!(file.load(), Err(Error::LeaseFileFormat { .. })));
        let bad = LeaseFile::new(dir.path().join("missing-dir/leases.json"));
        assert!(matches!(bad.save(&leases), Err(Error::LeaseFile { .. })));
    }

    #[test]
    fn the_journal_replays_over_the_table_and_a_torn_line_is_ignored() {
        use crate::dhcp::LeaseTable;
        let dir = tempfile::tempdir().unwrap();
        let file = LeaseFile::new(dir.path().join("leases.json"));
        let lease = |n: u8, expires| Lease {
            addr: Ipv4Addr::new(10, 0, 0, n),
            mac: Mac([0x52, 0x54, 0, 0, 0, n]),
            expires,
            hostname: None,
            state: State::Bound,
            client_id: None,
        };
        let mut table = LeaseTable::new();
        table.insert(lease(1, 100));
        table.insert(lease(2, 100));
        file.save(&table.persistent()).unwrap();
        table.take_changes();
        // A renewal, a removal, a new lease: three lines, no rewrite.
        table.insert(lease(1, 200));
        table.remove(Ipv4Addr::new(10, 0, 0, 2));
        table.insert(lease(3, 100));
        let changes = table.take_changes();
        assert_eq!(changes.len(), 3);
        file.append(&changes).unwrap();
        assert_eq!(file.load().unwrap(), table.persistent());
        let journal = dir.path().join("leases.json.journal");
        assert_eq!(fs::read_to_string(&journal).unwrap().lines().count(), 3);
        // A crash mid-append leaves half a line: that batch never answered anyone.
        let mut torn = fs::read(&journal).unwrap();
        torn.extend_from_slice(br#"{"addr":"10.0.0.9","lease":{"ad"#);
        fs::write(&journal, &torn).unwrap();
        assert_eq!(file.load().unwrap(), table.persistent());
        // A damaged line before the end is an error, not a guess.
        fs::write(&journal, b"{not json}\n").unwrap();
        assert!(matches!(file.load(), Err(Error::LeaseFileFormat { .. })));
        // Saving the table empties the journal.
        file.save(&table.persistent()).unwrap();
        assert!(!journal.exists());
        assert_eq!(file.load().unwrap(), table.persistent());
        // The journal outgrows the table: the store asks for a rewrite.
        assert!(!file.wants_snapshot());
        let many: Vec<_> = (0..=crate::durable::LeaseJournal::MIN)
            .map(|i| crate::store::Change {
                addr: Ipv4Addr::new(10, 1, (i / 256) as u8, (i % 256) as u8),
                before: None,
                after: None,
            })
            .collect();
        file.append(&many).unwrap();
        assert!(file.wants_snapshot());
    }

    proptest::proptest! {
        #[test]
        fn lease_file_round_trips(
            raw in proptest::collection::vec(
                (proptest::array::uniform6(0u8..), 0u32.., 0u64..4_000_000_000, proptest::option::of("[a-z0-9-]{1,20}"), 0u8..4),
                0..40,
            )
        ) {
            let leases: Vec<Lease> = raw
                .into_iter()
                .map(|(mac, addr, expires, hostname, st)| Lease {
                    addr: Ipv4Addr::from(addr),
                    mac: Mac(mac),
                    expires,
                    hostname,
                    state: [State::Offered, State::Bound, State::Released, State::Declined][usize::from(st)],
                    client_id: (st == 1).then(|| "ff:00:01".to_owned()),
                })
                .collect();
            let dir = tempfile::tempdir().unwrap();
            let file = LeaseFile::new(dir.path().join("leases.json"));
            file.save(&leases).unwrap();
            proptest::prop_assert_eq!(file.load().unwrap(), leases);
        }
    }
}
