//! The dhcp server (work in progress).
