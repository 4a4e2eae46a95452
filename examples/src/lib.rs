//! Shared helpers for the example binaries (argument parsing and terminal output only).
