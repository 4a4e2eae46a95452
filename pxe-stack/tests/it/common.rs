//! What every test module of this crate shares: the check for a test's prerequisites.

use std::path::Path;

/// Whether a test's prerequisites are there. Each of `needs` is a program on `PATH`, a file if it
/// is an absolute path (firmware), or `"root"` for running as uid 0.
///
/// Outside CI a missing one skips the test: this prints what is missing and returns false. Under
/// `CI=true` it fails the test instead (`scripts/install-deps.sh` installs the programs).
pub(crate) fn have(needs: &[&str]) -> bool {
    let missing: Vec<&str> = needs.iter().copied().filter(|n| !present(n)).collect();
    if missing.is_empty() {
        return true;
    }
    let missing = missing.join(", ");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("missing {missing} (required in CI; scripts/install-deps.sh installs the programs)");
    }
    eprintln!("skipping: missing {missing}");
    false
}

fn present(need: &str) -> bool {
    if need == "root" {
        // The real uid, from the `Uid:` line of /proc/self/status (no libc call needed).
        return std::fs::read_to_string("/proc/self/status")
            .map(|s| {
                s.lines()
                    .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
            })
            .unwrap_or(false);
    }
    let path = Path::new(need);
    if path.is_absolute() {
        return path.exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(need).is_file()))
}
