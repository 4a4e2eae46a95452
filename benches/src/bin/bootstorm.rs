//! A boot-storm load generator: N simulated PXE clients, each doing what a booting server does.
//!
//! Per client: DHCP DORA as PXE firmware (arch 0, `PXEClient`), TFTP of the boot file it was
//! given, DHCP DORA again as iPXE (user class `iPXE`, option 175), then HTTP GETs of the script
//! it was given, and of the kernel, initramfs and Ignition URLs inside that script. Each phase is
//! timed; the summary has success counts and p50/p99 per phase, as JSON on stdout.
//!
//! Run it inside a network namespace whose only interface faces the server (see
//! benches/bootstorm/run.sh): it broadcasts DHCP. Clients use MACs `02:bb:XX:XX:XX:XX` and expect
//! the server to hold reservations for them, whose addresses run.sh also adds to the client
//! interface so each client's TFTP and HTTP traffic comes from its own leased address.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dhcproto::v4::{
    Architecture, DhcpOption, Flags, Message, MessageType, Opcode, OptionCode, UnknownOption,
};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::sync::oneshot;

const PHASES: [&str; 7] = [
    "dhcp_pxe",
    "tftp",
    "dhcp_ipxe",
    "script",
    "kernel",
    "initrd",
    "ignition",
];

struct Args {
    clients: u32,
    arrival: Duration,
    pattern: Pattern,
    seed: u64,
    iface: String,
}

/// When clients start within the arrival window.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pattern {
    /// Evenly spaced: client i at i/N of the window.
    Even,
    /// A Poisson process: N independent uniform times in the window (seeded).
    Random,
    /// Everybody at once, at time 0, as after a power cut.
    Burst,
    /// K groups, each all at once, evenly spaced over the window (a rack's PDUs, one by one).
    Waves(u32),
}

impl std::str::FromStr for Pattern {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "even" => Pattern::Even,
            "random" => Pattern::Random,
            "burst" => Pattern::Burst,
            _ => match s.strip_prefix("waves:").map(str::parse) {
                Some(Ok(k)) if k > 0 => Pattern::Waves(k),
                _ => bail!("pattern is even, random, burst or waves:K (K > 0), not {s:?}"),
            },
        })
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Even => f.write_str("even"),
            Pattern::Random => f.write_str("random"),
            Pattern::Burst => f.write_str("burst"),
            Pattern::Waves(k) => write!(f, "waves:{k}"),
        }
    }
}

impl Pattern {
    /// Every client's start offset, client 0 first.
    fn offsets(self, clients: u32, window: Duration, seed: u64) -> Vec<Duration> {
        use rand::{Rng, SeedableRng};
        let n = clients.max(1);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..clients)
            .map(|i| match self {
                Pattern::Even => window.mul_f64(f64::from(i) / f64::from(n)),
                Pattern::Random => window.mul_f64(rng.random::<f64>()),
                Pattern::Burst => Duration::ZERO,
                Pattern::Waves(k) => {
                    let wave = u64::from(i) * u64::from(k) / u64::from(n);
                    window.mul_f64(wave as f64 / f64::from(k))
                }
            })
            .collect()
    }
}

