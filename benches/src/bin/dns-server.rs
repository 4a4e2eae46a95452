//! A stand-alone `pxe_stack::dns` server for the dnsperf comparison (`benches/dns/run.sh`).
//!
//! ```text
//! dns-server --listen IP:PORT --zone ocp.example.com --subnet 10.98.0.0/16 --hosts N
//!            [--upstream IP:PORT] [--threads N]
//! ```
//! Serves `host-<i>` at 10.98.(1 + i/250).(1 + i%250) (A and PTR), `api` and `api-int` at
//! 10.98.0.5 and `*.apps` at 10.98.0.6, the zone `benches/dns/run.sh` gives dnsmasq too.
//! Runs until killed.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{Context, bail};
use pxe_stack::Mac;
use pxe_stack::dns::{Config, Entry, HostAddr, Server, Value};

fn main() -> anyhow::Result<()> {
    let mut listen: Option<SocketAddr> = None;
    let mut zone = "ocp.example.com".to_owned();
    let mut subnet = (Ipv4Addr::new(10, 98, 0, 0), 16u8);
    let mut hosts = 100u32;
    let mut upstream = Vec::new();
    let mut threads = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--listen" => listen = Some(val()?.parse()?),
            "--zone" => zone = val()?,
            "--subnet" => {
                let v = val()?;
                let (net, len) = v.split_once('/').context("--subnet is NET/LEN")?;
                subnet = (net.parse()?, len.parse()?);
            }
            "--hosts" => hosts = val()?.parse()?,
            "--upstream" => upstream.push(val()?.parse()?),
            "--threads" => threads = val()?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let listen = listen.context("--listen is required")?;
    let mut entries = vec![
        Entry::new("api", Value::A(Ipv4Addr::new(10, 98, 0, 5))),
        Entry::new("api-int", Value::A(Ipv4Addr::new(10, 98, 0, 5))),
        Entry::new("*.apps", Value::A(Ipv4Addr::new(10, 98, 0, 6))),
    ];
    for i in 0..hosts {
        let b = i.to_be_bytes();
        let addr = Ipv4Addr::new(10, 98, (1 + i / 250) as u8, (1 + i % 250) as u8);
        let mac = Mac([0x02, 0xdd, b[0], b[1], b[2], b[3]]);
        let value = Value::Host(HostAddr {
            mac,
            reserved: Some(addr),
            reserved6: None,
        });
        entries.push(Entry::new(format!("host-{i}"), value));
    }
    let server = Server::new(Config {
        origin: zone,
        subnets: vec![subnet],
        entries,
        upstream,
        ..Config::default()
    })?;
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    rt.block_on(async move {
        let udp = tokio::net::UdpSocket::bind(listen).await?;
        let tcp = tokio::net::TcpListener::bind(listen).await?;
        println!("ready");
        server.serve(udp, tcp, std::future::pending()).await?;
        Ok(())
    })
}
