//! One read transfer as a sans-IO state machine: the driver feeds it datagrams and timeouts and
//! sends what it asks for. Blocks are numbered modulo 2^16 and wrap from 65535 to 0, as tftp-hpa,
//! curl and iPXE expect; windows follow RFC 7440.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

use super::packet::{self, Negotiated, Packet};

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The client acknowledged the last block.
    Done,
    /// The client stopped answering.
    TimedOut,
    /// The client sent an error packet (for example to refuse our options).
    ClientError(u16),
    /// Reading the source failed; the client got error 0.
    ReadFailed,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// OACK sent, waiting for ACK 0.
    Options,
    /// Sending data windows.
    Data,
    Ended(Outcome),
}

pub(crate) struct Transfer<R> {
    source: R,
    n: Negotiated,
    max_retries: u32,
    phase: Phase,
    /// Encoded DATA packets sent but not acknowledged, oldest first.
    window: VecDeque<Bytes>,
    /// Block number of `window[0]`.
    base: u16,
    /// Block number the next block read gets.
    next: u16,
    /// The short (last) block has been read.
    eof: bool,
    /// Payload bytes acknowledged so far.
    acked: u64,
    /// Payload bytes in each unacknowledged packet, parallel to `window`.
    sizes: VecDeque<usize>,
    transmit: VecDeque<Bytes>,
    deadline: Option<Instant>,
    retries: u32,
}

impl<R: Read> Transfer<R> {
    pub(crate) fn new(source: R, n: Negotiated, max_retries: u32, now: Instant) -> Self {
        let mut t = Transfer {
            source,
            phase: Phase::Data,
            max_retries,
            window: VecDeque::new(),
            base: 1,
            next: 1,
            eof: false,
            acked: 0,
            sizes: VecDeque::new(),
            transmit: VecDeque::new(),
            deadline: None,
            retries: 0,
            n,
        };
        if t.n.oack.is_empty() {
            t.send_window(now);
        } else {
            t.phase = Phase::Options;
            t.transmit.push_back(packet::oack(&t.n.oack));
            t.deadline = Some(now + t.n.timeout);
        }
        t
    }

    /// The next datagram to send, if any.
    pub(crate) fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// The result, once the transfer is over (after the queued datagrams are sent).
    pub(crate) fn outcome(&self) -> Option<&Outcome> {
        match &self.phase {
            Phase::Ended(o) => Some(o),
            _ => None,
        }
    }

    /// The source, for the driver to prepare before the next step (such as reading ahead).
    pub(crate) fn source_mut(&mut self) -> &mut R {
        &mut self.source
    }

    /// Payload bytes the client has acknowledged.
    pub(crate) fn acked(&self) -> u64 {
        self.acked
    }

    pub(crate) fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        match (Packet::decode(datagram), &self.phase) {
            (Ok(Packet::Ack(0)), Phase::Options) => {
                self.phase = Phase::Data;
                self.retries = 0;
                self.send_window(now);
            }
            (Ok(Packet::Ack(block)), Phase::Data) => {
                let k = block.wrapping_sub(self.base).wrapping_add(1) as usize;
                // Old or duplicate ACKs are ignored: answering them would double the traffic
                // (the Sorcerer's Apprentice bug).
                if k == 0 || k > self.window.len() {
                    return;
                }
                self.window.drain(..k);
                self.acked += self.sizes.drain(..k).map(|s| s as u64).sum::<u64>();
                self.base = block.wrapping_add(1);
                self.retries = 0;
                if self.window.is_empty() && self.eof {
                    self.end(Outcome::Done);
                } else {
                    self.send_window(now);
                }
            }
            (Ok(Packet::Error { code, .. }), Phase::Options | Phase::Data) => {
                self.end(Outcome::ClientError(code));
            }
            _ => {}
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_none_or(|d| now < d) {
            return;
        }
        self.retries += 1;
        if self.retries > self.max_retries {
            self.end(Outcome::TimedOut);
            return;
        }
        match self.phase {
            Phase::Options => {
                self.transmit.push_back(packet::oack(&self.n.oack));
                self.deadline = Some(now + self.n.timeout);
            }
            Phase::Data => self.send_window(now),
            Phase::Ended(_) => {}
        }
    }

    fn end(&mut self, outcome: Outcome) {
        self.phase = Phase::Ended(outcome);
        self.deadline = None;
    }