fn args() -> Result<Args> {
    let mut a = Args {
        clients: 10,
        arrival: Duration::from_secs(1),
        pattern: Pattern::Even,
        seed: 1,
        iface: "eth0".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--clients" => a.clients = value.parse()?,
            "--arrival-ms" => a.arrival = Duration::from_millis(value.parse()?),
            "--pattern" => a.pattern = value.parse()?,
            "--seed" => a.seed = value.parse()?,
            "--iface" => a.iface = value,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

type Waiters = Arc<Mutex<HashMap<u32, oneshot::Sender<Message>>>>;

/// One socket on port 68 for every client, as perfdhcp does; replies are routed by xid.
struct Dhcp {
    socket: Arc<UdpSocket>,
    waiters: Waiters,
}

impl Dhcp {
    async fn bind(iface: &str) -> Result<Dhcp> {
        let s = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        s.set_reuse_address(true)?;
        s.set_broadcast(true)?;
        s.bind_device(Some(iface.as_bytes()))?;
        s.set_recv_buffer_size(8 << 20)?;
        s.set_nonblocking(true)?;
        s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68).into())?;
        let socket = Arc::new(UdpSocket::from_std(s.into())?);
        let waiters: Waiters = Arc::default();
        let (rx_socket, rx_waiters) = (socket.clone(), waiters.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            while let Ok(n) = rx_socket.recv(&mut buf).await {
                let Ok(msg) = Message::decode(&mut Decoder::new(&buf[..n])) else {
                    continue;
                };
                if msg.opcode() != Opcode::BootReply {
                    continue;
                }
                let waiter = rx_waiters
                    .lock()
                    .ok()
                    .and_then(|mut w| w.remove(&msg.xid()));
                if let Some(tx) = waiter {
                    let _ = tx.send(msg);
                }
            }
        });
        Ok(Dhcp { socket, waiters })
    }

    /// Sends `msg` and waits for the reply with the same xid, retransmitting like firmware.
    async fn exchange(&self, msg: &Message, want: MessageType) -> Result<Message> {
        let mut bytes = Vec::new();
        msg.encode(&mut Encoder::new(&mut bytes))?;
        let mut wait = Duration::from_millis(1000);
        for _ in 0..5 {
            let (tx, rx) = oneshot::channel();
            if let Ok(mut w) = self.waiters.lock() {
                w.insert(msg.xid(), tx);
            }
            self.socket
                .send_to(&bytes, (Ipv4Addr::BROADCAST, 67))
                .await?;
            if let Ok(Ok(reply)) = tokio::time::timeout(wait, rx).await {
                match reply.opts().msg_type() {
                    Some(t) if t == want => return Ok(reply),
                    Some(MessageType::Nak) => bail!("NAK"),
                    _ => continue,
                }
            }
            wait *= 2;
        }
        bail!("no {want:?} after 5 tries")
    }
}

fn dhcp_message(mac: [u8; 6], xid: u32, ipxe: bool) -> Message {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootRequest)
        .set_xid(xid)
        .set_flags(Flags::default().set_broadcast())
        .set_chaddr(&mac);
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(MessageType::Discover));
    o.insert(DhcpOption::ClientSystemArchitecture(Architecture::X86_Bios));
    o.insert(DhcpOption::ClassIdentifier(
        b"PXEClient:Arch:00000:UNDI:002001".to_vec(),
    ));
    o.insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::BootfileName,
        OptionCode::TFTPServerName,
    ]));
    if ipxe {
        o.insert(DhcpOption::UserClass(b"iPXE".to_vec()));
        // Feature list as iPXE sends it: PXE_EXT, HTTP, bzImage.
        o.insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::from(175),
            vec![0x10, 1, 2, 0x13, 1, 1, 0x18, 1, 1],
        )));
    }
    m
}

async fn dora(
    dhcp: &Dhcp,
    mac: [u8; 6],
    xid: u32,
    ipxe: bool,
) -> Result<(Ipv4Addr, Ipv4Addr, String)> {
    let discover = dhcp_message(mac, xid, ipxe);
    let offer = dhcp.exchange(&discover, MessageType::Offer).await?;
    let server = match offer.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(s)) => *s,
        _ => bail!("offer without server identifier"),
    };
    let mut request = dhcp_message(mac, xid, ipxe);
    request
        .opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Request));
    request
        .opts_mut()
        .insert(DhcpOption::RequestedIpAddress(offer.yiaddr()));
    request
        .opts_mut()
        .insert(DhcpOption::ServerIdentifier(server));
    let ack = dhcp.exchange(&request, MessageType::Ack).await?;
    let file = match ack.opts().get(OptionCode::BootfileName) {
        Some(DhcpOption::BootfileName(f)) => String::from_utf8_lossy(f).into_owned(),
        _ => String::from_utf8_lossy(ack.fname().unwrap_or_default())
            .trim_end_matches('\0')
            .to_owned(),
    };
    let next = if ack.siaddr().is_unspecified() {
        server
    } else {
        ack.siaddr()
    };
    Ok((ack.yiaddr(), next, file))
}

