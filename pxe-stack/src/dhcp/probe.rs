//! The ping probe behind [`Config::ping_probe_ms`](super::Config::ping_probe_ms): one ICMP
//! echo request per candidate address and a bounded wait for its reply. Many probes share one
//! socket; a receive task hands each echo reply to the probe waiting for it, so no client waits
//! for another's probe.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

const ECHO_REPLY: u8 = 0;
const ECHO_REQUEST: u8 = 8;
/// The echo payload: recognisable in a capture.
const PAYLOAD: &[u8] = b"pxe-stack dhcp probe";

/// An ICMP echo request with identifier `ident` and sequence number `seq`, checksummed (a raw
/// socket sends it as it is).
pub(crate) fn echo_request(ident: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![ECHO_REQUEST, 0, 0, 0];
    p.extend(ident.to_be_bytes());
    p.extend(seq.to_be_bytes());
    p.extend(PAYLOAD);
    let sum = checksum(&p);
    p[2..4].copy_from_slice(&sum.to_be_bytes());
    p
}

/// The Internet checksum (RFC 1071).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u64 = bytes
        .chunks(2)
        .map(|c| u64::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The identifier and sequence number of an ICMP echo reply, given with its IPv4 header (as a
/// raw socket delivers it) or without (as a datagram ICMP socket does); `None` for anything
/// else.
pub(crate) fn echo_reply(datagram: &[u8]) -> Option<(u16, u16)> {
    let icmp = match datagram.first() {
        Some(b) if b >> 4 == 4 => datagram.get(usize::from(b & 0x0f) * 4..)?,
        _ => datagram,
    };
    if icmp.len() < 8 || icmp[0] != ECHO_REPLY || icmp[1] != 0 {
        return None;
    }
    Some((
        u16::from_be_bytes([icmp[4], icmp[5]]),
        u16::from_be_bytes([icmp[6], icmp[7]]),
    ))
}

/// One ICMP socket and the probes waiting on it.
#[derive(Debug)]
pub(crate) struct Prober {
    /// The ICMP socket. tokio's `UdpSocket` is a plain wrapper around `sendto`/`recvfrom` on a
    /// non-blocking datagram descriptor, which serves an ICMP socket as well and, unlike
    /// `AsyncFd`, gives the sender's address without unsafe code.
    socket: UdpSocket,
    /// The identifier sent and expected back on a raw socket; `None` on a datagram ICMP socket,
    /// where the kernel sets it and delivers only this socket's replies.
    ident: Option<u16>,
    seq: AtomicU16,
    waiting: Mutex<HashMap<(Ipv4Addr, u16), oneshot::Sender<()>>>,
}

impl Prober {
    /// Open an ICMP socket tied to `device` (SO_BINDTODEVICE) when given: raw (needs
    /// `CAP_NET_RAW`, which the server has), else a datagram ICMP socket (needs the server's
    /// group in `net.ipv4.ping_group_range`). The raw socket's error is returned when neither
    /// opens. Must be called inside a tokio runtime.
    pub(crate) fn new(device: Option<&[u8]>) -> io::Result<Prober> {
        let (s, ident) = match Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)) {
            // The low bits of the process id, as ping(8) does: tells our replies from those
            // to other pingers on the host.
            Ok(s) => (s, Some((std::process::id() & 0xffff) as u16)),
            Err(raw) => match Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::ICMPV4)) {
                Ok(s) => (s, None),
                Err(_) => return Err(raw),
            },
        };
        if let Some(d) = device {
            s.bind_device(Some(d))?;
        }
        s.set_nonblocking(true)?;
        Ok(Prober {
            socket: UdpSocket::from_std(s.into())?,
            ident,
            seq: AtomicU16::new(0),
            waiting: Mutex::new(HashMap::new()),
        })
    }

    fn waiting(&self) -> MutexGuard<'_, HashMap<(Ipv4Addr, u16), oneshot::Sender<()>>> {
        crate::lock(&self.waiting)
    }

    /// Send one echo request to `addr` and wait up to `wait` for the reply; whether it came.
    /// Needs [`receive`](Prober::receive) running. An address the request cannot be sent to
    /// (the kernel already knows nobody answers ARP for it) counts as silent, at once.
    pub(crate) async fn ping(&self, addr: Ipv4Addr, wait: Duration) -> bool {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting().insert((addr, seq), tx);
        let request = echo_request(self.ident.unwrap_or(0), seq);
        let answered = match self
            .socket
            .send_to(&request, SocketAddrV4::new(addr, 0))
            .await
        {
            Ok(_) => matches!(tokio::time::timeout(wait, rx).await, Ok(Ok(()))),
            Err(e) => {
                tracing::debug!(%addr, error = %e, "ping probe not sent; address taken as free");
                false
            }
        };
        self.waiting().remove(&(addr, seq));
        answered
    }

    /// Hand each echo reply to the probe waiting for it. Runs until the task is dropped.
    pub(crate) async fn receive(&self) {
        let mut buf = [0u8; 2048];
        loop {
            let (n, from) = match self.socket.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) => {
                    // Errors here belong to single datagrams (ICMP errors for earlier sends).
                    tracing::debug!(error = %e, "icmp receive failed");
                    continue;
                }
            };
            let SocketAddr::V4(from) = from else { continue };
            let Some((ident, seq)) = echo_reply(&buf[..n]) else {
                continue;
            };
            if self.ident.is_some_and(|i| i != ident) {
                continue;
            }
            if let Some(tx) = self.waiting().remove(&(*from.ip(), seq)) {
                let _ = tx.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_and_reply() {
        let p = echo_request(0x1234, 7);
        assert_eq!(&p[..2], &[8, 0]);
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
        // A correct checksum makes the whole message sum to zero.
        assert_eq!(checksum(&p), 0);
        // Odd lengths pad with a zero byte.
        assert_eq!(checksum(&[0xff]), !0xff00);

        // The peer's reply: type 0, same identifier, sequence and payload.
        let mut reply = p.clone();
        reply[0] = ECHO_REPLY;
        assert_eq!(echo_reply(&reply), Some((0x1234, 7)));
        // As a raw socket delivers it: behind a 20-byte IPv4 header.
        let mut ip = vec![0x45];
        ip.extend([0; 19]);
        ip.extend(&reply);
        assert_eq!(echo_reply(&ip), Some((0x1234, 7)));
        // Not echo replies: our own request, other ICMP, short or empty datagrams.
        assert_eq!(echo_reply(&p), None);
        reply[1] = 1;
        assert_eq!(echo_reply(&reply), None);
        assert_eq!(echo_reply(&[0, 0, 0]), None);
        assert_eq!(echo_reply(&[]), None);
        assert_eq!(echo_reply(&[0x4f, 0, 0]), None);
    }
}
