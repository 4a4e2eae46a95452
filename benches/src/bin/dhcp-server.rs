//! A stand-alone `pxe_stack::dhcp` server for the perfdhcp comparison (`benches/dhcp/run.sh`).
//!
//! ```text
//! dhcp-server --iface IF --server-ip IP --prefix LEN --range START END [--lease-file PATH]
//!             [--lease-secs N]
//! ```
//! Runs until killed. With `--lease-file`, every ACK is on disk (fsync) before it is sent.

use std::net::Ipv4Addr;

use anyhow::{Context, bail};
use pxe_stack::dhcp::{Config, LeaseFile, Range, Server, Subnet, bind};

fn main() -> anyhow::Result<()> {
    let mut iface = None;
    let mut server_ip: Option<Ipv4Addr> = None;
    let mut prefix = 24u8;
    let mut range = None;
    let mut lease_file = None;
    let mut lease_secs = 3600u32;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--iface" => iface = Some(val()?),
            "--server-ip" => server_ip = Some(val()?.parse()?),
            "--prefix" => prefix = val()?.parse()?,
            "--range" => {
                let start: Ipv4Addr = val()?.parse()?;
                let end: Ipv4Addr = val()?.parse()?;
                range = Some(Range { start, end });
            }
            "--lease-file" => lease_file = Some(val()?),
            "--lease-secs" => lease_secs = val()?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let server_ip = server_ip.context("--server-ip is required")?;
    let range = range.context("--range is required")?;
    let net = pxe_stack::Ipv4Net::new(server_ip, prefix);
    let mut subnet = Subnet::new(net.network(), prefix);
    subnet.pool = Some(range);
    let config = Config {
        server_ip,
        subnets: vec![subnet],
        lease_secs,
        ..Config::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let socket = bind(iface.as_deref(), 67)?;
        let mut server = Server::new(config)?;
        if let Some(path) = lease_file {
            server = server.with_lease_file(LeaseFile::new(path))?;
        }
        println!("ready");
        server.serve(socket, std::future::pending()).await?;
        Ok(())
    })
}
