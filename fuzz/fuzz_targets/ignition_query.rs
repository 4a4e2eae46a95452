//! Ignition requests carry a query string (`GET /ignition?mac=..`), and role configs are JSON that
//! `Config::parse` validates: both are input this crate does not control.
//!
//! Run with `cargo +nightly fuzz run ignition_query` (libFuzzer) or `scripts/fuzz.sh
//! ignition_query` (AFL++, stable). The input is used twice: as a query string when it is UTF-8,
//! and as config bytes always.
#![cfg_attr(not(feature = "afl"), no_main)]

use ignition_serve::{Config, Customization, Mode, Query, render_for_host};
use rhcos_metal_fuzz::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(qs) = std::str::from_utf8(data)
        && let Ok((query, _token)) = Query::from_query_string(qs)
    {
        // The canonical query string (what tokens sign) must read back as the same machine.
        let (again, token) = Query::from_query_string(&query.to_query_string())
            .expect("the canonical query string parses");
        assert_eq!(again, query);
        assert_eq!(token, None);
    }

    let Ok(config) = Config::parse(data.to_vec()) else {
        return;
    };
    let _ = config.config_refs();
    // The strictness check (types and unknown keys per spec version) is a function of the
    // value: validating the parsed value again gives the same version and warnings.
    let again =
        Config::from_value(config.value().clone()).expect("a parsed config's value validates");
    assert_eq!(again.spec(), config.spec());
    assert_eq!(again.warnings(), config.warnings());
    // A config that passed validation must survive the edits this crate makes to it.
    let customization = Customization {
        hostname: Some("fuzz".into()),
        ..Customization::default()
    };
    let _ = render_for_host(&config, &customization, &Mode::Merged);
});
