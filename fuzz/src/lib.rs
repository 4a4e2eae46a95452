//! What the fuzz targets share: one `fuzz_target!` for both engines.
//!
//! With the default feature `libfuzzer` it is `libfuzzer_sys::fuzz_target!` (cargo-fuzz,
//! nightly); with `--no-default-features --features afl` it is a `main` around `afl::fuzz!`
//! (cargo-afl, stable). A target starts with `#![cfg_attr(not(feature = "afl"), no_main)]`
//! and `use rhcos_metal_fuzz::fuzz_target;`.

#[cfg(all(feature = "afl", feature = "libfuzzer"))]
compile_error!("build the targets with one engine: `--no-default-features --features afl` for AFL");

#[cfg(feature = "afl")]
#[doc(hidden)]
pub use afl;
#[cfg(feature = "libfuzzer")]
#[doc(hidden)]
pub use libfuzzer_sys;

/// `fuzz_target!(|data: &[u8]| { ... })` for the engine the features pick.
#[cfg(feature = "afl")]
#[macro_export]
macro_rules! fuzz_target {
    (|$data:ident: &[u8]| $body:block) => {
        fn main() {
            $crate::afl::fuzz!(|$data: &[u8]| $body);
        }
    };
}

/// `fuzz_target!(|data: &[u8]| { ... })` for the engine the features pick.
#[cfg(not(feature = "afl"))]
#[macro_export]
macro_rules! fuzz_target {
    (|$data:ident: &[u8]| $body:block) => {
        $crate::libfuzzer_sys::fuzz_target!(|$data: &[u8]| $body);
    };
}
