//! A stand-alone `pxe_stack::dhcp` server for the perfdhcp comparisons (`benches/dhcp/run.sh`,
//! `benches/dhcp-pg/run.sh`).
//!
//! ```text
//! dhcp-server --iface IF --server-ip IP --prefix LEN --range START END [--lease-secs N]
//!             [--lease-file PATH | --lease-db URL [--server-name NAME]]
//! ```
//! Runs until killed. With `--lease-file`, every ACK is on disk (fsync) before it is sent. With
//! `--lease-db`, every ACK is committed in PostgreSQL first (pxe-stack's `PgLeaseStore`), and
//! several servers given the same database share the leases; the password, if the database
//! asks for one, comes from `PGPASSWORD`, never from the command line. `--server-name` names
//! this server in the database (default: its address).

use std::sync::Arc;

use anyhow::Context;
use benches::DhcpServerArgs;
use pxe_stack::dhcp::{Config, LeaseFile, PgLeaseStore, PgOptions, Range, Server, Subnet, bind};

fn main() -> anyhow::Result<()> {
    let DhcpServerArgs {
        iface,
        server: server_ip,
        prefix,
        range: (start, end),
        lease_file,
        lease_db,
        server_name,
        lease_secs,
    } = DhcpServerArgs::from_env("--server-ip", 24)?;
    let range = Range { start, end };
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
        if let Some(url) = lease_db {
            let store = PgLeaseStore::connect(PgOptions {
                url,
                password: std::env::var("PGPASSWORD").ok(),
                ca_file: None,
                server: server_name.unwrap_or_else(|| server_ip.to_string()),
            })
            .await
            .context("--lease-db")?;
            server = server.with_lease_store(Arc::new(store)).await?;
        }
        println!("ready");
        server.serve(socket, std::future::pending()).await?;
        Ok(())
    })
}
