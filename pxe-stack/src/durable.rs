//! Replacing a small state file so that a crash leaves the old or the new content, never a torn
//! one: the lease files of the DHCPv4 and DHCPv6 servers, each `{"version": N, "leases": [...]}`,
//! with a journal beside each (`<file>.journal`, one JSON line per changed address) that a
//! batch appends to instead of rewriting the whole table; see [`LeaseJournal`].

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::store::{Change, StoredLease};

/// Writes `body` to `<path>.tmp` beside `path`, fsyncs it, renames it over `path` and fsyncs the
/// directory.
#[cfg(test)]
pub(crate) fn replace(path: &Path, body: &[u8]) -> io::Result<()> {
    replace_with(path, |w| w.write_all(body))
}

/// [`replace`] with the content `write` streams (through a buffer) instead of a body held whole
/// in memory: a lease table of 50 000 entries is several megabytes of JSON.
pub(crate) fn replace_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut out = io::BufWriter::with_capacity(64 << 10, File::create(&tmp)?);
    write(&mut out)?;
    let f = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    File::open(&dir)?.sync_all()
}

/// Reads a whole state file; `None` when it does not exist.
pub(crate) fn read(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Why a versioned lease file could not be read.
pub(crate) enum LoadError {
    /// Reading it failed.
    Io(io::Error),
    /// It is not the JSON this version writes.
    Format(String),
}

#[derive(serde::Deserialize)]
struct OnDisk<T> {
    version: u32,
    leases: Vec<T>,
}

#[derive(serde::Serialize)]
struct OnDiskRef<'a, T> {
    version: u32,
    leases: &'a [T],
}

/// One journal line: what an address holds now (`null`: nothing).
#[derive(serde::Serialize, serde::Deserialize)]
struct JournalLine<A, T> {
    addr: A,
    lease: Option<T>,
}

/// `<path>.journal`.
fn journal_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".journal");
    path.with_file_name(name)
}

/// Reads the leases of a versioned lease file and replays its journal over them; a missing
/// file is an empty table. A last journal line without its newline is a batch whose append
/// never completed (its replies were never sent): it is ignored.
pub(crate) fn load_leases<T>(path: &Path, version: u32) -> Result<Vec<T>, LoadError>
where
    T: StoredLease + serde::de::DeserializeOwned,
    T::Addr: serde::de::DeserializeOwned,
{
    let mut leases = Vec::new();
    if let Some(bytes) = read(path).map_err(LoadError::Io)? {
        let disk: OnDisk<T> =
            serde_json::from_slice(&bytes).map_err(|e| LoadError::Format(e.to_string()))?;
        if disk.version != version {
            return Err(LoadError::Format(format!(
                "version {} is not {version}",
                disk.version
            )));
        }
        leases = disk.leases;
    }
    let Some(bytes) = read(&journal_path(path)).map_err(LoadError::Io)? else {
        return Ok(leases);
    };
    let mut table: std::collections::BTreeMap<T::Addr, T> =
        leases.into_iter().map(|l| (l.addr(), l)).collect();
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    for (n, line) in bytes[..complete].split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let entry: JournalLine<T::Addr, T> = serde_json::from_slice(line)
            .map_err(|e| LoadError::Format(format!("journal line {}: {e}", n + 1)))?;
        match entry.lease {
            Some(l) => table.insert(entry.addr, l),
            None => table.remove(&entry.addr),
        };
    }
    Ok(table.into_values().collect())
}

