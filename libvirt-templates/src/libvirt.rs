//! Applying documents through libvirt (feature `libvirt`): idempotent define/start/stop/undefine.

use virt::connect::Connect;
use virt::error::ErrorNumber;

use crate::{Cluster, Domain, Error, Network, Parsed};

/// A blocking connection to libvirt.
///
/// Every method blocks on libvirt's RPC (milliseconds for `test:///default`, up to seconds when
/// QEMU starts a domain); from async code call them inside `tokio::task::spawn_blocking`. The
/// connection is `Send + Sync`.
///
/// The operations are idempotent: starting something already running, stopping something
/// stopped or undefining something absent succeeds and says so through its `bool` result
/// (`true`: this call changed something). Defining a document whose name and UUID exist updates
/// the definition; libvirt refuses a document whose name exists with another UUID, which is why
/// [`ClusterSpec`](crate::ClusterSpec) derives stable UUIDs from names.
///
/// # Panics
/// Dropping the value panics if libvirt reports an error while closing the connection: that is
/// the `virt` crate's `Drop` for its connection, which offers no fallible close.
pub struct Libvirt {
    conn: Connect,
}

/// What [`Libvirt::define_network`] or [`Libvirt::define_domain`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Defined {
    /// There was no object of that name; it is defined now.
    Created,
    /// A stopped object (or an active network) of that name and UUID got the new definition.
    /// An active network keeps running its old configuration until it is restarted.
    Updated,
    /// A running domain was destroyed, redefined and started again (`replace_running`).
    Replaced,
}

impl std::fmt::Debug for Libvirt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Libvirt")
            .field("uri", &self.conn.uri().ok())
            .finish()
    }
}

fn is_code(e: &virt::error::Error, code: ErrorNumber) -> bool {
    e.code().is_known_and(|c| c == code)
}

/// The error for a libvirt call that failed doing `op` to `name`, for `map_err`.
fn failed(op: &'static str, name: &str) -> impl FnOnce(virt::error::Error) -> Error {
    move |source| Error::Libvirt {
        op,
        name: name.to_owned(),
        source,
    }
}

impl Libvirt {
    /// Opens a read-write connection, e.g. `test:///default` or `qemu:///system`.
    ///
    /// libvirt's default error handler also prints every error to stderr; this turns that off
    /// for the process, since errors come back as values.
    ///
    /// # Errors
    /// [`Error::Libvirt`] if the connection fails.
    pub fn open(uri: &str) -> Result<Self, Error> {
        virt::error::clear_error_callback();
        let conn = Connect::open(Some(uri)).map_err(failed("open", uri))?;
        Ok(Libvirt { conn })
    }

    /// The underlying `virt` connection, for anything this type does not cover.
    pub fn connection(&self) -> &Connect {
        &self.conn
    }

    fn lookup_network(&self, name: &str) -> Result<Option<virt::network::Network>, Error> {
        match self.conn.lookup_network_by_name(name) {
            Ok(n) => Ok(Some(n)),
            Err(e) if is_code(&e, ErrorNumber::NoNetwork) => Ok(None),
            Err(e) => Err(failed("look up network", name)(e)),
        }
    }

    fn lookup_domain(&self, name: &str) -> Result<Option<virt::domain::Domain>, Error> {
        match self.conn.lookup_domain_by_name(name) {
            Ok(d) => Ok(Some(d)),
            Err(e) if is_code(&e, ErrorNumber::NoDomain) => Ok(None),
            Err(e) => Err(failed("look up domain", name)(e)),
        }
    }

    /// Whether the network is active; `None` if it is not defined.
    ///
    /// # Errors
    /// [`Error::Libvirt`] if libvirt fails.
    pub fn network_active(&self, name: &str) -> Result<Option<bool>, Error> {
        let Some(net) = self.lookup_network(name)? else {
            return Ok(None);
        };
        net.is_active()
            .map(Some)
            .map_err(failed("query network", name))
    }

