//! Ignition's own strictness, case by case: every config in `tests/fixtures/strictness` is named
//! `<verdict>-<what>-<spec>.ign` (verdict `ok`, `warn` or `error`); our verdict must be that,
//! and for the spec versions the installed Ignition validates (3.0 to 3.3), so must
//! `ignition-validate`'s, with the same warned keys.

use std::path::PathBuf;

use ignition_serve::{Config, Error, Spec, Warning};

use super::{IGNITION_VALIDATE, fixtures, have, ignition_214_validates};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Warn,
    Error,
}

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(fixtures().join("strictness"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ign"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "the corpus shrank: {files:?}");
    files
}

fn expected(path: &std::path::Path) -> (Verdict, Spec) {
    let stem = path.file_stem().unwrap().to_str().unwrap();
    let verdict = match stem.split('-').next() {
        Some("ok") => Verdict::Ok,
        Some("warn") => Verdict::Warn,
        Some("error") => Verdict::Error,
        _ => panic!("{stem}: name must start with ok-, warn- or error-"),
    };
    let version = format!("{}.0", stem.rsplit('-').next().unwrap());
    (
        verdict,
        Spec::from_version(&version).expect("name ends in a spec version"),
    )
}

/// A warning's JSON pointer as Ignition prints the path: `/storage/files/0/x` is
/// `$.storage.files.0.x`.
fn dollar_path(w: &Warning) -> String {
    let Warning::UnknownKey { pointer } = w else {
        panic!("unexpected warning {w}")
    };
    let unescaped = pointer.replace("~1", "/").replace("~0", "~");
    format!("${}", unescaped.replace('/', "."))
}

fn ours(bytes: &[u8]) -> (Verdict, Vec<String>) {
    match Config::parse(bytes.to_vec()) {
        Ok(c) if c.warnings().is_empty() => (Verdict::Ok, vec![]),
        Ok(c) => (
            Verdict::Warn,
            c.warnings().iter().map(dollar_path).collect(),
        ),
        Err(_) => (Verdict::Error, vec![]),
    }
}

#[test]
fn our_verdict_is_the_one_in_the_name() {
    for path in corpus() {
        let (want, spec) = expected(&path);
        let bytes = std::fs::read(&path).unwrap();
        let (got, warned) = ours(&bytes);
        assert_eq!(got, want, "{}: {warned:?}", path.display());
        if let Ok(c) = Config::parse(bytes) {
            assert_eq!(c.spec(), spec, "{}", path.display());
        }
    }
}

#[test]
fn ignition_peer_validate_gives_our_verdict_and_warns_the_same_keys() {
    if !have(IGNITION_VALIDATE) {
        return;
    }
    let mut checked = 0;
    for path in corpus() {
        let (_, spec) = expected(&path);
        if !ignition_214_validates(spec) {
            continue;
        }
        let (verdict, mut warned) = ours(&std::fs::read(&path).unwrap());
        let out = std::process::Command::new(IGNITION_VALIDATE)
            .arg(&path)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // "warning at $.storage.filez, line 1 col 44: Unused key filez"
        let mut theirs: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("warning at "))
            .filter_map(|l| l.split_once(',').map(|(p, _)| p.to_owned()))
            .collect();
        let their_verdict = if !out.status.success() {
            Verdict::Error
        } else if theirs.is_empty() {
            Verdict::Ok
        } else {
            Verdict::Warn
        };
        assert_eq!(
            verdict,
            their_verdict,
            "{}: ignition-validate says {text}",
            path.display()
        );
        if verdict == Verdict::Warn {
            warned.sort();
            theirs.sort();
            assert_eq!(warned, theirs, "{}", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} cases checked");
}

#[test]
fn type_errors_name_the_value() {
    let bytes = std::fs::read(fixtures().join("strictness/error-user-name-int-3.3.ign")).unwrap();
    match Config::parse(bytes) {
        Err(Error::Invalid {
            pointer, reason, ..
        }) => {
            assert_eq!(pointer, "/storage/files/0/user/name");
            assert_eq!(reason, "expected a string");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_key_that_differs_only_in_case_is_refused() {
    // Go's decoder reads `PATH` into `path` (and Ignition warns it is unused); this crate reads
    // exact keys, so it refuses instead of serving a config it would misread.
    let e =
        Config::parse(r#"{"ignition":{"version":"3.2.0"},"storage":{"files":[{"PATH":"/a"}]}}"#)
            .unwrap_err();
    assert!(
        matches!(&e, Error::Invalid { pointer, .. } if pointer == "/storage/files/0/PATH"),
        "{e}"
    );
}

#[test]
fn schema_tables_are_generated_from_the_schemas() {
    // The field tables are generated from `tests/fixtures/schemas`; regenerate and compare.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("scripts/gen-ignition-schema.py");
    if !script.exists() {
        eprintln!("skipping: {} is not in this package", script.display());
        return;
    }
    let out = std::process::Command::new("python3")
        .arg(&script)
        .output()
        .expect("python3 runs the generator");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read(root.join("ignition-serve/src/schema_tables.rs")).unwrap();
    assert!(
        out.stdout == committed,
        "src/schema_tables.rs is stale: python3 scripts/gen-ignition-schema.py > ignition-serve/src/schema_tables.rs"
    );
}
