//! Where both DHCP servers keep their leases, from the plan's `[state]`: each family in this
//! server's own lease file (`files`), or one pxe-stack `PgLeaseStore` (`postgres`) for both
//! families, in the same database as the rest of the state and shared by every server of the
//! site (a host keeps its address whichever server answers it; no address is bound to two
//! hosts).

#[cfg(feature = "postgres")]
use std::sync::Arc;

use pxe_stack::{dhcp, dhcp6};

use crate::error::Error;
use crate::layout::Layout;
use crate::plan::{Plan, StateBackend};

/// The lease stores of this deployment's DHCP servers.
pub(crate) enum LeaseStores {
    /// `<state>/leases.json` and `<state>/leases6.json`.
    Files {
        v4: dhcp::LeaseFile,
        v6: dhcp6::LeaseFile6,
    },
    /// One connection for both families.
    #[cfg(feature = "postgres")]
    Postgres(Arc<dhcp::PgLeaseStore>),
}

impl LeaseStores {
    /// Opens what the plan asks for: the state directory for the files, or a connection to the
    /// database (with its migrations) when a DHCP server will need one.
    pub(crate) async fn open(plan: &Plan, layout: &Layout) -> Result<LeaseStores, Error> {
        match plan.state.backend {
            StateBackend::Files => {
                std::fs::create_dir_all(layout.state_dir()).map_err(|source| Error::StateDir {
                    path: layout.state_dir().to_owned(),
                    source,
                })?;
                Ok(LeaseStores::Files {
                    v4: dhcp::LeaseFile::new(layout.lease_file()),
                    v6: dhcp6::LeaseFile6::new(layout.lease_file_v6()),
                })
            }
            #[cfg(feature = "postgres")]
            StateBackend::Postgres => {
                let options = crate::state::lease_store_options(plan)?;
                // The URL holds no password (`Plan::load` refuses one).
                let url = options.url.clone();
                let store = dhcp::PgLeaseStore::connect(options).await?;
                tracing::info!(store = %format!("postgres at {url}"), "DHCP leases shared");
                Ok(LeaseStores::Postgres(Arc::new(store)))
            }
            #[cfg(not(feature = "postgres"))]
            StateBackend::Postgres => Err(Error::MissingFeature {
                what: "[state] backend = \"postgres\"".into(),
                feature: "postgres",
            }),
        }
    }

    /// `server` with its DHCPv4 leases loaded from, and kept in, this store.
    pub(crate) async fn attach_v4(&self, server: dhcp::Server) -> Result<dhcp::Server, Error> {
        Ok(match self {
            LeaseStores::Files { v4, .. } => server.with_lease_file(v4.clone())?,
            #[cfg(feature = "postgres")]
            LeaseStores::Postgres(store) => server.with_lease_store(store.clone()).await?,
        })
    }

    /// `server` with its DHCPv6 leases loaded from, and kept in, this store.
    pub(crate) async fn attach_v6(&self, server: dhcp6::Server) -> Result<dhcp6::Server, Error> {
        Ok(match self {
            LeaseStores::Files { v6, .. } => server.with_lease_file(v6.clone())?,
            #[cfg(feature = "postgres")]
            LeaseStores::Postgres(store) => server.with_lease_store(store.clone()).await?,
        })
    }
}
