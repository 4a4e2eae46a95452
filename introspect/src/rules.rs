//! Role rules: which role a new host gets, and with which disk hints.

use std::collections::BTreeMap;

use pxe_stack::Mac;
use serde::{Deserialize, Serialize};

use crate::disk::{self, Chosen, DEFAULT_MIN_DISK_BYTES, DiskHints};
use crate::error::Error;
use crate::ghw::Hardware;
use crate::identity::Identity;

/// How new hosts get their role and install disk.
///
/// Evaluated in order: an explicit MAC entry; then the first [`Rule`] whose predicate holds and
/// whose limit is not reached; then `default_role`. A host seen before keeps its role (the
/// [`Introspector`](crate::Introspector) remembers it; rules are not re-run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Fixed roles by MAC (any of the host's usable MACs).
    pub explicit: BTreeMap<Mac, String>,
    /// Ordered rules for hosts without an explicit role.
    pub rules: Vec<Rule>,
    /// The role when no rule applies; `None` refuses such hosts (409).
    pub default_role: Option<String>,
    /// Root device hints for every role without its own.
    pub disk: DiskHints,
    /// Disks smaller than this are never chosen.
    pub min_disk_bytes: u64,
}

impl Default for Rules {
    /// No explicit roles, no rules, default role `worker`, no hints, an 8 GiB floor.
    fn default() -> Self {
        Rules {
            explicit: BTreeMap::new(),
            rules: Vec::new(),
            default_role: Some("worker".into()),
            disk: DiskHints::default(),
            min_disk_bytes: DEFAULT_MIN_DISK_BYTES,
        }
    }
}

impl Rules {
    /// The OpenShift shape: the first `masters` new hosts become `master`, the rest `worker`.
    pub fn masters_then_workers(masters: usize) -> Self {
        Rules {
            rules: vec![Rule {
                role: "master".into(),
                limit: Some(masters),
                ..Rule::default()
            }],
            ..Rules::default()
        }
    }
}

/// One rule: a role for hosts that match a predicate, up to a limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rule {
    /// The role to assign.
    pub role: String,
    /// At most this many hosts with this role (counting every recorded host with the role).
    pub limit: Option<usize>,
    /// What the hardware must have.
    pub when: Predicate,
    /// Root device hints for this rule's hosts, instead of [`Rules::disk`].
    pub disk: Option<DiskHints>,
}

/// Hardware conditions; every bound that is set must hold, and an unknown value fails a bound.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Predicate {
    /// At least this many physical cores.
    pub min_cores: Option<u64>,
    /// At most this many physical cores.
    pub max_cores: Option<u64>,
    /// At least this much memory (physical, else usable), in bytes.
    pub min_memory_bytes: Option<u64>,
    /// At most this much memory, in bytes.
    pub max_memory_bytes: Option<u64>,
    /// At least one disk that could be an install disk (by the floor and the role's hints) has
    /// at least this many bytes.
    pub min_disk_bytes: Option<u64>,
}

/// Why a host got its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// An explicit MAC entry.
    Explicit,
    /// The rule at this index.
    Rule {
        /// Index into [`Rules::rules`].
        index: usize,
    },
    /// The default role.
    Default,
}

/// A role and install disk decided for a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The role.
    pub role: String,
    /// Why.
    pub reason: Reason,
    /// The install disk.
    pub disk: Chosen,
}

/// The host's core count: the summary field, else the sum over processors.
pub fn cores(hw: &Hardware) -> Option<u64> {
    let cpu = hw.cpu.as_ref()?;
    cpu.total_cores.or_else(|| {
        let sum: u64 = cpu.processors.iter().filter_map(|p| p.total_cores).sum();
        (sum > 0).then_some(sum)
    })
}

/// The host's memory: physical bytes, else usable bytes.
pub fn memory_bytes(hw: &Hardware) -> Option<u64> {
    let m = hw.memory.as_ref()?;
    m.total_physical_bytes.or(m.total_usable_bytes)
}

fn within(value: Option<u64>, min: Option<u64>, max: Option<u64>) -> bool {
    match value {
        Some(v) => min.is_none_or(|m| v >= m) && max.is_none_or(|m| v <= m),
        None => min.is_none() && max.is_none(),
    }
}

