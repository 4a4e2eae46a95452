//! A minimal server for the comparison benchmarks: pxe-stack's HTTP and/or TFTP server over a
//! directory, on the given loopback addresses, until killed.
//!
//! `pxe-serve --root DIR [--http 127.0.0.1:8080] [--tftp 127.0.0.1:6969] [--chunk BYTES] [--threads N]`

use std::net::SocketAddr;

use anyhow::{Context, bail};
use pxe_stack::{http, tftp};

fn main() -> anyhow::Result<()> {
    let mut root = None;
    let mut http_addr: Option<SocketAddr> = None;
    let mut tftp_addr: Option<SocketAddr> = None;
    let mut chunk = None;
    let mut threads = 2;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--root" => root = Some(std::path::PathBuf::from(value()?)),
            "--http" => http_addr = Some(value()?.parse()?),
            "--tftp" => tftp_addr = Some(value()?.parse()?),
            "--chunk" => chunk = Some(value()?.parse()?),
            "--threads" => threads = value()?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let root = root.context("--root is required")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(addr) = http_addr {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            let mut config = http::Config::default();
            config.root = Some(root.clone());
            if let Some(chunk) = chunk {
                config.chunk_size = chunk;
            }
            tasks.spawn(async move {
                http::Server::new(config)
                    .serve(listener, std::future::pending())
                    .await
                    .map_err(anyhow::Error::from)
            });
        }
        if let Some(addr) = tftp_addr {
            let socket = std::net::UdpSocket::bind(addr)?;
            let mut config = tftp::Config::default();
            config.root = Some(root.clone());
            config.max_per_client = 64;
            tasks.spawn(async move {
                tftp::Server::new(config)
                    .serve(socket, std::future::pending())
                    .await
                    .map_err(anyhow::Error::from)
            });
        }
        eprintln!("pxe-serve ready");
        while let Some(res) = tasks.join_next().await {
            res??;
        }
        Ok(())
    })
}