    /// Whether the domain is running (active); `None` if it is not defined.
    ///
    /// # Errors
    /// [`Error::Libvirt`] if libvirt fails.
    pub fn domain_active(&self, name: &str) -> Result<Option<bool>, Error> {
        let Some(dom) = self.lookup_domain(name)? else {
            return Ok(None);
        };
        dom.is_active()
            .map(Some)
            .map_err(failed("query domain", name))
    }

    /// Defines (or re-defines) a persistent network.
    ///
    /// # Errors
    /// [`Error::Libvirt`] if libvirt rejects the document, e.g. because the name exists with
    /// another UUID; [`Error::Render`] if it cannot be rendered.
    pub fn define_network(&self, network: &Network) -> Result<Defined, Error> {
        let existed = self.lookup_network(&network.name)?.is_some();
        let xml = network.to_xml()?;
        self.conn
            .define_network_xml(&xml)
            .map_err(failed("define network", &network.name))?;
        Ok(if existed {
            Defined::Updated
        } else {
            Defined::Created
        })
    }

    /// Starts a defined network; `Ok(false)` if it was already active.
    ///
    /// # Errors
    /// [`Error::Libvirt`] if it is not defined or fails to start.
    pub fn start_network(&self, name: &str) -> Result<bool, Error> {
        let net = self
            .conn
            .lookup_network_by_name(name)
            .map_err(failed("look up network", name))?;
        if net.is_active().map_err(failed("query network", name))? {
            return Ok(false);
        }
        net.create().map_err(failed("start network", name))?;
        Ok(true)
    }

    /// Stops a network; `Ok(false)` if it was not defined or not active.
    ///
    /// # Errors
    /// [`Error::Libvirt`] if libvirt fails.
    pub fn stop_network(&self, name: &str) -> Result<bool, Error> {
        let Some(net) = self.lookup_network(name)? else {
            return Ok(false);
        };
        if !net.is_active().map_err(failed("query network", name))? {
            return Ok(false);
        }
        net.destroy().map_err(failed("stop network", name))?;
        Ok(true)
    }

    /// Stops (if active) and undefines a network; `Ok(false)` if it was not defined.
    ///
    /// # Errors
    /// [`Error::Libvirt`] if libvirt fails.
    pub fn undefine_network(&self, name: &str) -> Result<bool, Error> {
        self.stop_network(name)?;
        let Some(net) = self.lookup_network(name)? else {
            return Ok(false);
        };
        // A transient network disappears when stopped; a persistent one needs undefine.
        if net.is_persistent().unwrap_or(true) {
            net.undefine().map_err(failed("undefine network", name))?;
        }
        Ok(true)
    }

    /// Defines (or re-defines) a persistent domain.
    ///
    /// A running domain is left alone (`Err(DomainRunning)`) unless `replace_running` is true;
    /// then it is destroyed (hard power-off), redefined and started again.
    ///
    /// # Errors
    /// [`Error::DomainRunning`], [`Error::Libvirt`] if libvirt rejects the document (e.g. the
    /// name exists with another UUID), [`Error::Render`] if it cannot be rendered.
    pub fn define_domain(&self, domain: &Domain, replace_running: bool) -> Result<Defined, Error> {
        let name = &domain.name;
        let existing = self.lookup_domain(name)?;
        let running = match &existing {
            Some(d) => d.is_active().map_err(failed("query domain", name))?,
            None => false,
        };
        if running && !replace_running {
            return Err(Error::DomainRunning { name: name.clone() });
        }
        let xml = domain.to_xml()?;
        if running {
            self.stop_domain(name)?;
        }
        self.conn
            .define_domain_xml(&xml)
            .map_err(failed("define domain", name))?;
        if running {
            self.start_domain(name)?;
            return Ok(Defined::Replaced);
        }
        Ok(if existing.is_some() {
            Defined::Updated
        } else {
            Defined::Created
        })
    }

