//! How a BIOS host gets into iPXE: shared by the DHCP server and the deployment plan.

use serde::{Deserialize, Serialize};

/// How to treat an iPXE client whose firmware architecture is BIOS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChainMode {
    /// Every iPXE client gets the script URL at once (QEMU's NIC ROMs are iPXE).
    #[default]
    Trust,
    /// A BIOS iPXE client gets `undionly.kpxe` until the DHCP lease table marks its MAC as
    /// chained (the TFTP server sent it the file; `dhcp::Leases::mark_chained`); then it gets
    /// the script. The PXE ROM and the chainloaded `undionly.kpxe` send byte-identical
    /// DISCOVERs, so only state tells them apart.
    Stateful,
}
