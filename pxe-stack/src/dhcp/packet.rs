//! Decoding requests: length checks dhcproto does not make, then classification of the client.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4::{DhcpOption, HType, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder};

use crate::Mac;

/// The fixed BOOTP header plus the magic cookie.
const HEADER_LEN: usize = 240;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// The largest datagram we look at; bigger ones are not DHCP from firmware.
pub const MAX_PACKET: usize = 4096;

/// Why a datagram was dropped. Dropping is normal on a shared segment; the server logs these at
/// debug level.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Malformed {
    /// Shorter than the BOOTP header and magic cookie.
    TooShort {
        /// The datagram's length.
        len: usize,
    },
    /// Longer than [`MAX_PACKET`].
    TooLong {
        /// The datagram's length.
        len: usize,
    },
    /// The magic cookie is missing (plain BOOTP is not served).
    NoMagic,
    /// An option's length runs past the end of the packet.
    Truncated {
        /// The option code.
        code: u8,
    },
    /// An option has a length its type does not allow.
    BadOptionLength {
        /// The option code.
        code: u8,
        /// Its (concatenated) length.
        len: usize,
    },
    /// The packet could not be decoded.
    Decode {
        /// The decoder's message.
        reason: String,
    },
    /// A BOOTREPLY or unknown op: not a request.
    NotRequest,
    /// Not Ethernet (htype 1, hlen 6).
    NotEthernet,
    /// The client hardware address is a multicast address.
    MulticastMac,
    /// No option 53, or an unknown message type.
    NoMessageType,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::TooShort { len } => write!(f, "{len} bytes is too short for dhcp"),
            Malformed::TooLong { len } => write!(f, "{len} bytes is too long for dhcp"),
            Malformed::NoMagic => f.write_str("no dhcp magic cookie"),
            Malformed::Truncated { code } => write!(f, "option {code} runs past the packet"),
            Malformed::BadOptionLength { code, len } => {
                write!(f, "option {code} has invalid length {len}")
            }
            Malformed::Decode { reason } => write!(f, "undecodable: {reason}"),
            Malformed::NotRequest => f.write_str("not a bootrequest"),
            Malformed::NotEthernet => f.write_str("not an ethernet client"),
            Malformed::MulticastMac => f.write_str("multicast client hardware address"),
            Malformed::NoMessageType => f.write_str("no dhcp message type"),
        }
    }
}

/// What kind of boot client sent a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    /// The client architecture (option 93), when sent.
    pub arch: Option<u16>,
    /// The vendor class (option 60), when sent.
    pub vendor_class: Option<Vec<u8>>,
    /// iPXE: user class (77) `iPXE` or option 175 present.
    pub ipxe: bool,
    /// Vendor class starts with `PXEClient`.
    pub pxe: bool,
    /// Vendor class starts with `HTTPClient` (UEFI HTTP boot).
    pub http: bool,
}

/// A decoded, checked request and where it came from.
#[derive(Debug, Clone)]
pub struct Request {
    /// The message as decoded.
    pub message: Message,
    /// The client's MAC (chaddr).
    pub mac: Mac,
    /// The DHCP message type.
    pub kind: MessageType,
    /// The boot client classification.
    pub client: Client,
    /// The datagram's source.
    pub src: SocketAddrV4,
    /// The local port it arrived on: 67, or 4011 for a ProxyDHCP boot request.
    pub local_port: u16,
}

impl Request {
    /// Decode and check one datagram.
    pub fn decode(bytes: &[u8], src: SocketAddrV4, local_port: u16) -> Result<Request, Malformed> {
        if bytes.len() < HEADER_LEN {
            return Err(Malformed::TooShort { len: bytes.len() });
        }
        if bytes.len() > MAX_PACKET {
            return Err(Malformed::TooLong { len: bytes.len() });
        }
        if bytes[236..240] != MAGIC {
            return Err(Malformed::NoMagic);
        }
        check_options(&bytes[HEADER_LEN..])?;
        let message = Message::decode(&mut Decoder::new(bytes)).map_err(|e| Malformed::Decode {
            reason: e.to_string(),
        })?;
        if message.opcode() != Opcode::BootRequest {
            return Err(Malformed::NotRequest);
        }
        if message.htype() != HType::Eth || message.hlen() != 6 {
            return Err(Malformed::NotEthernet);
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&message.chaddr()[..6]);
        let mac = Mac(mac);
        if mac.is_multicast() {
            return Err(Malformed::MulticastMac);
        }
        let kind = match message.opts().msg_type() {
            Some(MessageType::Unknown(_)) | None => return Err(Malformed::NoMessageType),
            Some(k) => k,
        };
        let client = classify(&message);
        Ok(Request {
            message,
            mac,
            kind,
            client,
            src,
            local_port,
        })
    }