/// A TFTP read with blksize 1468, from our own leased address. Returns the byte count.
///
/// Like firmware, it resends its last packet (the RRQ or the last ACK) after 1 s of silence,
/// up to 5 times, so one lost datagram costs a second rather than the client.
async fn tftp_get(local: Ipv4Addr, server: Ipv4Addr, file: &str) -> Result<u64> {
    let sock = UdpSocket::bind((local, 0)).await?;
    let mut rrq = vec![0, 1];
    rrq.extend_from_slice(file.as_bytes());
    for part in ["octet", "blksize", "1468", "tsize", "0"] {
        rrq.push(0);
        rrq.extend_from_slice(part.as_bytes());
    }
    rrq.push(0);
    let mut last: Vec<u8> = rrq;
    let mut last_to = SocketAddr::from((server, 69));
    sock.send_to(&last, last_to).await?;
    let mut buf = vec![0u8; 1600];
    let mut total = 0u64;
    let mut expect: u16 = 1;
    let mut blksize = 512usize;
    let mut silent = 0;
    loop {
        let (n, peer) =
            match tokio::time::timeout(Duration::from_secs(1), sock.recv_from(&mut buf)).await {
                Ok(r) => r?,
                Err(_) => {
                    silent += 1;
                    if silent > 5 {
                        bail!("tftp timeout after {total} bytes");
                    }
                    sock.send_to(&last, last_to).await?;
                    continue;
                }
            };
        silent = 0;
        if n < 4 {
            continue;
        }
        let op = u16::from_be_bytes([buf[0], buf[1]]);
        match op {
            6 => {
                // OACK: read blksize, acknowledge block 0.
                let opts: Vec<&[u8]> = buf[2..n].split(|&b| b == 0).collect();
                for pair in opts.chunks(2) {
                    if pair.len() == 2 && pair[0].eq_ignore_ascii_case(b"blksize") {
                        blksize = std::str::from_utf8(pair[1])?.parse()?;
                    }
                }
                last = vec![0, 4, 0, 0];
                last_to = peer;
                sock.send_to(&last, peer).await?;
            }
            3 => {
                let block = u16::from_be_bytes([buf[2], buf[3]]);
                if block == expect {
                    total += (n - 4) as u64;
                    expect = expect.wrapping_add(1);
                    last = vec![0, 4, buf[2], buf[3]];
                    last_to = peer;
                    sock.send_to(&last, peer).await?;
                    if n - 4 < blksize {
                        return Ok(total);
                    }
                } else {
                    // A duplicate: acknowledge it again, as RFC 1350 clients do.
                    sock.send_to(&[0, 4, buf[2], buf[3]], peer).await?;
                }
            }
            5 => bail!(
                "tftp error: {}",
                String::from_utf8_lossy(&buf[4..n]).trim_end_matches('\0')
            ),
            _ => bail!("unexpected tftp opcode {op}"),
        }
    }
}

/// An HTTP/1.1 GET with `Connection: close` from our own address. Returns the body length and,
/// for bodies up to 1 MiB (scripts, Ignition), the body itself: a thousand clients must not each
/// hold a kernel and an initramfs in memory.
async fn http_get(local: Ipv4Addr, url: &str) -> Result<(u64, Vec<u8>)> {
    const KEEP: usize = 1 << 20;
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("not an http URL: {url}"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr: SocketAddr = if authority.contains(':') {
        authority.parse()?
    } else {
        format!("{authority}:80").parse()?
    };
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::from((local, 0)))?;
    let mut stream = sock.connect(addr).await?;
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: iPXE/1.0 bootstorm\r\nConnection: close\r\n\r\n",
        if path.is_empty() { "/" } else { path }
    );
    stream.write_all(req.as_bytes()).await?;
    let mut head = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let head_end = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("GET {url}: connection closed in the headers");
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(p) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
    };
    let head_text = String::from_utf8_lossy(&head[..head_end]).into_owned();
    let status_line = head_text.lines().next().unwrap_or_default().to_owned();
    if !status_line.contains(" 200 ") {
        bail!("GET {url}: {status_line}");
    }
    let length: Option<u64> = head_text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())
            .flatten()
    });
    let mut body = head.split_off(head_end + 4);
    let mut total = body.len() as u64;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if body.len() < KEEP {
            body.extend_from_slice(&buf[..n]);
        }
    }
    if let Some(want) = length
        && want != total
    {
        bail!("GET {url}: {total} bytes of {want}");
    }
    Ok((total, body))
}

/// Expands the iPXE settings the scripts use, as a BIOS iPXE would.
fn expand(word: &str, mac: [u8; 6]) -> String {
    let hexhyp = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join("-");
    word.replace("${mac:hexhyp}", &hexhyp)
        .replace("${net0/mac:hexhyp}", &hexhyp)
        .replace("${uuid}", "")
        .replace("${buildarch}", "i386")
        .replace("${platform}", "pcbios")
}

