//! A network namespace with a bridge and tap devices: the lab's isolated provisioning network.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use nix::sched::{CloneFlags, setns};

use super::Error;
use super::sys::run;

/// A network namespace that this process created; deleted (with every process in it) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name` with its loopback up.
    pub fn create(name: &str) -> Result<Self, Error> {
        // A namespace left by a crashed earlier run of the same name is removed first.
        if PathBuf::from("/run/netns").join(name).exists() {
            drop(Netns {
                name: name.to_owned(),
            });
        }
        run("ip", ["netns", "add", name])?;
        let ns = Netns {
            name: name.to_owned(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <ns> args…`.
    pub fn ip(&self, args: &[&str]) -> Result<String, Error> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", full)
    }

    /// Adds a bridge with an address (`br0`, `192.168.126.1`, `24`) and brings it up.
    pub fn add_bridge(&self, bridge: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), Error> {
        self.ip(&[
            "link",
            "add",
            bridge,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ])?;
        self.ip(&["addr", "add", &format!("{addr}/{prefix}"), "dev", bridge])?;
        self.ip(&["link", "set", bridge, "up"])?;
        Ok(())
    }

    /// Adds a veth pair from this machine's namespace (`host_if`, `host_addr`) into this one
    /// (`ns_if`, `ns_addr`), both in a /30: a private link for the operator's side only (the
    /// status page), never bridged to the hosts. Deleting the namespace deletes the pair.
    pub fn add_host_link(
        &self,
        host_if: &str,
        ns_if: &str,
        host_addr: Ipv4Addr,
        ns_addr: Ipv4Addr,
    ) -> Result<(), Error> {
        run(
            "ip",
            [
                "link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", &self.name,
            ],
        )?;
        run(
            "ip",
            ["addr", "add", &format!("{host_addr}/30"), "dev", host_if],
        )?;
        run("ip", ["link", "set", host_if, "up"])?;
        self.ip(&["addr", "add", &format!("{ns_addr}/30"), "dev", ns_if])?;
        self.ip(&["link", "set", ns_if, "up"])?;
        Ok(())
    }

    /// Adds a tap device enslaved to `bridge`, for one VM's NIC.
    pub fn add_tap(&self, tap: &str, bridge: &str) -> Result<(), Error> {
        self.ip(&["tuntap", "add", "dev", tap, "mode", "tap"])?;
        self.ip(&["link", "set", tap, "master", bridge])?;
        self.ip(&["link", "set", tap, "up"])?;
        Ok(())
    }

    /// Runs `f` on a thread that has entered this namespace. Sockets created there belong to
    /// the namespace for their whole life, and threads it starts (a tokio runtime's workers)
    /// are born inside it too.
    pub fn enter<T, F>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let path = PathBuf::from("/run/netns").join(&self.name);
        let file = File::open(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        std::thread::scope(|s| {
            s.spawn(move || {
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| Error::Setns {
                    name: self.name.clone(),
                    errno: e as i32,
                })?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| {
                Err(Error::Setns {
                    name: self.name.clone(),
                    errno: 0,
                })
            })
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Every process still inside (QEMU, anything a test started) goes first.
        if let Ok(pids) = run("ip", ["netns", "pids", &self.name]) {
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = run("ip", ["netns", "del", &self.name]);
    }
}
