//! The crate's one error type: everything that can stop a deployment.

use std::path::PathBuf;

/// Everything that can stop a deployment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The plan is not usable as it stands (checked again at run time).
    #[error("invalid plan")]
    Plan(#[from] crate::PlanError),
    /// A file the plan names could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A directory for the deployment's state (leases, inventory) could not be created.
    #[error("cannot create the state directory {path}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The bootstrap VM or its network could not be laid out, defined, started or removed.
    #[error("bootstrap vm")]
    Bootstrap(#[from] libvirt_templates::Error),
    /// A blocking task (libvirt calls) panicked or was cancelled.
    #[error("{what} did not finish")]
    Task {
        /// The task.
        what: &'static str,
    },
    /// The plan needs a feature this build of rhcos-deploy lacks.
    #[error("{what} needs rhcos-deploy's `{feature}` feature")]
    MissingFeature {
        /// What needs it (`host master-0's redfish bmc`, `[bootstrap]`).
        what: String,
        /// The cargo feature.
        feature: &'static str,
    },
    /// Fetching or verifying images failed.
    #[cfg(feature = "run")]
    #[error("images")]
    Images(#[from] rhcos_images::Error),
    /// The release's shim and GRUB could not be read from its metal image.
    #[error("the release's Secure Boot chain: {reason}")]
    BootChain {
        /// What went wrong (the image, and the ESP reader's error).
        reason: String,
    },
    /// The plan names neither a stream nor a mirror directory with a `stream.json`.
    #[error("no image metadata: set images.stream, or put stream.json in images.mirror")]
    NoStream,
    /// The Ignition assets could not be loaded.
    #[cfg(feature = "run")]
    #[error("ignition assets")]
    Ignition(#[from] ignition_serve::Error),
    /// The deciding state (`[state]`) cannot be opened or used.
    #[cfg(feature = "run")]
    #[error("state")]
    State(#[from] crate::state::StateError),
    /// The introspection service could not be set up.
    #[error("introspection")]
    Introspect(#[from] rhcos_introspect::Error),
    /// A script could not be generated.
    #[cfg(feature = "run")]
    #[error("ipxe script")]
    Script(#[from] ipxe_script::Error),
    /// The DHCP server could not start.
    #[cfg(feature = "run")]
    #[error("dhcp server")]
    Dhcp(#[from] pxe_stack::dhcp::Error),
    /// The DHCPv6 server could not start.
    #[cfg(feature = "run")]
    #[error("dhcpv6 server")]
    Dhcp6(#[from] pxe_stack::dhcp6::Error),
    /// The DNS server could not start.
    #[cfg(feature = "run")]
    #[error("dns server")]
    Dns(#[from] pxe_stack::dns::Error),
    /// Router advertisements could not start.
    #[cfg(feature = "run")]
    #[error("router advertisements")]
    RouterAdvertisements(#[from] pxe_stack::ra::Error),
    /// Binding a server socket failed.
    #[error("cannot bind {what} on {addr}")]
    Bind {
        /// Which server.
        what: &'static str,
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A host's BMC refused or failed.
    #[cfg(feature = "run")]
    #[error("bmc of {host}")]
    Bmc {
        /// The host.
        host: String,
        /// What went wrong.
        #[source]
        source: bmc_power::Error,
    },
}