/// Decides a new host's role and install disk.
///
/// `assigned` counts the recorded hosts per role, for rule limits.
///
/// # Errors
/// [`Error::NoRole`] when nothing assigns a role, [`Error::NoDisk`] when the role's hints match
/// no disk.
pub fn decide(
    rules: &Rules,
    hw: &Hardware,
    id: &Identity,
    primary: Mac,
    assigned: &BTreeMap<String, usize>,
) -> Result<Decision, Error> {
    let disks = hw.block.as_ref().map(|b| b.disks.as_slice()).unwrap_or(&[]);
    let largest = |hints: &DiskHints| {
        disks
            .iter()
            .filter(|d| disk::choose(std::slice::from_ref(*d), hints, rules.min_disk_bytes).is_ok())
            .filter_map(|d| d.size_bytes)
            .max()
    };
    let explicit = id.macs.iter().find_map(|m| rules.explicit.get(m));
    let (role, reason, hints) = if let Some(role) = explicit {
        let hints = rules
            .rules
            .iter()
            .find(|r| &r.role == role)
            .and_then(|r| r.disk.as_ref());
        (role.clone(), Reason::Explicit, hints.unwrap_or(&rules.disk))
    } else {
        let hit = rules.rules.iter().enumerate().find(|(_, r)| {
            let hints = r.disk.as_ref().unwrap_or(&rules.disk);
            let w = &r.when;
            r.limit
                .is_none_or(|l| assigned.get(&r.role).copied().unwrap_or(0) < l)
                && within(cores(hw), w.min_cores, w.max_cores)
                && within(memory_bytes(hw), w.min_memory_bytes, w.max_memory_bytes)
                && within(largest(hints), w.min_disk_bytes, None)
        });
        match (hit, &rules.default_role) {
            (Some((index, r)), _) => (
                r.role.clone(),
                Reason::Rule { index },
                r.disk.as_ref().unwrap_or(&rules.disk),
            ),
            (None, Some(role)) => (role.clone(), Reason::Default, &rules.disk),
            (None, None) => return Err(Error::NoRole { mac: primary }),
        }
    };
    let disk =
        disk::choose(disks, hints, rules.min_disk_bytes).map_err(|rejected| Error::NoDisk {
            mac: primary,
            rejected,
        })?;
    Ok(Decision { role, reason, disk })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ghw::{Block, Cpu, Disk, DriveType, Memory};

    const GIB: u64 = 1 << 30;

    fn host(cores: u64, mem_gib: u64, disk_gib: u64) -> Hardware {
        let disk = Disk {
            name: Some("vda".into()),
            size_bytes: Some(disk_gib * GIB),
            drive_type: DriveType::Hdd,
            ..Disk::default()
        };
        Hardware {
            block: Some(Block {
                disks: vec![disk],
                ..Block::default()
            }),
            cpu: Some(Cpu {
                total_cores: Some(cores),
                ..Cpu::default()
            }),
            memory: Some(Memory {
                total_physical_bytes: Some(mem_gib * GIB),
                ..Memory::default()
            }),
            ..Hardware::default()
        }
    }

    fn mac(n: u8) -> Mac {
        Mac([0x52, 0x54, 0, 0, 0, n])
    }

    /// Runs `hosts` through `rules` in order, counting roles as they are assigned, and returns
    /// each host's role (or the error's status).
    fn check(rules: &Rules, hosts: &[Hardware], expected: &[&str]) {
        let mut assigned = BTreeMap::new();
        let got: Vec<String> = hosts
            .iter()
            .enumerate()
            .map(|(i, hw)| {
                let m = mac(u8::try_from(i).unwrap());
                let id = Identity {
                    macs: vec![m],
                    ..Identity::default()
                };
                match decide(rules, hw, &id, m, &assigned) {
                    Ok(d) => {
                        *assigned.entry(d.role.clone()).or_insert(0) += 1;
                        d.role
                    }
                    Err(e) => e.status().as_u16().to_string(),
                }
            })
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn counts() {
        let h = host(4, 16, 120);
        let hosts = vec![h.clone(), h.clone(), h.clone(), h.clone(), h];
        check(
            &Rules::masters_then_workers(3),
            &hosts,
            &["master", "master", "master", "worker", "worker"],
        );
        check(
            &Rules::masters_then_workers(0),
            &hosts[..2],
            &["worker", "worker"],
        );
    }

    #[test]
    fn explicit_beats_rules_and_counts() {
        let mut rules = Rules::masters_then_workers(1);
        rules.explicit.insert(mac(1), "infra".into());
        rules.explicit.insert(mac(2), "master".into());
        let h = host(4, 16, 120);
        check(
            &rules,
            &[h.clone(), h.clone(), h.clone(), h],
            &["master", "infra", "master", "worker"],
        );
    }

    #[test]
    fn predicates() {
        let rules = Rules {
            rules: vec![
                Rule {
                    role: "master".into(),
                    limit: Some(1),
                    when: Predicate {
                        min_cores: Some(8),
                        min_memory_bytes: Some(32 * GIB),
                        ..Predicate::default()
                    },
                    disk: None,
                },
                Rule {
                    role: "storage".into(),
                    when: Predicate {
                        min_disk_bytes: Some(1000 * GIB),
                        ..Predicate::default()
                    },
                    ..Rule::default()
                },
                Rule {
                    role: "edge".into(),
                    when: Predicate {
                        max_cores: Some(2),
                        ..Predicate::default()
                    },
                    ..Rule::default()
                },
            ],
            default_role: None,
            ..Rules::default()
        };
        check(
            &rules,
            &[
                host(4, 64, 120),   // too few cores for master, small disk, too many for edge
                host(16, 64, 120),  // master
                host(16, 64, 120),  // master limit reached
                host(16, 64, 2000), // storage
                host(2, 4, 120),    // edge
                Hardware::default(),
            ],
            &["409", "master", "409", "storage", "edge", "409"],
        );
    }

    #[test]
    fn disk_hints_per_rule() {
        let rules = Rules {
            rules: vec![Rule {
                role: "master".into(),
                disk: Some(DiskHints {
                    rotational: Some(false),
                    ..DiskHints::default()
                }),
                ..Rule::default()
            }],
            ..Rules::default()
        };
        let id = Identity {
            macs: vec![mac(1)],
            ..Identity::default()
        };
        let err = decide(&rules, &host(4, 16, 120), &id, mac(1), &BTreeMap::new()).unwrap_err();
        match err {
            Error::NoDisk { rejected, .. } => {
                assert_eq!(rejected[0].reason.to_string(), "rotational true != false");
            }
            other => panic!("unexpected {other:?}"),
        }
        let tiny = decide(
            &Rules::default(),
            &host(4, 16, 4),
            &id,
            mac(1),
            &BTreeMap::new(),
        );
        assert_eq!(tiny.unwrap_err().status().as_u16(), 409);
    }
}
