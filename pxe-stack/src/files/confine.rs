//! Request-path confinement for every file server: a client's path is normalized to `a/b/c` or
//! refused, then opened beneath the canonical root without escaping it through symlinks.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Why a requested path was refused before touching the file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusedBinding {
    /// Empty, or only separators and `.`.
    Empty,
    /// Starts at the file-system root (`/x`, `\x`). A `:` means nothing special: on Unix
    /// `C:boot` and `e:x.txt` are file names like any other.
    Absolute,
    /// Has a `..` component.
    Parent,
    /// Has a NUL byte or another control character.
    BadByte,
}

/// The served root as an absolute path without symlinks, which [`open_beneath`] opens under;
/// it must be a directory.
pub(crate) fn canonical_root(root: &Path) -> std::io::Result<PathBuf> {
    let root = std::fs::canonicalize(root)?;
    if root.is_dir() {
        Ok(root)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a directory",
        ))
    }
}

/// Normalizes a client's path to `a/b/c` relative to the root, or refuses it.
///
/// `.` and empty components are dropped. Backslashes count as separators (some PXE ROMs send
/// DOS-style names), so `..\x` is refused too.
pub(crate) fn confine(request: &str) -> Result<String, RefusedBinding> {
    if request.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(RefusedBinding::BadByte);
    }
    if request.starts_with('/') || request.starts_with('\\') {
        return Err(RefusedBinding::Absolute);
    }
    let mut parts = Vec::new();
    for part in request.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return Err(RefusedBinding::Parent),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(RefusedBinding::Empty);
    }
    Ok(parts.join("/"))
}

/// Why a confined path could not be opened beneath the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unservable {
    /// Missing, or not a regular file (HTTP 404, TFTP "File not found").
    NotFound,
    /// Resolving it leaves the root (a symlink out, or a magic link), or it is not readable
    /// (HTTP 403, TFTP "Access violation").
    Forbidden,
}

/// Whether `openat2` is known to be missing (Linux before 5.6, or a seccomp filter returning
/// `ENOSYS`): then every open takes the [`walk`] instead.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Opens a confined relative path (from [`confine`]) for reading, beneath `root` (already
/// canonical), and returns it with its metadata when it is a regular file.
///
/// Symlinks are followed as long as they stay inside the root, absolute ones included (the
/// policy the servers always had); one that leads out is refused. The check and the open are
/// one step: `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` resolves the path in the kernel
/// relative to the root's descriptor, so a directory swapped for a symlink between a check and
/// the open cannot lead out. Where `openat2` is missing, a walk that opens one component at a
/// time with `O_NOFOLLOW` gives the same guarantee.
pub(crate) fn open_beneath(
    root: &Path,
    relative: &str,
) -> Result<(File, std::fs::Metadata), Unservable> {
    let file = open_file(root, relative)?;
    match file.metadata() {
        Ok(meta) if meta.is_file() => Ok((file, meta)),
        _ => Err(Unservable::NotFound),
    }
}

fn open_file(root: &Path, relative: &str) -> Result<File, Unservable> {
    let dir = rfs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| errno_to(e, Unservable::NotFound))?;
    if NO_OPENAT2.load(Ordering::Relaxed) {
        return walk(&dir, root, relative);
    }
    match beneath(&dir, relative) {
        Err(Errno::NOSYS) => {
            NO_OPENAT2.store(true, Ordering::Relaxed);
            walk(&dir, root, relative)
        }
        // The path left the root, or met an absolute symlink (which RESOLVE_BENEATH refuses
        // even when it points inside): resolve it, and open what it names inside the root,
        // again beneath it, so a swap since the resolution still cannot lead out.
        Err(Errno::XDEV) => {
            let inside = inside_root(root, relative)?;
            beneath(&dir, &inside).map_err(|e| errno_to(e, Unservable::Forbidden))
        }
        other => other.map_err(|e| errno_to(e, Unservable::NotFound)),
    }
}

/// One `openat2` beneath `dir`, retried when the kernel saw a rename race (`EAGAIN`).
fn beneath(dir: &OwnedFd, relative: &str) -> Result<File, Errno> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let mut tries = 0;
    loop {
        match rfs::openat2(dir, relative, flags, Mode::empty(), resolve) {
            Err(Errno::AGAIN) if tries < 8 => tries += 1,
            Err(Errno::AGAIN) => return Err(Errno::XDEV),
            other => return other.map(File::from),
        }
    }
}

/// The path `relative` names once its symlinks are resolved, relative to `root`; refused when
/// that is outside the root.
fn inside_root(root: &Path, relative: &str) -> Result<String, Unservable> {
    let real = std::fs::canonicalize(root.join(relative)).map_err(|_| Unservable::NotFound)?;
    let inside = real.strip_prefix(root).map_err(|_| Unservable::Forbidden)?;
    let inside = inside.to_str().ok_or(Unservable::NotFound)?;
    if inside.is_empty() {
        // The root itself: not a file.
        return Err(Unservable::NotFound);
    }
    Ok(inside.to_owned())
}