/// Replaces a versioned lease file with `leases`, durably ([`replace`]), and empties its
/// journal (a crash in between replays the old journal over the new table, which ends where
/// the table is: every line in it is older).
pub(crate) fn save_leases<T: serde::Serialize>(
    path: &Path,
    version: u32,
    leases: &[T],
) -> io::Result<()> {
    replace_with(path, |w| {
        serde_json::to_writer(w, &OnDiskRef { version, leases }).map_err(io::Error::from)
    })?;
    match fs::remove_file(journal_path(path)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Appends `changes` to the journal of the lease file at `path` and makes them durable
/// (fdatasync). A failed append is cut off again, so the journal never holds half a line
/// before a later one.
pub(crate) fn append_changes<T>(path: &Path, changes: &[Change<T>]) -> io::Result<()>
where
    T: StoredLease + serde::Serialize,
    T::Addr: serde::Serialize,
{
    let mut body = Vec::with_capacity(changes.len() * 160);
    for c in changes {
        serde_json::to_writer(
            &mut body,
            &JournalLine {
                addr: c.addr,
                lease: c.after.as_ref(),
            },
        )?;
        body.push(b'\n');
    }
    let journal = journal_path(path);
    let fresh = !journal.exists();
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&journal)?;
    let before = f.metadata()?.len();
    let written = f.write_all(&body).and_then(|()| f.sync_data());
    if let Err(e) = written {
        let _ = f.set_len(before);
        return Err(e);
    }
    if fresh {
        // A new journal's name must survive a crash too.
        File::open(journal.parent().unwrap_or(Path::new(".")))?.sync_all()?;
    }
    Ok(())
}

/// A versioned lease file and its journal: what the DHCPv4 and DHCPv6 lease files share (each
/// wraps one and maps its errors to its own type).
#[derive(Debug, Clone)]
pub(crate) struct JournaledFile {
    pub(crate) path: PathBuf,
    version: u32,
    journal: std::sync::Arc<LeaseJournal>,
}

impl JournaledFile {
    pub(crate) fn new(path: PathBuf, version: u32) -> Self {
        JournaledFile {
            path,
            version,
            journal: Default::default(),
        }
    }

    pub(crate) fn load<T>(&self) -> Result<Vec<T>, LoadError>
    where
        T: StoredLease + serde::de::DeserializeOwned,
        T::Addr: serde::de::DeserializeOwned,
    {
        load_leases(&self.path, self.version)
    }

    /// Rewrites the table whole and empties the journal.
    pub(crate) fn save<T: serde::Serialize>(&self, leases: &[T]) -> io::Result<()> {
        save_leases(&self.path, self.version, leases)?;
        self.journal.rewritten(leases.len());
        Ok(())
    }

    /// Appends `changes` to the journal, durably.
    pub(crate) fn append<T>(&self, changes: &[Change<T>]) -> io::Result<()>
    where
        T: StoredLease + serde::Serialize,
        T::Addr: serde::Serialize,
    {
        append_changes(&self.path, changes)?;
        self.journal.appended(changes.len());
        Ok(())
    }

    pub(crate) fn wants_snapshot(&self) -> bool {
        self.journal.wants_snapshot()
    }

    /// [`load`](Self::load) off the runtime's threads.
    pub(crate) async fn load_blocking<T>(&self) -> Result<Vec<T>, LoadError>
    where
        T: StoredLease + serde::de::DeserializeOwned,
        T::Addr: serde::de::DeserializeOwned,
    {
        let file = self.clone();
        tokio::task::spawn_blocking(move || file.load())
            .await
            .map_err(|e| LoadError::Io(io::Error::other(e)))?
    }

    /// A store's commit, off the runtime's threads: the snapshot rewritten when there is one,
    /// else the changes appended.
    pub(crate) async fn commit<T>(&self, commit: crate::store::Commit<T>) -> io::Result<()>
    where
        T: StoredLease + serde::Serialize,
        T::Addr: serde::Serialize,
    {
        let file = self.clone();
        tokio::task::spawn_blocking(move || match commit.snapshot {
            Some(snapshot) => file.save(&snapshot),
            None => file.append(&commit.changes),
        })
        .await
        .map_err(io::Error::other)?
    }
}

/// How a lease file keeps its journal short: a batch appends its changes, and once the journal
/// holds more lines than the table has entries (and at least [`LeaseJournal::MIN`]), the next
/// batch rewrites the table whole and empties the journal. A batch so costs its own changes, not
/// the whole table, and the journal stays within a table's size.
#[derive(Debug, Default)]
pub(crate) struct LeaseJournal {
    lines: std::sync::atomic::AtomicUsize,
    table: std::sync::atomic::AtomicUsize,
}

impl LeaseJournal {
    /// Journal lines below which the table is never rewritten.
    pub(crate) const MIN: usize = 4096;

    /// Whether the next commit should rewrite the table whole.
    pub(crate) fn wants_snapshot(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.lines.load(Relaxed) > self.table.load(Relaxed).max(Self::MIN)
    }

    /// The table was rewritten with `len` entries.
    pub(crate) fn rewritten(&self, len: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.lines.store(0, Relaxed);
        self.table.store(len, Relaxed);
    }

    /// `n` lines were appended.
    pub(crate) fn appended(&self, n: usize) {
        self.lines
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.json");
        assert_eq!(read(&path).unwrap(), None);
        replace(&path, b"one").unwrap();
        replace(&path, b"two").unwrap();
        assert_eq!(read(&path).unwrap().as_deref(), Some(&b"two"[..]));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["leases.json"]);
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(replace(&dir.path().join("no/such/leases.json"), b"x").is_err());
    }
}
