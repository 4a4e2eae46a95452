//! Work in progress: see the workspace ARCHITECTURE.md for this crate's purpose.
//!
//! ```
//! assert!(true);
//! ```
