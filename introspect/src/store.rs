//! The inventory: one record per host, behind a storage trait.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pxe_stack::Mac;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::identity::Warning;
use crate::rules::Reason;

/// Everything known about one introspected host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The primary MAC: the key of the record.
    pub mac: Mac,
    /// Every usable MAC the host listed in its latest post.
    pub macs: Vec<Mac>,
    /// SMBIOS system UUID, when reported.
    pub uuid: Option<String>,
    /// System serial number, when reported.
    pub serial: Option<String>,
    /// The role decided on the first post; never changes afterwards.
    pub role: String,
    /// Why the host got its role.
    pub reason: Reason,
    /// The host's name: `<role>-<n>`, the lowest number free for the role at the first post.
    pub hostname: String,
    /// The install device for `coreos.inst.install_dev`.
    pub install_dev: String,
    /// The install disk's kernel name.
    pub disk: String,
    /// The install disk's size in bytes.
    pub disk_bytes: u64,
    /// The install disk's logical sector size, when the inventory reports it (4096: the 4k
    /// image).
    #[serde(default)]
    pub sector_size: Option<u32>,
    /// A short hardware summary.
    pub summary: Summary,
    /// Oddities noticed on the latest post.
    pub warnings: Vec<Warning>,
    /// First post, seconds since the Unix epoch.
    pub first_seen: u64,
    /// Latest post, seconds since the Unix epoch.
    pub last_seen: u64,
    /// How many posts were answered.
    pub posts: u64,
    /// The latest body as received (merged top-level objects).
    pub hardware: serde_json::Map<String, serde_json::Value>,
}

/// A short hardware summary for listings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Physical cores.
    pub cores: Option<u64>,
    /// Memory in bytes.
    pub memory_bytes: Option<u64>,
    /// Number of disks listed (including virtual ones).
    pub disks: usize,
    /// Number of interfaces listed.
    pub nics: usize,
    /// The system vendor and product name, when reported.
    pub product: Option<String>,
}

/// Where records live. Implementations must make [`Store::save`] atomic: after a crash, a
/// record is either the old one or the new one, never a mix.
///
/// The trait is small on purpose so that a site with several provisioning servers can back it
/// with a replicated store.
pub trait Store: Send + Sync {
    /// Every stored record.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Corrupt`].
    fn load(&self) -> Result<Vec<Record>, Error>;
    /// Creates or replaces the record keyed by `record.mac`.
    ///
    /// # Errors
    /// [`Error::Io`].
    fn save(&self, record: &Record) -> Result<(), Error>;

    /// Whether other processes write this store too (one database several servers share).
    /// The [`Introspector`](crate::Introspector) then reads the store on every lookup instead
    /// of trusting its own copy, and makes new decisions only inside [`Store::decide`].
    fn shared(&self) -> bool {
        false
    }

    /// Runs `decide` on every stored record and saves the record it returns, as one step no
    /// other writer can interleave with (a transaction under a lock, for a shared store).
    /// Nothing is saved when `decide` fails. The default loads, decides and saves: enough for a
    /// store only this process writes, under the introspector's own lock.
    ///
    /// # Errors
    /// What `decide` returns; [`Error::Unavailable`] when a shared store cannot be reached;
    /// the errors of [`Store::load`] and [`Store::save`].
    fn decide(
        &self,
        decide: &mut dyn FnMut(&[Record]) -> Result<Record, Error>,
    ) -> Result<Record, Error> {
        let records = self.load()?;
        let record = decide(&records)?;
        self.save(&record)?;
        Ok(record)
    }
}

/// A store that forgets everything on drop: for tests and throwaway labs.
#[derive(Debug, Default)]
pub struct MemoryStore(Mutex<BTreeMap<Mac, Record>>);

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for MemoryStore {
    fn load(&self) -> Result<Vec<Record>, Error> {
        Ok(self
            .0
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }

    fn save(&self, record: &Record) -> Result<(), Error> {
        if let Ok(mut m) = self.0.lock() {
            m.insert(record.mac, record.clone());
        }
        Ok(())
    }
}

/// A directory with one pretty-printed JSON file per host, `<mac-with-hyphens>.json`.
///
/// Writes go to a temporary file in the same directory, which is flushed to disk, renamed over
/// the record, and followed by an fsync of the directory, so a crash leaves the old or the new
/// record. Leftover temporary files (names starting with `.`) are ignored when loading.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// A store in `dir`, created if missing.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be created.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(FileStore { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file for `mac`.
    pub fn path_for(&self, mac: Mac) -> PathBuf {
        self.dir.join(format!("{}.json", mac.hexhyp()))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

impl Store for FileStore {
    fn load(&self) -> Result<Vec<Record>, Error> {
        let mut out = Vec::new();
        let mut paths: Vec<PathBuf> = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let path = entry.map_err(io(&self.dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.starts_with('.') && name.ends_with(".json") {
                paths.push(path);
            }
        }
        paths.sort();
        for path in paths {
            let bytes = fs::read(&path).map_err(io(&path))?;
            let record = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            })?;
            out.push(record);
        }
        Ok(out)
    }

    fn save(&self, record: &Record) -> Result<(), Error> {
        let path = self.path_for(record.mac);
        let tmp = self.dir.join(format!(
            ".{}.json.tmp.{}",
            record.mac.hexhyp(),
            std::process::id()
        ));
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| Error::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let result = (|| {
            let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(&bytes).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
            drop(f);
            fs::rename(&tmp, &path).map_err(io(&path))?;
            fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io(&self.dir))
        })();
        if result.is_err() {
            // Best effort: the temporary file is garbage either way and is ignored on load.
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}
