//! The invariants ARCHITECTURE.md states about the source tree, checked by reading it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CRATES: [&str; 8] = [
    "rhcos-images",
    "libvirt-templates",
    "pxe-stack",
    "ipxe-script",
    "ignition-serve",
    "bmc-power",
    "introspect",
    "deploy",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources(krate: &str) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&workspace().join(krate).join("src"), &mut files);
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

#[test]
fn every_crate_has_one_integration_test_binary() {
    for krate in CRATES {
        let tests = workspace().join(krate).join("tests");
        assert!(
            tests.join("it").join("main.rs").is_file(),
            "{krate}: no tests/it/main.rs"
        );
        let loose: Vec<_> = std::fs::read_dir(&tests)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect();
        assert!(
            loose.is_empty(),
            "{krate}: test binaries besides tests/it: {loose:?}"
        );
    }
}

#[test]
fn nothing_is_compiled_twice_through_path_attributes() {
    for krate in CRATES {
        for (path, text) in sources(krate) {
            assert!(!text.contains("#[path"), "{}", path.display());
        }
    }
}

/// Names that every crate or module uses for its own instance of one idea: a crate's error
/// and result, a server's config, the server itself.
const PER_MODULE: [&str; 4] = ["Error", "Result", "Config", "Server"];

/// Pairs that predate the rule; each is one concept per crate, scoped by its crate path, and
/// is listed here so that a new clash fails the test instead of joining them silently.
const KNOWN: [&str; 22] = [
    "Cache",
    "Cluster",
    "Decision",
    "Disk",
    "Host",
    "IgnitionVia",
    "Image",
    "Ip",
    "Libvirt",
    "Memory",
    "Metadata",
    "Mode",
    "Network",
    "Node",
    "Options",
    "Parsed",
    "Policy",
    "Request",
    "Role",
    "Store",
    "Tls",
    "Warning",
];

#[test]
fn no_new_public_type_name_means_two_things() {
    let mut homes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for krate in CRATES {
        for (path, text) in sources(krate) {
            for line in text.lines() {
                let line = line.trim_start();
                for kind in ["pub struct ", "pub enum ", "pub trait ", "pub type "] {
                    if let Some(rest) = line.strip_prefix(kind) {
                        let name: String = rest
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        homes
                            .entry(name)
                            .or_default()
                            .insert(path.display().to_string());
                    }
                }
            }
        }
    }
    // The names the composition issue found with two meanings each have one home now.
    for name in [
        "Chain",
        "Boot",
        "Bmc",
        "Handler",
        "Outcome",
        "Query",
        "HostQuery",
    ] {
        let n = homes.get(name).map_or(0, BTreeSet::len);
        assert!(n <= 1, "{name} is defined {n} times: {:?}", homes[name]);
    }
    let clashes: Vec<_> = homes
        .iter()
        .filter(|(name, files)| {
            files.len() > 1
                && !PER_MODULE.contains(&name.as_str())
                && !KNOWN.contains(&name.as_str())
        })
        .collect();
    assert!(
        clashes.is_empty(),
        "public names defined more than once: {clashes:#?}"
    );
}

/// `deploy`'s modules in dependency order: each may import only those before it.
const DEPLOY_ORDER: [&str; 13] = [
    "plan",
    "error",
    "timeline",
    "artifacts",
    "layout",
    "state",
    "bmc",
    "bootstrap",
    "status",
    "servers",
    "run",
    "lab",
    "lib",
];

#[test]
fn deploy_modules_import_only_earlier_modules() {
    for (path, text) in sources("deploy") {
        let rel = path
            .strip_prefix(workspace().join("deploy").join("src"))
            .unwrap();
        let module = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        let Some(me) = DEPLOY_ORDER.iter().position(|m| *m == module) else {
            panic!("{module} is not in DEPLOY_ORDER");
        };
        for (i, line) in text.lines().enumerate() {
            let Some(used) = line.trim_start().strip_prefix("use crate::") else {
                continue;
            };
            let target: String = used
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // `crate::Name` re-exports resolve to their home module.
            let Some(it) = DEPLOY_ORDER.iter().position(|m| *m == target) else {
                continue;
            };
            assert!(
                it <= me,
                "{}:{}: {module} imports {target}, which comes after it",
                rel.display(),
                i + 1
            );
        }
    }
}
