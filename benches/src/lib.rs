//! Helpers shared by the benchmark binaries and comparison scripts.