/// Without `openat2`: resolve the path, then open the symlink-free result one component at a
/// time with `O_NOFOLLOW`, so a component swapped for a symlink since is refused, not followed.
fn walk(dir: &OwnedFd, root: &Path, relative: &str) -> Result<File, Unservable> {
    let inside = inside_root(root, relative)?;
    let mut parts = inside.split('/').peekable();
    let mut at: Option<OwnedFd> = None;
    while let Some(part) = parts.next() {
        let base = at.as_ref().unwrap_or(dir);
        let last = parts.peek().is_none();
        let flags = if last {
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NOFOLLOW
        } else {
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW
        };
        let fd = rfs::openat(base, part, flags, Mode::empty()).map_err(|e| match e {
            // A symlink where the resolution found none: swapped in since.
            Errno::LOOP | Errno::NOTDIR => Unservable::Forbidden,
            e => errno_to(e, Unservable::NotFound),
        })?;
        if last {
            return Ok(File::from(fd));
        }
        at = Some(fd);
    }
    Err(Unservable::NotFound)
}

/// Maps an open error: permission and symlink-policy errors refuse, missing paths are not
/// found, anything else is `other`.
fn errno_to(e: Errno, other: Unservable) -> Unservable {
    match e {
        Errno::NOENT | Errno::NOTDIR | Errno::ISDIR => Unservable::NotFound,
        Errno::ACCESS | Errno::PERM | Errno::LOOP | Errno::XDEV => Unservable::Forbidden,
        _ => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&str, RefusedBinding>) {
        assert_eq!(
            confine(input).as_deref().map_err(|e| *e),
            expected,
            "input {input:?}"
        );
    }

    #[test]
    fn confine_cases() {
        check("undionly.kpxe", Ok("undionly.kpxe"));
        check("./efi//snponly.efi", Ok("efi/snponly.efi"));
        check("efi\\grubx64.efi", Ok("efi/grubx64.efi"));
        check("a/./b/", Ok("a/b"));
        check("/etc/passwd", Err(RefusedBinding::Absolute));
        check("\\boot.ini", Err(RefusedBinding::Absolute));
        check("C:boot", Ok("C:boot"));
        check("e:x.txt", Ok("e:x.txt"));
        check("a:b.txt", Ok("a:b.txt"));
        check("C:\\boot.ini", Ok("C:/boot.ini"));
        check("../etc/passwd", Err(RefusedBinding::Parent));
        check("a/../../x", Err(RefusedBinding::Parent));
        check("a\\..\\x", Err(RefusedBinding::Parent));
        check("..", Err(RefusedBinding::Parent));
        check("", Err(RefusedBinding::Empty));
        check("./", Err(RefusedBinding::Empty));
        check("a\0b", Err(RefusedBinding::BadByte));
        check("a\nb", Err(RefusedBinding::BadByte));
        check("...", Ok("..."));
        check("..a", Ok("..a"));
    }

    #[test]
    fn open_beneath_follows_symlinks_inside_and_refuses_them_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        std::fs::write(root.join("ok"), b"o").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("out")).unwrap();
        std::os::unix::fs::symlink("../secret", root.join("out-rel")).unwrap();
        std::os::unix::fs::symlink(root.join("ok"), root.join("in")).unwrap();
        std::os::unix::fs::symlink("ok", root.join("in-rel")).unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("sub/up")).unwrap();
        std::os::unix::fs::symlink("/proc/self/root/etc/hostname", root.join("magic")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        let read = |rel: &str| {
            open_beneath(&root, rel).map(|(mut f, _)| {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut f, &mut s).unwrap();
                s
            })
        };
        assert_eq!(read("ok"), Ok("o".into()));
        assert_eq!(read("in"), Ok("o".into()));
        assert_eq!(read("in-rel"), Ok("o".into()));
        assert_eq!(read("out"), Err(Unservable::Forbidden));
        assert_eq!(read("out-rel"), Err(Unservable::Forbidden));
        assert_eq!(read("sub/up/secret"), Err(Unservable::Forbidden));
        assert_eq!(read("magic"), Err(Unservable::Forbidden));
        assert_eq!(read("missing"), Err(Unservable::NotFound));
        assert_eq!(read("sub"), Err(Unservable::NotFound));
        assert_eq!(read("ok/x"), Err(Unservable::NotFound));

        // The walk taken without openat2 keeps the same policy.
        let fd = rfs::open(&root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        assert!(walk(&fd, &root, "in").is_ok());
        assert!(walk(&fd, &root, "in-rel").is_ok());
        assert_eq!(walk(&fd, &root, "out").err(), Some(Unservable::Forbidden));
        assert_eq!(
            walk(&fd, &root, "missing").err(),
            Some(Unservable::NotFound)
        );
    }
}
