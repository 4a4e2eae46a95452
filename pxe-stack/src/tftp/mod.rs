//! The tftp server (work in progress).
