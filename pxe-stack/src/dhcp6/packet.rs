//! Decoding client and Relay-Forward messages, the client's MAC, and encoding replies.
//!
//! dhcproto decodes the client message; the relay framing is ours, because dhcproto reads the
//! payload of option 9 (Relay Message) as another relay header, while the innermost one holds
//! the client's message. Before dhcproto sees a message, [`check_options`] walks its options:
//! dhcproto subtracts from option lengths it has not checked (status code, vendor class,
//! authentication), which would panic on a short option.

use std::fmt;
use std::net::{Ipv6Addr, SocketAddrV6};

use dhcproto::v6::{DhcpOption, Message, MessageType, OptionCode, UnknownOption};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

use crate::Mac;

/// The DHCPv6 server port.
pub const SERVER_PORT: u16 = 547;
/// The DHCPv6 client port.
pub const CLIENT_PORT: u16 = 546;
/// The largest datagram handled; longer ones are dropped.
pub const MAX_PACKET: usize = 4096;
/// The most relay hops unwrapped (RFC 8415's HOP_COUNT_LIMIT is 8).
pub const MAX_HOPS: usize = 8;

const RELAY_FORW: u8 = 12;
const RELAY_REPL: u8 = 13;
const OPT_RELAY_MSG: u16 = 9;
const OPT_INTERFACE_ID: u16 = 18;
const OPT_CLIENT_LINKLAYER: u16 = 79;

/// Why a datagram was dropped before reaching the decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed6 {
    /// Too short for a header.
    #[error("{0} bytes is too short for a DHCPv6 header")]
    Short(usize),
    /// An option runs past its container, or has a length its code does not allow.
    #[error("option {code}: {why}")]
    Option {
        /// The option code.
        code: u16,
        /// What is wrong.
        why: &'static str,
    },
    /// A Relay-Forward without a Relay Message option.
    #[error("relay-forward without a relay message")]
    NoRelayMessage,
    /// More relay hops than [`MAX_HOPS`].
    #[error("more than {MAX_HOPS} relay hops")]
    TooManyHops,
    /// A message type servers do not accept (Advertise, Reply, Reconfigure, Relay-Reply…).
    #[error("message type {0} is not for a server")]
    NotForServer(u8),
    /// dhcproto refused the message.
    #[error("undecodable: {0}")]
    Decode(String),
}

/// Where a client's MAC address was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MacSource {
    /// The relay's Client Link-Layer Address option (79): the frame's source MAC.
    RelayLinkLayer,
    /// The modified EUI-64 interface ID of the link-local source (or relay peer) address.
    LinkLocal,
    /// The link-layer address in a DUID-LL or DUID-LLT (Ethernet).
    Duid,
}

impl fmt::Display for MacSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MacSource::RelayLinkLayer => "relay option 79",
            MacSource::LinkLocal => "link-local EUI-64",
            MacSource::Duid => "DUID",
        })
    }
}

/// One relay agent a message passed through (outermost first in [`Request::relays`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The relay's hop count.
    pub hop_count: u8,
    /// The link the client is on (zero when the interface ID names it).
    pub link_addr: Ipv6Addr,
    /// The address the relay received the message from.
    pub peer_addr: Ipv6Addr,
    /// The relay's Interface-ID (option 18), echoed in the Relay-Reply.
    pub interface_id: Option<Vec<u8>>,
    /// The client's MAC from option 79 (hardware type 1 only).
    pub client_mac: Option<Mac>,
}

/// A decoded client message, with the relays it came through and the client's MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The client's message.
    pub message: Message,
    /// The relays, outermost (the one that sent us the datagram) first; empty for a client
    /// on our link.
    pub relays: Vec<Hop>,
    /// Where the datagram came from (the client, or the outermost relay).
    pub src: SocketAddrV6,
    /// The client's MAC, when one of the three sources names it.
    pub mac: Option<(Mac, MacSource)>,
}

