//! The http server (work in progress).