    /// Tops the window up from the source and queues all of it (RFC 7440: after a partial ACK
    /// the next window starts right after the acknowledged block).
    fn send_window(&mut self, now: Instant) {
        while !self.eof && self.window.len() < usize::from(self.n.window_size) {
            match self.read_block() {
                Ok((pkt, len)) => {
                    self.eof = len < usize::from(self.n.block_size);
                    self.window.push_back(pkt);
                    self.sizes.push_back(len);
                    self.next = self.next.wrapping_add(1);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "tftp source read failed");
                    self.transmit
                        .push_back(packet::error(packet::code::UNDEFINED, "read error"));
                    self.end(Outcome::ReadFailed);
                    return;
                }
            }
        }
        self.transmit.extend(self.window.iter().cloned());
        self.deadline = Some(now + self.n.timeout);
    }

    fn read_block(&mut self) -> io::Result<(Bytes, usize)> {
        let bs = usize::from(self.n.block_size);
        let mut b = BytesMut::with_capacity(4 + bs);
        b.put_u16(3);
        b.put_u16(self.next);
        b.resize(4 + bs, 0);
        let mut len = 0;
        while len < bs {
            match self.source.read(&mut b[4 + len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        b.truncate(4 + len);
        Ok((b.freeze(), len))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn neg(block_size: u16, window_size: u16, oack: bool) -> Negotiated {
        Negotiated {
            block_size,
            window_size,
            timeout: Duration::from_secs(1),
            oack: if oack {
                vec![("blksize", block_size.to_string())]
            } else {
                vec![]
            },
        }
    }

    fn ack(block: u16) -> Vec<u8> {
        let b = block.to_be_bytes();
        vec![0, 4, b[0], b[1]]
    }

    fn drain<R: Read>(t: &mut Transfer<R>) -> Vec<(u16, usize)> {
        std::iter::from_fn(|| t.poll_transmit())
            .map(|p| match Packet::decode(&p).unwrap() {
                Packet::Data { block, data } => (block, data.len()),
                Packet::OAck(_) => (u16::MAX, usize::MAX),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn lock_step_with_exact_multiple_sends_an_empty_last_block() {
        let now = Instant::now();
        let mut t = Transfer::new(&[7u8; 1024][..], neg(512, 1, false), 3, now);
        assert_eq!(drain(&mut t), [(1, 512)]);
        t.handle_datagram(now, &ack(1));
        assert_eq!(drain(&mut t), [(2, 512)]);
        t.handle_datagram(now, &ack(1)); // duplicate: ignored
        assert_eq!(drain(&mut t), []);
        t.handle_datagram(now, &ack(2));
        assert_eq!(drain(&mut t), [(3, 0)]);
        t.handle_datagram(now, &ack(3));
        assert_eq!(t.outcome(), Some(&Outcome::Done));
        assert_eq!(t.acked(), 1024);
    }

    #[test]
    fn oack_then_windows_with_partial_ack_and_retransmit() {
        let now = Instant::now();
        let data = vec![1u8; 100 * 10 + 5];
        let mut t = Transfer::new(&data[..], neg(100, 4, true), 3, now);
        assert_eq!(drain(&mut t), [(u16::MAX, usize::MAX)]);
        t.handle_datagram(now, &ack(0));
        assert_eq!(drain(&mut t), [(1, 100), (2, 100), (3, 100), (4, 100)]);
        // Block 3 was lost: the client acknowledges 2; the next window starts at 3.
        t.handle_datagram(now, &ack(2));
        assert_eq!(drain(&mut t), [(3, 100), (4, 100), (5, 100), (6, 100)]);
        // Nothing arrives: the window is sent again on timeout.
        t.handle_timeout(now + Duration::from_millis(999));
        assert_eq!(drain(&mut t), []);
        t.handle_timeout(now + Duration::from_secs(1));
        assert_eq!(drain(&mut t), [(3, 100), (4, 100), (5, 100), (6, 100)]);
        t.handle_datagram(now, &ack(6));
        assert_eq!(drain(&mut t), [(7, 100), (8, 100), (9, 100), (10, 100)]);
        t.handle_datagram(now, &ack(10));
        assert_eq!(drain(&mut t), [(11, 5)]);
        t.handle_datagram(now, &ack(11));
        assert_eq!(t.outcome(), Some(&Outcome::Done));
        assert_eq!(t.acked(), data.len() as u64);
    }

    #[test]
    fn block_numbers_wrap_to_zero() {
        let now = Instant::now();
        let blocks = 65536 + 3;
        let data = vec![0u8; 8 * blocks + 1];
        let mut t = Transfer::new(&data[..], neg(8, 16, false), 3, now);
        let mut seen = Vec::new();
        while t.outcome().is_none() {
            let sent = drain(&mut t);
            let last = sent.last().unwrap().0;
            seen.extend(sent);
            t.handle_datagram(now, &ack(last));
        }
        assert_eq!(seen.len(), blocks + 1);
        assert_eq!(seen[65534], (65535, 8));
        assert_eq!(seen[65535], (0, 8));
        assert_eq!(seen[65536], (1, 8));
        assert_eq!(*seen.last().unwrap(), (4, 1));
        assert_eq!(t.acked(), data.len() as u64);
    }

    #[test]
    fn gives_up_after_retries_and_stops_on_client_error() {
        let now = Instant::now();
        let mut t = Transfer::new(&[0u8; 10][..], neg(512, 1, true), 2, now);
        for i in 1..=3 {
            t.handle_timeout(now + Duration::from_secs(i));
        }
        assert_eq!(t.outcome(), Some(&Outcome::TimedOut));
        assert_eq!(t.poll_timeout(), None);

        let mut t = Transfer::new(&[0u8; 10][..], neg(512, 1, true), 2, now);
        t.handle_datagram(now, b"\x00\x05\x00\x08refused\x00");
        assert_eq!(t.outcome(), Some(&Outcome::ClientError(8)));
        t.handle_datagram(now, b"garbage");
    }

    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }
    }

    #[test]
    fn read_errors_end_with_an_error_packet() {
        let mut t = Transfer::new(Failing, neg(512, 1, false), 2, Instant::now());
        let pkt = t.poll_transmit().unwrap();
        assert_eq!(
            Packet::decode(&pkt),
            Ok(Packet::Error {
                code: 0,
                message: "read error"
            })
        );
        assert_eq!(t.outcome(), Some(&Outcome::ReadFailed));
    }
}
