//! The lease file: the whole table as JSON, replaced atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::Error;
use super::leases::Lease;

const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    leases: Vec<Lease>,
}

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
        let bytes = match crate::durable::read(&self.path) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::LeaseFile {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let disk: OnDisk = serde_json::from_slice(&bytes).map_err(|e| Error::LeaseFileFormat {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        if disk.version != VERSION {
            return Err(Error::LeaseFileFormat {
                path: self.path.clone(),
                reason: format!("version {} is not {VERSION}", disk.version),
            });
        }
        Ok(disk.leases)
    }

    /// Replace the file with `leases`, durably.
    pub fn save(&self, leases: &[Lease]) -> Result<(), Error> {
        let err = |source| Error::LeaseFile {
            path: self.path.clone(),
            source,
        };
        let body = serde_json::to_vec(&OnDiskRef {
            version: VERSION,
            leases,
        })
        .map_err(|e| err(e.into()))?;
        crate::durable::replace(&self.path, &body).map_err(err)
    }
}

#[derive(Serialize)]
struct OnDiskRef<'a> {
    version: u32,
    leases: &'a [Lease],
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