/// What an iPXE script asks for next: a `chain` to another script, or kernel, initrd and
/// Ignition URLs (relative URLs resolved against `base`).
#[derive(Debug, Default, PartialEq)]
struct ScriptUrls {
    chain: Option<String>,
    kernel: Option<String>,
    initrd: Option<String>,
    ignition: Option<String>,
}

fn script_urls(script: &str, base: &str, mac: [u8; 6]) -> ScriptUrls {
    let origin = base
        .find("//")
        .and_then(|i| base[i + 2..].find('/').map(|j| &base[..i + 2 + j]))
        .unwrap_or(base);
    let abs = |u: &str| {
        let u = expand(u, mac);
        if u.starts_with("http") {
            u
        } else {
            format!("{origin}{u}")
        }
    };
    // The image argument: the first word that is not an option (`--name main` takes a value,
    // `--autofree` does not) and not a key=value argument.
    let image = |words: &[&str]| -> Option<String> {
        let mut i = 1;
        while i < words.len() {
            let w = words[i];
            if let Some(opt) = w.strip_prefix("--") {
                if !opt.contains('=') && matches!(opt, "name" | "n" | "timeout" | "t") {
                    i += 1;
                }
            } else if w.starts_with("http") || w.starts_with('/') {
                return Some(abs(w));
            } else if w == "||" {
                return None;
            }
            i += 1;
        }
        None
    };
    let mut out = ScriptUrls::default();
    for line in script.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().copied() {
            Some("chain" | "chainload") => out.chain = image(&words),
            Some("kernel" | "imgexec") => {
                out.kernel = image(&words);
                for w in &words[1..] {
                    for key in ["coreos.inst.ignition_url=", "ignition.config.url="] {
                        if let Some(u) = w.strip_prefix(key) {
                            out.ignition = Some(abs(u));
                        }
                    }
                }
            }
            Some("initrd") => out.initrd = image(&words),
            _ => {}
        }
    }
    out
}

