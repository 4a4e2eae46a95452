//! A small RFC 1350/2347/2348/7440 TFTP read client for the benchmarks: no packaged client
//! speaks `windowsize`. Fetches FILE from SERVER in PARALLEL threads, discards the data, checks
//! the length against `tsize`, and prints `bytes seconds` for the whole batch.
//!
//! `tftp-get SERVER:PORT FILE [--blksize N] [--windowsize N] [--parallel N]`

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let server: SocketAddr = args.next().context("SERVER:PORT")?.parse()?;
    let file = args.next().context("FILE")?;
    let (mut blksize, mut windowsize, mut parallel) = (1468u16, 1u16, 1usize);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--blksize" => blksize = value.parse()?,
            "--windowsize" => windowsize = value.parse()?,
            "--parallel" => parallel = value.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let start = Instant::now();
    let handles: Vec<_> = (0..parallel)
        .map(|_| {
            let file = file.clone();
            std::thread::spawn(move || get(server, &file, blksize, windowsize))
        })
        .collect();
    let mut total = 0u64;
    for h in handles {
        total += h
            .join()
            .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    }
    println!("{total} {:.6}", start.elapsed().as_secs_f64());
    Ok(())
}

fn get(server: SocketAddr, path: &str, blksize: u16, windowsize: u16) -> anyhow::Result<u64> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut rrq = vec![0u8, 1];
    let (b, w) = (blksize.to_string(), windowsize.to_string());
    for s in [path, "octet", "blksize", &b, "windowsize", &w, "tsize", "0"] {
        rrq.extend_from_slice(s.as_bytes());
        rrq.push(0);
    }
    sock.send_to(&rrq, server)?;
    let mut buf = vec![0u8; 65536];
    let (mut blk, mut win) = (512usize, 1usize);
    let mut tsize: Option<u64> = None;
    let (mut expected, mut in_window, mut received) = (1u16, 0usize, 0u64);
    let mut tid: Option<SocketAddr> = None;
    let mut last_ack = [0u8; 4];
    let mut timeouts = 0;
    loop {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => {
                timeouts += 1;
                if timeouts > 20 {
                    bail!("server went silent");
                }
                if let Some(t) = tid {
                    sock.send_to(&last_ack, t)?;
                }
                in_window = 0;
                continue;
            }
        };
        if *tid.get_or_insert(from) != from {
            continue;
        }
        let pkt = &buf[..n];
        match u16::from_be_bytes([pkt[0], pkt[1]]) {
            6 => {
                let fields: Vec<&[u8]> = pkt[2..].split(|b| *b == 0).collect();
                for kv in fields.chunks(2) {
                    if kv.len() < 2 {
                        continue;
                    }
                    let v = std::str::from_utf8(kv[1])?;
                    match std::str::from_utf8(kv[0])?.to_ascii_lowercase().as_str() {
                        "blksize" => blk = v.parse()?,
                        "windowsize" => win = v.parse()?,
                        "tsize" => tsize = Some(v.parse()?),
                        _ => {}
                    }
                }
                last_ack = [0, 4, 0, 0];
                sock.send_to(&last_ack, from)?;
            }
            3 => {
                let block = u16::from_be_bytes([pkt[2], pkt[3]]);
                let len = pkt.len() - 4;
                if block == expected {
                    received += len as u64;
                    expected = expected.wrapping_add(1);
                    in_window += 1;
                    let last = len < blk;
                    if in_window == win || last {
                        let b = block.to_be_bytes();
                        last_ack = [0, 4, b[0], b[1]];
                        sock.send_to(&last_ack, from)?;
                        in_window = 0;
                    }
                    if last {
                        if let Some(t) = tsize
                            && t != received
                        {
                            bail!("got {received} bytes, tsize said {t}");
                        }
                        return Ok(received);
                    }
                } else if block != expected.wrapping_sub(1) || in_window == 0 {
                    let b = expected.wrapping_sub(1).to_be_bytes();
                    last_ack = [0, 4, b[0], b[1]];
                    sock.send_to(&last_ack, from)?;
                    in_window = 0;
                }
            }
            5 => bail!(
                "tftp error {}: {}",
                u16::from_be_bytes([pkt[2], pkt[3]]),
                String::from_utf8_lossy(&pkt[4..])
            ),
            op => bail!("unexpected opcode {op}"),
        }
    }
}
