//! IPMI over LAN: a sans-IO RMCP+ / RMCP core (`wire`, `session`, `crypto`, `commands`: no
//! sockets, no clock, randomness passed in) and a tokio UDP driver (`client`).

mod client;
mod commands;
mod crypto;
mod session;
mod wire;

#[cfg(test)]
mod interop;
#[cfg(test)]
mod kat;

pub use client::{Config, Ipmi, Negotiated, Version};
pub use session::{CipherSuite, Credentials};
