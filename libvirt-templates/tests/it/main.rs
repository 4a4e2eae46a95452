//! Integration tests: fixtures, golden seed templates, snapshots, round trips, RelaxNG validation
//! with xmllint, and (feature `libvirt`) real libvirt.

mod golden;
#[cfg(feature = "libvirt")]
mod libvirt;
mod roundtrip;
mod util;