impl Request {
    /// Decodes a datagram received from `src`.
    pub fn decode(mut bytes: &[u8], src: SocketAddrV6) -> Result<Request, Malformed6> {
        let mut relays = Vec::new();
        while bytes.first() == Some(&RELAY_FORW) {
            if relays.len() == MAX_HOPS {
                return Err(Malformed6::TooManyHops);
            }
            if bytes.len() < 34 {
                return Err(Malformed6::Short(bytes.len()));
            }
            let octets = |r: std::ops::Range<usize>| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&bytes[r]);
                Ipv6Addr::from(a)
            };
            let mut hop = Hop {
                hop_count: bytes[1],
                link_addr: octets(2..18),
                peer_addr: octets(18..34),
                interface_id: None,
                client_mac: None,
            };
            let mut inner = None;
            for (code, data) in walk(&bytes[34..])? {
                match code {
                    OPT_RELAY_MSG => inner = Some(data),
                    OPT_INTERFACE_ID => hop.interface_id = Some(data.to_vec()),
                    OPT_CLIENT_LINKLAYER => {
                        if let [0, 1, m @ ..] = data
                            && let Ok(m) = <[u8; 6]>::try_from(m)
                        {
                            hop.client_mac = Some(Mac(m));
                        }
                    }
                    _ => {}
                }
            }
            relays.push(hop);
            bytes = inner.ok_or(Malformed6::NoRelayMessage)?;
        }
        let Some(&kind) = bytes.first() else {
            return Err(Malformed6::Short(0));
        };
        if bytes.len() < 4 {
            return Err(Malformed6::Short(bytes.len()));
        }
        if !matches!(kind, 1 | 3 | 4 | 5 | 6 | 8 | 9 | 11) {
            return Err(Malformed6::NotForServer(kind));
        }
        check_options(&bytes[4..], 0)?;
        let message = Message::decode(&mut Decoder::new(bytes))
            .map_err(|e| Malformed6::Decode(e.to_string()))?;
        let mut req = Request {
            message,
            relays,
            src,
            mac: None,
        };
        req.mac = req.find_mac();
        Ok(req)
    }

    /// The client's MAC, by precedence: the innermost relay's option 79; then the EUI-64
    /// link-local address the client sent from (the innermost relay's peer address, or the
    /// datagram's source); then a DUID-LL or DUID-LLT. Link-layer facts first: a DUID is
    /// made once per host, often from another NIC's MAC, and kept.
    fn find_mac(&self) -> Option<(Mac, MacSource)> {
        if let Some(hop) = self.relays.last() {
            if let Some(m) = hop.client_mac {
                return Some((m, MacSource::RelayLinkLayer));
            }
            if let Some(m) = eui64_mac(hop.peer_addr) {
                return Some((m, MacSource::LinkLocal));
            }
        } else if let Some(m) = eui64_mac(*self.src.ip()) {
            return Some((m, MacSource::LinkLocal));
        }
        self.client_id()
            .and_then(duid_mac)
            .map(|m| (m, MacSource::Duid))
    }

    /// The client's MAC with the DUID first ([`Config::duid_first`](super::Config::duid_first)):
    /// a DUID-LL or DUID-LLT, then option 79, then the EUI-64 link-local address.
    pub fn mac_duid_first(&self) -> Option<(Mac, MacSource)> {
        self.client_id()
            .and_then(duid_mac)
            .map(|m| (m, MacSource::Duid))
            .or(self.mac)
    }

    /// The message type.
    pub fn kind(&self) -> MessageType {
        self.message.msg_type()
    }

    /// The client's DUID (option 1).
    pub fn client_id(&self) -> Option<&[u8]> {
        match self.message.opts().get(OptionCode::ClientId) {
            Some(DhcpOption::ClientId(d)) => Some(d),
            _ => None,
        }
    }

    /// The server DUID the client addressed (option 2).
    pub fn server_id(&self) -> Option<&[u8]> {
        match self.message.opts().get(OptionCode::ServerId) {
            Some(DhcpOption::ServerId(d)) => Some(d),
            _ => None,
        }
    }

    /// The innermost relay's link address, when relayed and not zero.
    pub fn link(&self) -> Option<Ipv6Addr> {
        self.relays
            .last()
            .map(|h| h.link_addr)
            .filter(|a| !a.is_unspecified())
    }
}

