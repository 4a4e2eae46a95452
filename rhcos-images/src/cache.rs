//! A content-addressed cache: `<root>/<sha256>` holds verified files only, `<root>/<sha256>.sig`
//! the detached signature that was verified with it (when one was), `<root>/by-name/<file name>`
//! is a symlink index for people, and `<root>/tmp/` holds downloads in progress.
//!
//! A file reaches its final name only after it was verified and fsynced, via an atomic rename
//! within one filesystem, so a crash leaves at worst a stray temporary file. Such strays do not
//! pile up: every temporary file is locked (`flock`) by the process writing it, and
//! [`Cache::open`] removes the `tmp/.partial-*` files nobody holds a lock on, so a download
//! killed mid-way costs its disk space only until the next run.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};
use crate::select::{check_sha256, file_name};

/// A cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// Opens (creating if needed) a cache rooted at `root`, and removes the temporary files of
    /// downloads that were killed (see [`remove_stale_partials`](Self::remove_stale_partials)).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for dir in [root.clone(), root.join("by-name"), root.join("tmp")] {
            fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        let cache = Cache { root };
        cache.remove_stale_partials()?;
        Ok(cache)
    }

    /// Removes every `tmp/.partial-*` file that no live download holds (each holds an
    /// exclusive `flock` on its own until it is committed or dropped), and returns how many
    /// bytes that freed. Downloads in progress in this or other processes keep theirs.
    pub fn remove_stale_partials(&self) -> Result<u64> {
        let dir = self.root.join("tmp");
        let entries = fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut freed = 0;
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(PARTIAL) {
                continue;
            }
            let path = entry.path();
            // Not following symlinks, and only regular files: nothing else is ours.
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let Ok(file) = File::open(&path) else {
                continue;
            };
            // Held: a download in progress. Free: its writer is gone.
            if try_lock(&file) && fs::remove_file(&path).is_ok() {
                freed += meta.len();
            }
        }
        Ok(freed)
    }

    /// The cache's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a file with this SHA-256 lives (whether or not it exists yet).
    pub fn path_for(&self, sha256: &str) -> Result<PathBuf> {
        let sha = check_sha256("sha256", sha256)?;
        Ok(self.root.join(sha))
    }

    /// The verified file with this SHA-256, if the cache has it.
    pub fn get(&self, sha256: &str) -> Option<PathBuf> {
        let p = self.path_for(sha256).ok()?;
        p.is_file().then_some(p)
    }

    /// Where the detached signature of the file with this SHA-256 lives.
    pub fn signature_path_for(&self, sha256: &str) -> Result<PathBuf> {
        let sha = check_sha256("sha256", sha256)?;
        Ok(self.root.join(format!("{sha}.sig")))
    }

    /// The verified signature stored beside the file with this SHA-256, if there is one.
    pub fn get_signature(&self, sha256: &str) -> Option<PathBuf> {
        let p = self.signature_path_for(sha256).ok()?;
        p.is_file().then_some(p)
    }

    /// The cached file behind a readable name, if the index has it.
    pub fn get_by_name(&self, name: &str) -> Option<PathBuf> {
        let link = self.root.join("by-name").join(file_name(name)?);
        let target = fs::canonicalize(link).ok()?;
        target.is_file().then_some(target)
    }

    /// A new temporary file inside the cache (same filesystem as the final names), locked
    /// against [`remove_stale_partials`](Self::remove_stale_partials) for as long as it (or a
    /// clone of its handle) is open.
    pub fn temp_file(&self) -> Result<NamedTempFile> {
        let dir = self.root.join("tmp");
        loop {
            let tmp = tempfile::Builder::new()
                .prefix(PARTIAL)
                .tempfile_in(&dir)
                .map_err(|e| Error::io(&dir, e))?;
            lock(tmp.as_file()).map_err(|e| Error::io(tmp.path(), e))?;
            // Another process may have taken the file for stale between its creation and the
            // lock, and removed it: then make another.
            if same_file(tmp.as_file(), tmp.path()) {
                return Ok(tmp);
            }
        }
    }

    /// Moves a verified temporary file to `<root>/<sha256>` and points `by-name/<name>` at it.
    ///
    /// Fsyncs the file before the rename and the directory after it.
    pub fn commit(&self, tmp: NamedTempFile, sha256: &str, name: &str) -> Result<PathBuf> {
        self.commit_signed(tmp, sha256, name, None)
    }

    /// Like [`commit`](Self::commit), and first stores `signature` (the verified detached
    /// signature) as `<root>/<sha256>.sig`, written the same way (temporary file, fsync, rename),
    /// so whenever the file is visible its signature is too.
    pub fn commit_signed(
        &self,
        tmp: NamedTempFile,
        sha256: &str,
        name: &str,
        signature: Option<&[u8]>,
    ) -> Result<PathBuf> {
        let dest = self.path_for(sha256)?;
        if let Some(sig) = signature {
            let sig_dest = self.signature_path_for(sha256)?;
            let mut sig_tmp = self.temp_file()?;
            sig_tmp
                .write_all(sig)
                .and_then(|()| sig_tmp.as_file().sync_all())
                .map_err(|e| Error::io(sig_tmp.path(), e))?;
            let sig_tmp_path = sig_tmp.path().to_owned();
            sig_tmp
                .persist(&sig_dest)
                .map_err(|e| Error::io(sig_tmp_path, e.error))?;
        }
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io(tmp.path(), e))?;
        let tmp_path = tmp.path().to_owned();
        tmp.persist(&dest)
            .map_err(|e| Error::io(tmp_path, e.error))?;
        sync_dir(&self.root)?;
        self.link_name(name, &dest)?;
        Ok(dest)
    }

    /// Points `by-name/<name>` at `target` (replacing an older link atomically).
    pub fn link_name(&self, name: &str, target: &Path) -> Result<()> {
        let Some(name) = file_name(name) else {
            return Ok(());
        };
        let dir = self.root.join("by-name");
        let link = dir.join(&name);
        let rel = Path::new("..").join(target.file_name().unwrap_or_default());
        let staging = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let _ = fs::remove_file(&staging);
        symlink(&rel, &staging).map_err(|e| Error::io(&staging, e))?;
        fs::rename(&staging, &link).map_err(|e| Error::io(&link, e))?;
        Ok(())
    }
}

/// Prefix of the temporary files of downloads in progress.
const PARTIAL: &str = ".partial-";

/// Takes the exclusive `flock` of a partial file, waiting for it (a new file: nobody else
/// waits on it for long).
#[cfg(unix)]
fn lock(file: &File) -> io::Result<()> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::LockExclusive).map_err(io::Error::from)
}

/// Whether the exclusive `flock` of a partial file was free (and is now held).
#[cfg(unix)]
fn try_lock(file: &File) -> bool {
    rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
}

#[cfg(not(unix))]
fn lock(_: &File) -> io::Result<()> {
    Ok(())
}

/// Without `flock`, no partial can be told stale: none is removed.
#[cfg(not(unix))]
fn try_lock(_: &File) -> bool {
    false
}

/// Whether `path` still names the open `file`.
fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), fs::symlink_metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        path.exists()
    }
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    // Without symlinks the index is a small text file naming the hash.
    fs::write(link, target.to_string_lossy().as_bytes())
}

fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = (dir, File::open);
    Ok(())
}
