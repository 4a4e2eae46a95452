//! Network namespaces for the lab: the hosts' provisioning segment (a bridge and a tap per VM)
//! and the provisioning server's side, plugged into that bridge by a veth pair.

use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr};
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

    /// Adds a bridge with no address of its own (the segment's switch: the hosts' namespace
    /// has no provisioning address) and brings it up. Multicast snooping is off, so the bridge
    /// floods DHCPv6, RA and neighbour discovery to every port as a plain switch would, whatever
    /// MLD reports it has seen.
    pub fn add_bridge(&self, bridge: &str) -> Result<(), Error> {
        self.ip(&[
            "link",
            "add",
            bridge,
            "type",
            "bridge",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ])?;
        self.ip(&["link", "set", bridge, "up"])?;
        Ok(())
    }

    /// Plugs namespace `other` into `bridge` of this one with a veth pair: `port` here,
    /// enslaved to the bridge, and `other_if` in `other`, which carries the addresses
    /// (`192.168.126.1/24` and/or `fd00:126::1/64`). An IPv6-only link gets no IPv4 address;
    /// its IPv6 addresses, the link-local one included, skip duplicate address detection (the
    /// segment is ours), so servers can bind and send router advertisements at once.
    pub fn add_bridge_link(
        &self,
        bridge: &str,
        port: &str,
        other: &Netns,
        other_if: &str,
        addr: Option<(Ipv4Addr, u8)>,
        addr6: Option<(Ipv6Addr, u8)>,
    ) -> Result<(), Error> {
        self.ip(&[
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            other_if,
            "netns",
            &other.name,
        ])?;
        self.ip(&["link", "set", port, "master", bridge])?;
        self.ip(&["link", "set", port, "up"])?;
        run(
            "ip",
            [
                "netns",
                "exec",
                &other.name,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{other_if}.accept_dad=0"),
            ],
        )?;
        if let Some((addr, prefix)) = addr {
            other.ip(&["addr", "add", &format!("{addr}/{prefix}"), "dev", other_if])?;
        }
        if let Some((addr, prefix)) = addr6 {
            other.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{addr}/{prefix}"),
                "dev",
                other_if,
                "nodad",
            ])?;
        }
        other.ip(&["link", "set", other_if, "up"])?;
        Ok(())
    }

    /// Removes loopback's `127.0.0.1/8`; loopback stays up with `::1`. What is left has no
    /// IPv4 address at all ([`Netns::ipv4_addresses`] is empty).
    pub fn remove_ipv4_loopback(&self) -> Result<(), Error> {
        self.ip(&["addr", "del", "127.0.0.1/8", "dev", "lo"])?;
        Ok(())
    }

    /// The IPv4 addresses configured anywhere in the namespace (`ip -4 -o addr`, as
    /// `addr/prefix (dev)`), loopback's `127.0.0.1` included: the lab's hosts' namespace has
    /// none at all (see [`Netns::remove_ipv4_loopback`]).
    pub fn ipv4_addresses(&self) -> Result<Vec<String>, Error> {
        let out = self.ip(&["-4", "-o", "addr", "show"])?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace().skip_while(|w| *w != "inet");
                w.nth(1)
                    .map(|a| format!("{a} ({})", l.split_whitespace().nth(1).unwrap_or("?")))
            })
            .collect())
    }

    /// Adds a veth pair from this machine's namespace (`host_if`, `host_addr`) into this one
    /// (`ns_if`, `ns_addr`), both in a /30: a private link for the operator's side only (the
    /// status page), never bridged to the hosts. The lab adds it to the provisioning server's
    /// namespace, its management side. Deleting the namespace deletes the pair.
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