/// The MAC inside a modified EUI-64 link-local address (`fe80::5054:ff:fe12:3456`), if the
/// interface ID has the `ff:fe` marker.
pub fn eui64_mac(addr: Ipv6Addr) -> Option<Mac> {
    let o = addr.octets();
    if o[0] != 0xfe || o[1] & 0xc0 != 0x80 || o[11] != 0xff || o[12] != 0xfe {
        return None;
    }
    let mac = Mac([o[8] ^ 0x02, o[9], o[10], o[13], o[14], o[15]]);
    (!mac.is_multicast()).then_some(mac)
}

/// The Ethernet address in a DUID-LLT (type 1) or DUID-LL (type 3).
pub fn duid_mac(duid: &[u8]) -> Option<Mac> {
    let ll = match duid {
        [0, 1, 0, 1, _, _, _, _, ll @ ..] => ll,
        [0, 3, 0, 1, ll @ ..] => ll,
        _ => return None,
    };
    <[u8; 6]>::try_from(ll).ok().map(Mac)
}

/// Splits `buf` into (code, data) options.
fn walk(mut buf: &[u8]) -> Result<Vec<(u16, &[u8])>, Malformed6> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        if buf.len() < 4 {
            return Err(Malformed6::Option {
                code: 0,
                why: "truncated option header",
            });
        }
        let code = u16::from_be_bytes([buf[0], buf[1]]);
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        let Some(data) = buf.get(4..4 + len) else {
            return Err(Malformed6::Option {
                code,
                why: "runs past its container",
            });
        };
        out.push((code, data));
        buf = &buf[4 + len..];
    }
    Ok(out)
}

/// Checks that every option in `buf` (and in the options dhcproto decodes as containers) has a
/// length dhcproto can decode without panicking or losing its place.
pub fn check_options(buf: &[u8], depth: usize) -> Result<(), Malformed6> {
    if depth > 4 {
        return Err(Malformed6::Option {
            code: 0,
            why: "nested too deep",
        });
    }
    for (code, data) in walk(buf)? {
        let len = data.len();
        let bad = |why| Err(Malformed6::Option { code, why });
        match code {
            3 | 25 if len < 12 => return bad("shorter than 12 bytes"),
            3 | 25 => check_options(&data[12..], depth + 1)?,
            4 if len < 4 => return bad("shorter than 4 bytes"),
            4 => check_options(&data[4..], depth + 1)?,
            5 if len < 24 => return bad("shorter than 24 bytes"),
            5 => check_options(&data[24..], depth + 1)?,
            26 if len < 25 => return bad("shorter than 25 bytes"),
            26 => check_options(&data[25..], depth + 1)?,
            17 if len < 4 => return bad("shorter than 4 bytes"),
            17 => check_options(&data[4..], depth + 1)?,
            6 | 61 if len % 2 != 0 => return bad("odd length"),
            7 | 19 if len != 1 => return bad("not 1 byte"),
            8 if len != 2 => return bad("not 2 bytes"),
            9 => return bad("a relay message inside a client message"),
            11 if len < 11 => return bad("shorter than 11 bytes"),
            12 if len != 16 => return bad("not 16 bytes"),
            13 if len < 2 => return bad("shorter than 2 bytes"),
            13 if std::str::from_utf8(&data[2..]).is_err() => return bad("message not UTF-8"),
            14 | 20 if len != 0 => return bad("not empty"),
            16 if len < 4 => return bad("shorter than 4 bytes"),
            23 if len % 16 != 0 => return bad("not a multiple of 16 bytes"),
            56 => return bad("NTP server in a client message"),
            _ => {}
        }
    }
    Ok(())
}

/// Option 59 (OPT_BOOTFILE_URL, RFC 5970), which dhcproto does not know: the URL's bytes.
pub fn bootfile_url(url: &str) -> DhcpOption {
    DhcpOption::Unknown(UnknownOption::new(
        OptionCode::OptBootfileUrl,
        url.as_bytes().to_vec(),
    ))
}

/// Option 60 (OPT_BOOTFILE_PARAM, RFC 5970): each parameter as a two-byte length and its
/// bytes. `None` when a parameter is longer than 65535 bytes.
pub fn bootfile_params(params: &[&str]) -> Option<DhcpOption> {
    let mut data = Vec::new();
    for p in params {
        data.extend(u16::try_from(p.len()).ok()?.to_be_bytes());
        data.extend(p.as_bytes());
    }
    Some(DhcpOption::Unknown(UnknownOption::new(
        OptionCode::OptBootfileParam,
        data,
    )))
}

