//! The lease file: the whole table as JSON, replaced atomically.

use std::path::{Path, PathBuf};

use super::error::Error;
use super::leases::Lease;

const VERSION: u32 = 1;

/// Where leases live between runs.
///
/// [`save`](LeaseFile::save) writes a temporary file next to the target, fsyncs it, renames it
/// over the target and fsyncs the directory, so a crash leaves either the old or the new table,
/// never a torn one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseFile {
    path: PathBuf,
}

impl LeaseFile {
    /// A lease file at `path` (created on the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LeaseFile { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read the leases; a missing file is an empty table.
    pub fn load(&self) -> Result<Vec<Lease>, Error> {
        crate::durable::load_leases(&self.path, VERSION).map_err(|e| match e {
            crate::durable::LoadError::Io(source) => Error::LeaseFile {
                path: self.path.clone(),
                source,
            },
            crate::durable::LoadError::Format(reason) => Error::LeaseFileFormat {
                path: self.path.clone(),
                reason,
            },
        })
    }

    /// Replace the file with `leases`, durably.
    pub fn save(&self, leases: &[Lease]) -> Result<(), Error> {
        crate::durable::save_leases(&self.path, VERSION, leases).map_err(|source| {
            Error::LeaseFile {
                path: self.path.clone(),
                source,
            }
        })
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
