//! Replacing a small state file so that a crash leaves the old or the new content, never a torn
//! one: the lease files of the DHCPv4 and DHCPv6 servers, each `{"version": N, "leases": [...]}`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `body` to `<path>.tmp` beside `path`, fsyncs it, renames it over `path` and fsyncs the
/// directory.
pub(crate) fn replace(path: &Path, body: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut f = File::create(&tmp)?;
    f.write_all(body)?;
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

/// Reads the leases of a versioned lease file; a missing file is an empty table.
pub(crate) fn load_leases<T: serde::de::DeserializeOwned>(
    path: &Path,
    version: u32,
) -> Result<Vec<T>, LoadError> {
    let Some(bytes) = read(path).map_err(LoadError::Io)? else {
        return Ok(Vec::new());
    };
    let disk: OnDisk<T> =
        serde_json::from_slice(&bytes).map_err(|e| LoadError::Format(e.to_string()))?;
    if disk.version != version {
        return Err(LoadError::Format(format!(
            "version {} is not {version}",
            disk.version
        )));
    }
    Ok(disk.leases)
}

/// Replaces a versioned lease file with `leases`, durably ([`replace`]).
pub(crate) fn save_leases<T: serde::Serialize>(
    path: &Path,
    version: u32,
    leases: &[T],
) -> io::Result<()> {
    let body = serde_json::to_vec(&OnDiskRef { version, leases })?;
    replace(path, &body)
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
