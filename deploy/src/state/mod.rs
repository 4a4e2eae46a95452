//! What the servers decide about hosts and must agree on, behind one trait: the introspection
//! inventory (roles, install disks, hostnames) and every host's events (the timeline).
//!
//! Two backends, chosen by the plan's [`[state]`](crate::StateConfig):
//! [`FilesState`] (the default: the inventory in this server's state directory, no event log,
//! as before `[state]` existed) and, with the `postgres` feature, [`PgState`]: one
//! PostgreSQL database several servers share, so a host introspected through one server gets
//! the same role, disk and Ignition from any other. DHCP leases have their own store in
//! pxe-stack (its `PgLeaseStore`, in the same database, with the same credentials and server
//! name, when `[state] backend = "postgres"`).

use std::path::PathBuf;
use std::sync::Arc;

use pxe_stack::{Event, EventSink};
use rhcos_introspect::{FileStore, Record, Store};

#[cfg(feature = "postgres")]
mod postgres;

#[cfg(feature = "postgres")]
pub use postgres::PgState;

/// One event on the shared timeline, with the server that saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedEvent {
    /// The server's name (`[state] server_name`, default its provisioning address).
    pub server: String,
    /// The event.
    pub event: Event,
}

/// Where the deciding state lives: the inventory (as rhcos-introspect's [`Store`]) and the
/// event log (every server's events, as an [`EventSink`] that must not block).
pub trait StateStore: Store + EventSink {
    /// Every event recorded so far, oldest first: with a shared backend, every server's.
    ///
    /// # Errors
    /// [`StateError`] when the backend cannot be read.
    fn events(&self) -> Result<Vec<SharedEvent>, StateError>;

    /// The backend for logs and the status page: never a password.
    fn describe(&self) -> String;
}

/// The state backend failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The variable `[state] password_env` names is not set.
    #[error("state.password_env: the variable {var} is not set")]
    PasswordMissing {
        /// The variable.
        var: String,
    },
    /// The CA file for TLS to the database cannot be used.
    #[error("state.ca_file: {path}: {message}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The database cannot be reached, refused us, or failed a statement.
    #[error("the state database at {target}: {message}")]
    Database {
        /// The URL (it has no password).
        target: String,
        /// What failed.
        message: String,
    },
    /// A stored event cannot be decoded.
    #[error("corrupt event {id} in the state database: {message}")]
    Corrupt {
        /// The row.
        id: i64,
        /// The decoder's description.
        message: String,
    },
}

/// The default backend: the inventory in this server's files ([`FileStore`]); no event log
/// (the timeline and the status page follow the events as they happen, in memory, as before
/// `[state]` existed), so a boot storm costs nothing more than it did.
#[derive(Debug)]
pub struct FilesState {
    inventory: FileStore,
}

impl FilesState {
    /// The inventory in `dir` (created if missing).
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, rhcos_introspect::Error> {
        Ok(FilesState {
            inventory: FileStore::new(dir)?,
        })
    }
}

impl Store for FilesState {
    fn load(&self) -> Result<Vec<Record>, rhcos_introspect::Error> {
        self.inventory.load()
    }

    fn save(&self, record: &Record) -> Result<(), rhcos_introspect::Error> {
        self.inventory.save(record)
    }
}

impl EventSink for FilesState {
    fn emit(&self, _event: Event) {}
}

impl StateStore for FilesState {
    /// Always empty: one server's events are on its own timeline and status page.
    fn events(&self) -> Result<Vec<SharedEvent>, StateError> {
        Ok(Vec::new())
    }

    fn describe(&self) -> String {
        format!("files in {}", self.inventory.dir().display())
    }
}

/// A [`StateStore`] handed to the introspector as its [`Store`] (shared, like the backend).
pub(crate) struct Inventory(pub(crate) Arc<dyn StateStore>);

impl Store for Inventory {
    fn load(&self) -> Result<Vec<Record>, rhcos_introspect::Error> {
        self.0.load()
    }

    fn save(&self, record: &Record) -> Result<(), rhcos_introspect::Error> {
        self.0.save(record)
    }

    fn shared(&self) -> bool {
        self.0.shared()
    }

    fn decide(
        &self,
        decide: &mut dyn FnMut(&[Record]) -> Result<Record, rhcos_introspect::Error>,
    ) -> Result<Record, rhcos_introspect::Error> {
        self.0.decide(decide)
    }
}

/// The state the plan's `[state]` names, for the server called `server`.
///
/// # Errors
/// [`crate::Error::MissingFeature`] for `postgres` without the feature; [`crate::Error::State`]
/// when the database cannot be reached or migrated; the inventory directory's errors.
pub async fn open_state(
    plan: &crate::Plan,
    inventory_dir: PathBuf,
) -> Result<Arc<dyn StateStore>, crate::Error> {
    match plan.state.backend {
        crate::StateBackend::Files => Ok(Arc::new(FilesState::new(inventory_dir)?)),
        #[cfg(feature = "postgres")]
        crate::StateBackend::Postgres => {
            let state = PgState::connect(&plan.state, server_name(plan)).await?;
            tracing::info!(state = %state.describe(), "shared state");
            Ok(Arc::new(state))
        }
        #[cfg(not(feature = "postgres"))]
        crate::StateBackend::Postgres => Err(crate::Error::MissingFeature {
            what: "[state] backend = \"postgres\"".into(),
            feature: "postgres",
        }),
    }
}

/// This server's name in the shared database (the timeline's events, the DHCP leases it
/// writes): `[state] server_name`, else its provisioning address (IPv4 first), else the
/// interface.
#[cfg(feature = "postgres")]
pub(crate) fn server_name(plan: &crate::Plan) -> String {
    plan.state.server_name.clone().unwrap_or_else(|| {
        let p = &plan.provisioning;
        p.address
            .map(|a| a.to_string())
            .or_else(|| p.ipv6.as_ref().map(|n| n.address.to_string()))
            .unwrap_or_else(|| p.interface.clone())
    })
}

/// How pxe-stack's DHCPv4 lease store reaches the plan's `[state]` database: the same URL,
/// password variable, CA file (or plaintext) and server name as [`PgState`].
///
/// # Errors
/// [`StateError::PasswordMissing`] when `password_env` names a variable that is not set.
#[cfg(feature = "postgres")]
pub(crate) fn lease_store_options(
    plan: &crate::Plan,
) -> Result<pxe_stack::dhcp::PgOptions, StateError> {
    let state = &plan.state;
    let password = match &state.password_env {
        Some(var) => {
            Some(std::env::var(var).map_err(|_| StateError::PasswordMissing { var: var.clone() })?)
        }
        None => None,
    };
    Ok(pxe_stack::dhcp::PgOptions {
        url: state.url.clone().unwrap_or_default(),
        password,
        // `Plan::load` allows exactly one of `ca_file` and `allow_plaintext`.
        ca_file: state.ca_file.clone(),
        server: server_name(plan),
    })
}

/// The files backend in `layout`'s inventory directory, for unit tests of components.
#[cfg(test)]
pub(crate) fn for_tests(layout: &crate::Layout) -> Arc<dyn StateStore> {
    Arc::new(FilesState::new(layout.inventory_dir()).expect("inventory directory"))
}