/// Option 16 (Vendor Class): dhcproto writes this option's length as the number of items
/// rather than bytes, so it is encoded here. `None` when an item is longer than 65535 bytes
/// or the option would be.
pub fn vendor_class(enterprise: u32, items: &[Vec<u8>]) -> Option<DhcpOption> {
    let mut data = enterprise.to_be_bytes().to_vec();
    data.extend(class_items(items)?);
    u16::try_from(data.len()).ok()?;
    Some(DhcpOption::Unknown(UnknownOption::new(
        OptionCode::VendorClass,
        data,
    )))
}

/// Option 15 (User Class), encoded here for the same reason as [`vendor_class`].
pub fn user_class(items: &[Vec<u8>]) -> Option<DhcpOption> {
    let data = class_items(items)?;
    u16::try_from(data.len()).ok()?;
    Some(DhcpOption::Unknown(UnknownOption::new(
        OptionCode::UserClass,
        data,
    )))
}

fn class_items(items: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    for i in items {
        data.extend(u16::try_from(i.len()).ok()?.to_be_bytes());
        data.extend(i);
    }
    Some(data)
}

/// A reply ready to go out: the message for the client, the relays to wrap it in (outermost
/// first) and where to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply6 {
    /// The message for the client (Advertise or Reply).
    pub message: Message,
    /// The relays the request came through; the reply goes back through them.
    pub relays: Vec<Hop>,
    /// The destination: the client's address and port, or the outermost relay's.
    pub to: SocketAddrV6,
}