    /// The requested address (option 50), if any.
    pub fn requested_addr(&self) -> Option<Ipv4Addr> {
        match self.message.opts().get(OptionCode::RequestedIpAddress) {
            Some(DhcpOption::RequestedIpAddress(a)) => Some(*a),
            _ => None,
        }
    }

    /// The client identifier (option 61), if any: type byte and identifier.
    pub fn client_id(&self) -> Option<&[u8]> {
        match self.message.opts().get(OptionCode::ClientIdentifier) {
            Some(DhcpOption::ClientIdentifier(id)) => Some(id),
            _ => None,
        }
    }

    /// The server identifier (option 54), if any.
    pub fn server_id(&self) -> Option<Ipv4Addr> {
        match self.message.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(a)) => Some(*a),
            _ => None,
        }
    }

    /// The hostname the client sent (option 12), if any.
    pub fn hostname(&self) -> Option<&str> {
        match self.message.opts().get(OptionCode::Hostname) {
            Some(DhcpOption::Hostname(h)) => Some(h),
            _ => None,
        }
    }
}

fn classify(message: &Message) -> Client {
    let opts = message.opts();
    let arch = match opts.get(OptionCode::ClientSystemArchitecture) {
        Some(DhcpOption::ClientSystemArchitecture(a)) => Some(a.0),
        _ => None,
    };
    let vendor_class = match opts.get(OptionCode::ClassIdentifier) {
        Some(DhcpOption::ClassIdentifier(v)) => Some(v.clone()),
        _ => None,
    };
    let user_class_ipxe = match opts.get(OptionCode::UserClass) {
        // iPXE sends the bare string, not an RFC 3004 list; accept both forms.
        Some(DhcpOption::UserClass(v)) => v == b"iPXE" || v.get(1..) == Some(b"iPXE"),
        _ => false,
    };
    let ipxe = user_class_ipxe || opts.get(OptionCode::from(175)).is_some();
    let starts = |p: &[u8]| vendor_class.as_deref().is_some_and(|v| v.starts_with(p));
    Client {
        arch,
        pxe: starts(b"PXEClient"),
        http: starts(b"HTTPClient"),
        vendor_class,
        ipxe,
    }
}