    /// Starts a defined domain; `Ok(false)` if it was already running.
    ///
    /// # Errors
    /// [`Error::Libvirt`] if it is not defined or fails to start.
    pub fn start_domain(&self, name: &str) -> Result<bool, Error> {
        let dom = self
            .conn
            .lookup_domain_by_name(name)
            .map_err(failed("look up domain", name))?;
        if dom.is_active().map_err(failed("query domain", name))? {
            return Ok(false);
        }
        dom.create().map_err(failed("start domain", name))?;
        Ok(true)
    }

    /// Powers a domain off hard (`virsh destroy`); `Ok(false)` if it was not defined or not
    /// running.
    ///
    /// # Errors
    /// [`Error::Libvirt`] if libvirt fails.
    pub fn stop_domain(&self, name: &str) -> Result<bool, Error> {
        let Some(dom) = self.lookup_domain(name)? else {
            return Ok(false);
        };
        if !dom.is_active().map_err(failed("query domain", name))? {
            return Ok(false);
        }
        match dom.destroy() {
            Ok(()) => Ok(true),
            // It stopped between the check and the call.
            Err(e) if is_code(&e, ErrorNumber::OperationInvalid) => Ok(false),
            Err(e) => Err(failed("stop domain", name)(e)),
        }
    }

    /// Stops (if running) and undefines a domain; `Ok(false)` if it was not defined.
    ///
    /// # Errors
    /// [`Error::Libvirt`] if libvirt fails.
    pub fn undefine_domain(&self, name: &str) -> Result<bool, Error> {
        self.stop_domain(name)?;
        let Some(dom) = self.lookup_domain(name)? else {
            return Ok(false);
        };
        if dom.is_persistent().unwrap_or(true) {
            dom.undefine().map_err(failed("undefine domain", name))?;
        }
        Ok(true)
    }

    /// Reads a network's current definition back into the model.
    ///
    /// # Errors
    /// [`Error::Libvirt`] if it is not defined, [`Error::Parse`] if libvirt's XML does not fit.
    pub fn network_xml(&self, name: &str) -> Result<Parsed<Network>, Error> {
        let net = self
            .conn
            .lookup_network_by_name(name)
            .map_err(failed("look up network", name))?;
        let xml = net.xml_desc(0).map_err(failed("dump network", name))?;
        Network::from_xml(&xml)
    }

    /// Reads a domain's current definition back into the model.
    ///
    /// # Errors
    /// [`Error::Libvirt`] if it is not defined, [`Error::Parse`] if libvirt's XML does not fit.
    pub fn domain_xml(&self, name: &str) -> Result<Parsed<Domain>, Error> {
        let dom = self
            .conn
            .lookup_domain_by_name(name)
            .map_err(failed("look up domain", name))?;
        let xml = dom.xml_desc(0).map_err(failed("dump domain", name))?;
        Domain::from_xml(&xml)
    }

    /// Defines the cluster network and the bootstrap domain, and with `start` starts both
    /// (network first). Safe to repeat; a running bootstrap domain is kept unless
    /// `replace_running`.
    ///
    /// # Errors
    /// As [`define_network`](Self::define_network), [`define_domain`](Self::define_domain) and
    /// the start calls.
    pub fn apply(
        &self,
        cluster: &Cluster,
        start: bool,
        replace_running: bool,
    ) -> Result<(Defined, Defined), Error> {
        let net = self.define_network(&cluster.network)?;
        if start {
            self.start_network(&cluster.network.name)?;
        }
        let dom = self.define_domain(&cluster.bootstrap, replace_running)?;
        if start {
            self.start_domain(&cluster.bootstrap.name)?;
        }
        Ok((net, dom))
    }

    /// Undefines the bootstrap domain and the cluster network (domain first); missing objects
    /// are fine.
    ///
    /// # Errors
    /// [`Error::Libvirt`] if libvirt fails.
    pub fn remove(&self, cluster: &Cluster) -> Result<(), Error> {
        self.undefine_domain(&cluster.bootstrap.name)?;
        self.undefine_network(&cluster.network.name)?;
        Ok(())
    }
}
