//! Helpers shared by the benchmark binaries and comparison scripts.

use std::str::FromStr;

use anyhow::{Context, bail};

/// The command line the stand-alone DHCP servers (`dhcp-server`, `dhcp6-server`) share:
/// `--iface IF <addr_flag> ADDR --prefix LEN --range START END [--lease-file PATH]
/// [--lease-db URL [--server-name NAME]] [--lease-secs N]`, with `A` the address type of the
/// family. `--help` prints the usage.
///
/// The database URL never carries a password: the servers read it from `PGPASSWORD`.
#[derive(Debug)]
pub struct DhcpServerArgs<A> {
    /// The interface to bind to.
    pub iface: Option<String>,
    /// The server's own address.
    pub server: A,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// The pool, first and last address.
    pub range: (A, A),
    /// Where leases are kept, if anywhere.
    pub lease_file: Option<String>,
    /// A PostgreSQL database for the leases (`postgresql://user@host/db`, no password),
    /// instead of a file.
    pub lease_db: Option<String>,
    /// This server's name in the shared database (default: its address).
    pub server_name: Option<String>,
    /// The lease time in seconds.
    pub lease_secs: u32,
}

impl<A> DhcpServerArgs<A>
where
    A: FromStr,
    A::Err: std::error::Error + Send + Sync + 'static,
{
    /// Parses this process's arguments; `addr_flag` names the server address
    /// (`--server-ip`, `--server-addr`), `default_prefix` is used without `--prefix`.
    pub fn from_env(addr_flag: &str, default_prefix: u8) -> anyhow::Result<Self> {
        let mut iface = None;
        let mut server = None;
        let mut prefix = default_prefix;
        let mut range = None;
        let mut lease_file = None;
        let mut lease_db = None;
        let mut server_name = None;
        let mut lease_secs = 3600u32;
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut val = || args.next().with_context(|| format!("{a} needs a value"));
            match a.as_str() {
                "--iface" => iface = Some(val()?),
                "--prefix" => prefix = val()?.parse()?,
                "--range" => {
                    let start: A = val()?.parse()?;
                    let end: A = val()?.parse()?;
                    range = Some((start, end));
                }
                "--lease-file" => lease_file = Some(val()?),
                "--lease-db" => lease_db = Some(val()?),
                "--server-name" => server_name = Some(val()?),
                "--help" | "-h" => {
                    println!("{}", Self::usage(addr_flag));
                    std::process::exit(0);
                }
                "--lease-secs" => lease_secs = val()?.parse()?,
                flag if flag == addr_flag => server = Some(val()?.parse()?),
                other => bail!("unknown argument {other}\n{}", Self::usage(addr_flag)),
            }
        }
        if lease_file.is_some() && lease_db.is_some() {
            bail!("give --lease-file or --lease-db, not both");
        }
        if server_name.is_some() && lease_db.is_none() {
            bail!("--server-name names this server in the --lease-db database; give both");
        }
        Ok(DhcpServerArgs {
            iface,
            server: server.with_context(|| format!("{addr_flag} is required"))?,
            prefix,
            range: range.context("--range is required")?,
            lease_file,
            lease_db,
            server_name,
            lease_secs,
        })
    }

    /// The usage line, for `--help` and argument errors.
    pub fn usage(addr_flag: &str) -> String {
        format!(
            "usage: --iface IF {addr_flag} ADDR [--prefix LEN] --range START END \
             [--lease-file PATH | --lease-db URL [--server-name NAME]] [--lease-secs N]\n\
             --lease-db: leases in PostgreSQL (no password in the URL: PGPASSWORD)"
        )
    }
}