impl Reply6 {
    /// The datagram: the message, wrapped in one Relay-Reply per hop (innermost first), each
    /// echoing the hop's interface ID. `None` when it does not encode (never for replies
    /// [`respond`](super::respond) builds).
    pub fn encode(&self) -> Option<Vec<u8>> {
        let mut bytes = Vec::new();
        self.message.encode(&mut Encoder::new(&mut bytes)).ok()?;
        for hop in self.relays.iter().rev() {
            let mut out = Vec::with_capacity(bytes.len() + 64);
            out.push(RELAY_REPL);
            out.push(hop.hop_count);
            out.extend(hop.link_addr.octets());
            out.extend(hop.peer_addr.octets());
            if let Some(id) = &hop.interface_id {
                out.extend(OPT_INTERFACE_ID.to_be_bytes());
                out.extend(u16::try_from(id.len()).ok()?.to_be_bytes());
                out.extend(id);
            }
            out.extend(OPT_RELAY_MSG.to_be_bytes());
            out.extend(u16::try_from(bytes.len()).ok()?.to_be_bytes());
            out.extend(&bytes);
            bytes = out;
        }
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> SocketAddrV6 {
        SocketAddrV6::new("fe80::5054:ff:fe77:1".parse().unwrap(), 546, 0, 2)
    }

    fn solicit(duid: &[u8]) -> Vec<u8> {
        let mut m = Message::new_with_id(MessageType::Solicit, [1, 2, 3]);
        m.opts_mut().insert(DhcpOption::ClientId(duid.to_vec()));
        let mut b = Vec::new();
        m.encode(&mut Encoder::new(&mut b)).unwrap();
        b
    }

    #[test]
    fn bootfile_options_encode_and_decode_back() {
        let mut m = Message::new(MessageType::Reply);
        m.opts_mut()
            .insert(bootfile_url("tftp://[fd00::1]/ipxe.efi"));
        m.opts_mut()
            .insert(bootfile_params(&["console=ttyS0", ""]).unwrap());
        let mut b = Vec::new();
        m.encode(&mut Encoder::new(&mut b)).unwrap();
        let url = b"tftp://[fd00::1]/ipxe.efi";
        let mut want = vec![0, 59, 0, url.len() as u8];
        want.extend(url);
        want.extend([0, 60, 0, 17, 0, 13]);
        want.extend(b"console=ttyS0");
        want.extend([0, 0]);
        assert_eq!(&b[4..], &want[..]);
        let back = Message::decode(&mut Decoder::new(&b)).unwrap();
        match back.opts().get(OptionCode::OptBootfileUrl) {
            Some(DhcpOption::Unknown(u)) => assert_eq!(u.data(), url),
            other => panic!("{other:?}"),
        }
        // Vendor and user class with their lengths in bytes, decoded back by dhcproto.
        let mut m = Message::new(MessageType::Reply);
        m.opts_mut()
            .insert(vendor_class(343, &[b"HTTPClient".to_vec()]).unwrap());
        m.opts_mut()
            .insert(user_class(&[b"iPXE".to_vec()]).unwrap());
        let mut b = Vec::new();
        m.encode(&mut Encoder::new(&mut b)).unwrap();
        assert_eq!(&b[4..8], &[0, 15, 0, 6]);
        assert_eq!(&b[14..18], &[0, 16, 0, 16]);
        let back = Message::decode(&mut Decoder::new(&b)).unwrap();
        assert!(matches!(back.opts().get(OptionCode::VendorClass),
            Some(DhcpOption::VendorClass(v)) if v.num == 343 && v.data == [b"HTTPClient".to_vec()]));
        assert!(matches!(back.opts().get(OptionCode::UserClass),
            Some(DhcpOption::UserClass(u)) if u.data == [b"iPXE".to_vec()]));
        let long = "x".repeat(70_000);
        assert!(user_class(&[long.clone().into_bytes()]).is_none());
        assert!(bootfile_params(&[&long]).is_none());
    }

    #[test]
    fn mac_sources_and_precedence() {
        assert_eq!(
            eui64_mac("fe80::5054:ff:fe77:1".parse().unwrap()),
            Some("52:54:00:77:00:01".parse().unwrap())
        );
        assert_eq!(eui64_mac("fe80::1".parse().unwrap()), None);
        assert_eq!(eui64_mac("fd00::5054:ff:fe77:1".parse().unwrap()), None);
        let ll = [0, 3, 0, 1, 0x52, 0x54, 0, 0x77, 0, 9];
        let llt = [0, 1, 0, 1, 1, 2, 3, 4, 0x52, 0x54, 0, 0x77, 0, 9];
        assert_eq!(duid_mac(&ll), Some("52:54:00:77:00:09".parse().unwrap()));
        assert_eq!(duid_mac(&llt), duid_mac(&ll));
        assert_eq!(duid_mac(&[0, 4, 1, 2, 3]), None);
        assert_eq!(duid_mac(&[0, 3, 0, 6, 1, 2, 3, 4, 5, 6]), None);

        // Direct, from an EUI-64 link-local: the address wins over the DUID.
        let r = Request::decode(&solicit(&ll), src()).unwrap();
        assert_eq!(
            r.mac,
            Some(("52:54:00:77:00:01".parse().unwrap(), MacSource::LinkLocal))
        );
        // From a non-EUI-64 source: the DUID.
        let other = SocketAddrV6::new("fe80::1234".parse().unwrap(), 546, 0, 2);
        let r = Request::decode(&solicit(&ll), other).unwrap();
        assert_eq!(r.mac.unwrap().1, MacSource::Duid);
        // A DUID-UUID from a stable-privacy address: no MAC.
        let r = Request::decode(&solicit(&[0, 4, 9, 9, 9]), other).unwrap();
        assert_eq!(r.mac, None);

        // Relayed with option 79: the relay's word wins.
        let relay = relay_forward(
            &solicit(&ll),
            Some(b"eth1"),
            Some([0x52, 0x54, 0, 0x77, 0, 0x42]),
        );
        let r = Request::decode(&relay, other).unwrap();
        assert_eq!(
            r.mac,
            Some((
                "52:54:00:77:00:42".parse().unwrap(),
                MacSource::RelayLinkLayer
            ))
        );
        assert_eq!(r.relays[0].interface_id.as_deref(), Some(&b"eth1"[..]));
        assert_eq!(r.link(), Some("fd00:78::1".parse().unwrap()));
        // DUID first when asked: the DUID-LL's MAC over option 79.
        let r = Request::decode(&relay, other).unwrap();
        assert_eq!(
            r.mac_duid_first(),
            Some(("52:54:00:77:00:09".parse().unwrap(), MacSource::Duid))
        );
        // Relayed without 79: the peer address (EUI-64).
        let r = Request::decode(&relay_forward(&solicit(&ll), None, None), other).unwrap();
        assert_eq!(
            r.mac,
            Some(("52:54:00:77:00:01".parse().unwrap(), MacSource::LinkLocal))
        );
    }

    pub(crate) fn relay_forward(
        inner: &[u8],
        iface: Option<&[u8]>,
        mac: Option<[u8; 6]>,
    ) -> Vec<u8> {
        let mut b = vec![RELAY_FORW, 0];
        b.extend("fd00:78::1".parse::<Ipv6Addr>().unwrap().octets());
        b.extend("fe80::5054:ff:fe77:1".parse::<Ipv6Addr>().unwrap().octets());
        if let Some(id) = iface {
            b.extend([0, 18, 0, id.len() as u8]);
            b.extend(id);
        }
        if let Some(m) = mac {
            b.extend([0, 79, 0, 8, 0, 1]);
            b.extend(m);
        }
        b.extend([0, 9]);
        b.extend((inner.len() as u16).to_be_bytes());
        b.extend(inner);
        b
    }

    #[test]
    fn dhclient_solicit_with_rapid_commit() {
        // A Solicit as ISC dhclient 4.4 sends it with `send dhcp6.rapid-commit;`.
        let hex = "01d910550001000e0001000132a5a0770a01bbd08f150006000400170018000800020000000e00000003000cbbd08f1500000e1000001518";
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let r = Request::decode(&bytes, src()).unwrap();
        assert!(r.message.opts().get(OptionCode::RapidCommit).is_some());
        assert!(r.client_id().is_some());
    }

    #[test]
    fn malformed_input_is_a_typed_error() {
        let s = src();
        assert_eq!(Request::decode(&[], s), Err(Malformed6::Short(0)));
        assert_eq!(Request::decode(&[1, 0], s), Err(Malformed6::Short(2)));
        assert_eq!(
            Request::decode(&[7, 0, 0, 0], s),
            Err(Malformed6::NotForServer(7))
        );
        assert_eq!(
            Request::decode(&[13; 40], s),
            Err(Malformed6::NotForServer(13))
        );
        // A status code of length 0 (dhcproto would subtract 2 from it).
        assert!(matches!(
            Request::decode(&[1, 0, 0, 0, 0, 13, 0, 0], s),
            Err(Malformed6::Option { code: 13, .. })
        ));
        // A vendor class shorter than its enterprise number, inside an IA_NA's IA address.
        let mut b = vec![1, 0, 0, 0, 0, 16, 0, 2, 0, 0];
        assert!(matches!(
            Request::decode(&b, s),
            Err(Malformed6::Option { code: 16, .. })
        ));
        b = vec![1, 0, 0, 0, 0, 3, 0, 13];
        b.extend([0; 12]);
        b.push(0);
        assert!(matches!(
            Request::decode(&b, s),
            Err(Malformed6::Option { .. })
        ));
        // An option running past the message.
        assert!(matches!(
            Request::decode(&[1, 0, 0, 0, 0, 1, 0, 9, 1], s),
            Err(Malformed6::Option { code: 1, .. })
        ));
        // A relay-forward without a message, and nine hops.
        let mut relay = relay_forward(&solicit(&[0, 3, 0, 1, 1, 2, 3, 4, 5, 6]), None, None);
        assert!(Request::decode(&relay, s).is_ok());
        relay.truncate(34);
        assert_eq!(Request::decode(&relay, s), Err(Malformed6::NoRelayMessage));
        let mut nested = solicit(&[0, 3, 0, 1, 1, 2, 3, 4, 5, 6]);
        for _ in 0..=MAX_HOPS {
            nested = relay_forward(&nested, None, None);
        }
        assert_eq!(Request::decode(&nested, s), Err(Malformed6::TooManyHops));
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = Request::decode(&bytes, src());
            let mut relayed = bytes.clone();
            relayed.insert(0, RELAY_FORW);
            let _ = Request::decode(&relayed, src());
        }
    }
}