async fn client(dhcp: Arc<Dhcp>, i: u32) -> Result<[Duration; 7]> {
    let mac = [
        0x02,
        0xbb,
        (i >> 24) as u8,
        (i >> 16) as u8,
        (i >> 8) as u8,
        i as u8,
    ];
    let mut times = [Duration::ZERO; 7];
    let t = Instant::now();
    let (addr, next, file) = dora(&dhcp, mac, 0x1000_0000 | i, false)
        .await
        .context("dhcp as firmware")?;
    times[0] = t.elapsed();
    let t = Instant::now();
    tftp_get(addr, next, &file).await.context("tftp")?;
    times[1] = t.elapsed();
    let t = Instant::now();
    let (addr2, _, script_url) = dora(&dhcp, mac, 0x2000_0000 | i, true)
        .await
        .context("dhcp as ipxe")?;
    times[2] = t.elapsed();
    if addr2 != addr {
        bail!("second lease {addr2} differs from {addr}");
    }
    // The DHCP URL is the entry script (`/boot.ipxe`), which chains to the host's own script.
    let t = Instant::now();
    let mut url = script_url;
    let mut urls = ScriptUrls::default();
    for _ in 0..4 {
        let (_, script) = http_get(addr, &url).await.context("script")?;
        urls = script_urls(&String::from_utf8_lossy(&script), &url, mac);
        match urls.chain.take() {
            Some(next) => url = next,
            None => break,
        }
    }
    times[3] = t.elapsed();
    for (slot, url, what) in [
        (4, urls.kernel, "kernel"),
        (5, urls.initrd, "initrd"),
        (6, urls.ignition, "ignition"),
    ] {
        let url = url.with_context(|| format!("no {what} URL in the script"))?;
        let t = Instant::now();
        http_get(addr, &url)
            .await
            .with_context(|| what.to_owned())?;
        times[slot] = t.elapsed();
    }
    Ok(times)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    let dhcp = Arc::new(Dhcp::bind(&a.iface).await?);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, at) in (0..a.clients).zip(a.pattern.offsets(a.clients, a.arrival, a.seed)) {
        let dhcp = dhcp.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(start + at)).await;
            client(dhcp, i).await
        }));
    }
    let mut ok: Vec<[Duration; 7]> = Vec::new();
    let mut errors: HashMap<String, u32> = HashMap::new();
    let mut failed_clients = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let err = match t.await {
            Ok(Ok(times)) => {
                ok.push(times);
                continue;
            }
            Ok(Err(e)) => format!("{e:#}"),
            Err(e) => e.to_string(),
        };
        *errors.entry(err).or_default() += 1;
        failed_clients.push(i);
    }
    let wall = start.elapsed();
    let mut phases = serde_json::Map::new();
    for (p, name) in PHASES.iter().enumerate() {
        let mut v: Vec<f64> = ok.iter().map(|t| t[p].as_secs_f64() * 1000.0).collect();
        v.sort_by(f64::total_cmp);
        phases.insert(
            (*name).into(),
            serde_json::json!({ "p50_ms": percentile(&v, 0.5), "p99_ms": percentile(&v, 0.99) }),
        );
    }
    let mut totals: Vec<f64> = ok
        .iter()
        .map(|t| t.iter().sum::<Duration>().as_secs_f64() * 1000.0)
        .collect();
    totals.sort_by(f64::total_cmp);
    let summary = serde_json::json!({
        "clients": a.clients,
        "arrival_ms": a.arrival.as_millis() as u64,
        "pattern": a.pattern.to_string(),
        "succeeded": ok.len(),
        "failed": a.clients as usize - ok.len(),
        "wall_s": wall.as_secs_f64(),
        "total_p50_ms": percentile(&totals, 0.5),
        "total_p99_ms": percentile(&totals, 0.99),
        "phases": phases,
        "errors": errors,
        "failed_clients": failed_clients,
    });
    println!("{summary}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 7];

    fn ms(pattern: &str, clients: u32) -> Vec<u64> {
        let p: Pattern = pattern.parse().unwrap();
        assert_eq!(p.to_string(), pattern, "round trip");
        p.offsets(clients, Duration::from_secs(1), 7)
            .iter()
            .map(|d| d.as_millis() as u64)
            .collect()
    }

    #[test]
    fn arrival_patterns() {
        assert_eq!(ms("even", 4), [0, 250, 500, 750]);
        assert_eq!(ms("burst", 3), [0, 0, 0]);
        assert_eq!(ms("waves:2", 5), [0, 0, 0, 500, 500]);
        assert_eq!(ms("waves:3", 6), [0, 0, 333, 333, 666, 666]);
        let random = ms("random", 1000);
        assert!(random.iter().all(|&t| t < 1000));
        assert_eq!(random, ms("random", 1000), "seeded: the same storm twice");
        // Spread over the window, not bunched: each quarter gets about a quarter.
        for q in 0..4 {
            let n = random.iter().filter(|&&t| t / 250 == q).count();
            assert!((150..350).contains(&n), "quarter {q}: {n}");
        }
        for bad in ["", "waves:0", "waves:x", "poisson"] {
            assert!(bad.parse::<Pattern>().is_err(), "{bad}");
        }
    }

    fn check(script: &str, expected: ScriptUrls) {
        assert_eq!(
            script_urls(script, "http://10.99.0.1:8080/boot.ipxe", MAC),
            expected
        );
    }

    #[test]
    fn follows_the_chain_script() {
        check(
            "#!ipxe\nchain http://10.99.0.1:8080/ipxe?mac=${mac:hexhyp}&uuid=${uuid}&arch=${buildarch}&platform=${platform} || goto failed\n",
            ScriptUrls {
                chain: Some(
                    "http://10.99.0.1:8080/ipxe?mac=02-bb-00-00-00-07&uuid=&arch=i386&platform=pcbios"
                        .into(),
                ),
                ..Default::default()
            },
        );
    }

    #[test]
    fn reads_the_host_script() {
        check(
            "kernel http://10.99.0.1:8080/kernel initrd=main coreos.inst.ignition_url=http://10.99.0.1:8080/ignition?mac=${mac:hexhyp} || goto failed\n\
             initrd --name main http://10.99.0.1:8080/initramfs.img || goto failed\n",
            ScriptUrls {
                chain: None,
                kernel: Some("http://10.99.0.1:8080/kernel".into()),
                initrd: Some("http://10.99.0.1:8080/initramfs.img".into()),
                ignition: Some("http://10.99.0.1:8080/ignition?mac=02-bb-00-00-00-07".into()),
            },
        );
        check(
            "initrd /initrd.img\n",
            ScriptUrls {
                initrd: Some("http://10.99.0.1:8080/initrd.img".into()),
                ..Default::default()
            },
        );
    }
}
