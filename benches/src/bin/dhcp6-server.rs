//! A stand-alone `pxe_stack::dhcp6` server for the `perfdhcp -6` comparison
//! (`benches/dhcp/run.sh`).
//!
//! ```text
//! dhcp6-server --iface IF --server-addr ADDR --prefix LEN --range START END
//!              [--lease-file PATH] [--lease-secs N]
//! ```
//! Runs until killed. With `--lease-file`, every Reply that binds an address is on disk
//! (fsync) before it is sent. Clients are told apart by their DUID (`duid_first`): perfdhcp's
//! simulated clients share one link-local address and differ only in their DUID-LLT.

use std::net::Ipv6Addr;

use anyhow::bail;
use benches::DhcpServerArgs;
use pxe_stack::dhcp6::{Config, LeaseFile6, Range6, Server, Subnet6, bind};

fn main() -> anyhow::Result<()> {
    let DhcpServerArgs {
        iface,
        server: server_addr,
        prefix,
        range: (start, end),
        lease_file,
        lease_db,
        lease_secs,
        ..
    } = DhcpServerArgs::from_env("--server-addr", 64)?;
    if lease_db.is_some() {
        bail!("--lease-db: pxe-stack's PostgreSQL lease store holds DHCPv4 leases only");
    }
    let range = Range6 { start, end };
    if prefix > 128 {
        bail!("--prefix {prefix} is longer than 128");
    }
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    let bits = u128::from(server_addr) & mask;
    let mut subnet = Subnet6::new(Ipv6Addr::from(bits), prefix);
    subnet.pool = Some(range);
    let config = Config {
        server_addr,
        subnets: vec![subnet],
        lease_secs,
        duid_first: true,
        ..Config::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let socket = bind(iface.as_deref(), 547)?;
        let mut server = Server::new(config)?;
        if let Some(path) = lease_file {
            server = server.with_lease_file(LeaseFile6::new(path))?;
        }
        println!("ready");
        server.serve(socket, std::future::pending()).await?;
        Ok(())
    })
}