/// Walk the option area and reject lengths that dhcproto's decoder asserts on (debug builds)
/// or underflows on: fixed-size options with the wrong size.
fn check_options(mut area: &[u8]) -> Result<(), Malformed> {
    // Concatenated fragments (RFC 3396) of the same code count together.
    let mut current: Option<(u8, usize)> = None;
    let finish = |cur: Option<(u8, usize)>| -> Result<(), Malformed> {
        let Some((code, len)) = cur else {
            return Ok(());
        };
        let ok = match code {
            80 => len == 0,
            81 => len >= 3,
            94 => len == 3,
            151 => len >= 1,
            152..=155 => len == 4,
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(Malformed::BadOptionLength { code, len })
        }
    };
    while let Some(&code) = area.first() {
        match code {
            0 => {
                finish(current.take())?;
                area = &area[1..];
            }
            255 => {
                return finish(current.take());
            }
            _ => {
                let Some(&len) = area.get(1) else {
                    return Err(Malformed::Truncated { code });
                };
                let len = usize::from(len);
                if area.len() < 2 + len {
                    return Err(Malformed::Truncated { code });
                }
                current = match current {
                    Some((c, l)) if c == code => Some((c, l + len)),
                    other => {
                        finish(other)?;
                        Some((code, len))
                    }
                };
                area = &area[2 + len..];
            }
        }
    }
    finish(current)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use dhcproto::v4::{Architecture, UnknownOption};
    use dhcproto::{Encodable, Encoder};

    /// A DISCOVER like the given firmware would send.
    pub(crate) fn discover(mac: [u8; 6], extra: Vec<DhcpOption>) -> Vec<u8> {
        packet(mac, MessageType::Discover, extra)
    }

    pub(crate) fn packet(mac: [u8; 6], kind: MessageType, extra: Vec<DhcpOption>) -> Vec<u8> {
        let mut m = Message::new(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &mac,
        );
        m.set_xid(0x1234_5678);
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        for o in extra {
            m.opts_mut().insert(o);
        }
        let mut buf = Vec::new();
        m.encode(&mut Encoder::new(&mut buf)).unwrap();
        buf
    }

    fn src() -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68)
    }

    fn check(bytes: &[u8], expected: Result<Client, Malformed>) {
        let got = Request::decode(bytes, src(), 67).map(|r| r.client);
        assert_eq!(got, expected);
    }

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x60, 1];

    #[test]
    fn classifies_clients() {
        check(&discover(MAC, vec![]), Ok(Client::default()));
        check(
            &discover(
                MAC,
                vec![
                    DhcpOption::ClientSystemArchitecture(Architecture::X86_Bios),
                    DhcpOption::ClassIdentifier(b"PXEClient:Arch:00000:UNDI:002001".to_vec()),
                ],
            ),
            Ok(Client {
                arch: Some(0),
                vendor_class: Some(b"PXEClient:Arch:00000:UNDI:002001".to_vec()),
                pxe: true,
                ..Client::default()
            }),
        );
        check(
            &discover(MAC, vec![DhcpOption::UserClass(b"iPXE".to_vec())]),
            Ok(Client {
                ipxe: true,
                ..Client::default()
            }),
        );
        check(
            &discover(
                MAC,
                vec![DhcpOption::Unknown(UnknownOption::new(
                    OptionCode::from(175),
                    vec![0x13, 1, 1],
                ))],
            ),
            Ok(Client {
                ipxe: true,
                ..Client::default()
            }),
        );
        check(
            &discover(
                MAC,
                vec![
                    DhcpOption::ClientSystemArchitecture(Architecture::X64_Http),
                    DhcpOption::ClassIdentifier(b"HTTPClient:Arch:00016:UNDI:003001".to_vec()),
                ],
            ),
            Ok(Client {
                arch: Some(16),
                vendor_class: Some(b"HTTPClient:Arch:00016:UNDI:003001".to_vec()),
                http: true,
                ..Client::default()
            }),
        );
    }

    #[test]
    fn rejects_malformed() {
        let good = discover(MAC, vec![]);
        check(&good[..100], Err(Malformed::TooShort { len: 100 }));
        check(&vec![0u8; 5000], Err(Malformed::TooLong { len: 5000 }));
        let mut p = good.clone();
        p[236] = 0;
        check(&p, Err(Malformed::NoMagic));
        let mut p = good.clone();
        p[0] = 2;
        check(&p, Err(Malformed::NotRequest));
        let mut p = good.clone();
        p[2] = 8;
        check(&p, Err(Malformed::NotEthernet));
        let mut p = good.clone();
        p[28] = 0x01;
        check(&p, Err(Malformed::MulticastMac));
        // Option 53 missing.
        let mut p = good[..240].to_vec();
        p.push(255);
        check(&p, Err(Malformed::NoMessageType));
        // Truncated option and bad fixed lengths.
        let mut p = good[..240].to_vec();
        p.extend([53, 1, 1, 12, 200, b'a']);
        check(&p, Err(Malformed::Truncated { code: 12 }));
        for (code, body) in [
            (80u8, vec![1u8]),
            (94, vec![1, 2]),
            (81, vec![]),
            (151, vec![]),
            (153, vec![1]),
        ] {
            let mut p = good[..240].to_vec();
            p.extend([53, 1, 1, code, body.len() as u8]);
            p.extend(&body);
            p.push(255);
            check(
                &p,
                Err(Malformed::BadOptionLength {
                    code,
                    len: body.len(),
                }),
            );
        }
        // Split option 94 (RFC 3396) is fine when the pieces add up.
        let mut p = good[..240].to_vec();
        p.extend([53, 1, 1, 94, 1, 1, 94, 2, 2, 0, 255]);
        assert!(Request::decode(&p, src(), 67).is_ok());
    }
}
