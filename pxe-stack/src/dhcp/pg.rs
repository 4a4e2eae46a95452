//! The shared lease store: DHCPv4 leases in PostgreSQL (feature `postgres`), for several
//! servers answering one provisioning network.
//!
//! Every batch of a server's changes is one call of `dhcp4_commit` (see
//! `pxe-stack/migrations/`), one round trip and one transaction. Offers stay in each server's
//! memory and may race; the database's constraints make a second binding of an address
//! impossible, and the function hands back the row that won so the losing server NAKs.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tokio_postgres::config::SslMode;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row};

use super::error::Error;
use super::leases::{Lease, State};
use crate::Mac;
use crate::pg::{MakeRustls, chain};
use crate::store::{Commit, LeaseStore, RefusedBinding, StoreFuture, StoredLease};

/// The migrations, in order: (name, SQL), recorded in `pxe_stack_migrations`.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_dhcp4_leases",
        include_str!("../../migrations/0001_dhcp4_leases.sql"),
    ),
    (
        "0002_dhcp6_leases",
        include_str!("../../migrations/0002_dhcp6_leases.sql"),
    ),
];
/// The advisory lock key the migrations run under.
const MIGRATION_LOCK: i64 = 0x7078_6573_7401;
/// How long one call may take, connecting included, before the store counts as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// After a failed connection attempt, how long calls fail at once before the next attempt
/// (a batch of DHCP requests does not wait for a connect timeout each).
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// A libpq-style URL or key=value string, without a password
    /// (`postgresql://dhcp@db.example/site`, `host=/run/postgresql user=dhcp dbname=site`).
    pub url: String,
    /// The password (from the environment or a secret store; never in the URL).
    pub password: Option<String>,
    /// TLS to the database: the server's certificate is verified against this CA file.
    /// `None` is plaintext, for a Unix socket or a loopback database.
    pub ca_file: Option<std::path::PathBuf>,
    /// This server's name, stored with every row it writes (and left out of its refreshes).
    pub server: String,
}

/// DHCPv4 and DHCPv6 leases in one PostgreSQL database that several servers share. Hand it
/// to [`Server::with_lease_store`](super::Server::with_lease_store) (and, with feature
/// `dhcp6`, to `dhcp6::Server::with_lease_store`: one store serves both families).
///
/// A lost connection is opened again on the next call. Until it is back, commits fail, so the
/// server ACKs no new lease; renewals of leases the database already holds are still ACKed
/// ([`LeaseStore::renews_while_down`]) and written once it is back.
///
/// # Example
/// ```no_run
/// # async fn serve(config: pxe_stack::dhcp::Config) -> Result<(), pxe_stack::dhcp::Error> {
/// use std::sync::Arc;
/// use pxe_stack::dhcp::{PgLeaseStore, PgOptions, Server, bind};
///
/// let store = PgLeaseStore::connect(PgOptions {
///     url: "host=/run/postgresql user=dhcp dbname=site".into(),
///     password: std::env::var("DHCP_DB_PASSWORD").ok(),
///     ca_file: None,
///     server: "rack1-a".into(),
/// })
/// .await?;
/// let server = Server::new(config)?.with_lease_store(Arc::new(store)).await?;
/// server.serve(bind(Some("br0"), 67)?, std::future::pending()).await
/// # }
/// ```
pub struct PgLeaseStore {
    link: Mutex<Link>,
    target: String,
    server: String,
    /// The highest row version taken in so far (for [`LeaseStore::refresh`]), per family.
    seen: AtomicI64,
    #[cfg_attr(not(feature = "dhcp6"), allow(dead_code))]
    seen6: AtomicI64,
}

impl std::fmt::Debug for PgLeaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLeaseStore")
            .field("target", &self.target)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

struct Link {
    config: tokio_postgres::Config,
    tls: Option<MakeRustls>,
    client: Option<Client>,
    failed_at: Option<Instant>,
}

impl PgLeaseStore {
    /// Connects, and applies the migrations the database lacks.
    ///
    /// # Errors
    /// [`Error::LeaseStore`] when the URL does not parse, the CA file is unusable, or the
    /// database cannot be reached, refuses the credentials or TLS, or a migration fails.
    pub async fn connect(options: PgOptions) -> Result<PgLeaseStore, Error> {
        let target = redact(&options.url);
        let fail = |message: String| Error::LeaseStore {
            store: format!("postgres at {target}"),
            message,
        };
        let mut config: tokio_postgres::Config =
            options.url.parse().map_err(|e| fail(chain(&e)))?;
        if config.get_password().is_some() {
            return Err(fail(
                "the URL holds a password; pass it in PgOptions::password instead".into(),
            ));
        }
        if let Some(password) = &options.password {
            config.password(password);
        }
        config
            .connect_timeout(CALL_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .application_name("pxe-stack-dhcp");
        let tls = match &options.ca_file {
            Some(ca) => {
                config.ssl_mode(SslMode::Require);
                Some(MakeRustls::from_ca_file(ca).map_err(|e| fail(e.to_string()))?)
            }
            None => {
                config.ssl_mode(SslMode::Disable);
                None
            }
        };
        let store = PgLeaseStore {
            link: Mutex::new(Link {
                config,
                tls,
                client: None,
                failed_at: None,
            }),
            target: target.clone(),
            server: options.server,
            seen: AtomicI64::new(0),
            seen6: AtomicI64::new(0),
        };
        {
            let mut link = store.link.lock().await;
            let client = store.client(&mut link).await?;
            let migrated = tokio::time::timeout(
                CALL_TIMEOUT * 4,
                crate::pg::migrate(client, "pxe_stack_migrations", MIGRATION_LOCK, MIGRATIONS),
            )
            .await;
            match migrated {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(fail(chain(&e))),
                Err(_) => return Err(fail("migrations timed out".into())),
            }
        }
        Ok(store)
    }

    fn error(&self, message: String) -> Error {
        Error::LeaseStore {
            store: format!("postgres at {}", self.target),
            message,
        }
    }

    /// The open connection, opened again when it was lost.
    async fn client<'l>(&self, link: &'l mut Link) -> Result<&'l mut Client, Error> {
        if link.client.as_ref().is_some_and(Client::is_closed) {
            link.client = None;
        }
        if link.client.is_none() {
            if link
                .failed_at
                .is_some_and(|t| t.elapsed() < RECONNECT_PAUSE)
            {
                return Err(self.error("unreachable (retrying shortly)".into()));
            }
            let opened = match &link.tls {
                Some(tls) => {
                    let (client, conn) = link
                        .config
                        .connect(tls.clone())
                        .await
                        .map_err(|e| self.error(chain(&e)))?;
                    tokio::spawn(async move { drop(conn.await) });
                    client
                }
                None => {
                    let (client, conn) = link
                        .config
                        .connect(NoTls)
                        .await
                        .map_err(|e| self.error(chain(&e)))?;
                    tokio::spawn(async move { drop(conn.await) });
                    client
                }
            };
            link.client = Some(opened);
            link.failed_at = None;
        }
        Ok(link.client.as_mut().expect("connected above"))
    }

    /// Runs `call` on the connection within [`CALL_TIMEOUT`]; a failure drops the connection
    /// (it is opened again on the next call).
    async fn with_client<T>(
        &self,
        call: impl AsyncFnOnce(&mut Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, Error> {
        let mut link = self.link.lock().await;
        let result = tokio::time::timeout(CALL_TIMEOUT, async {
            let client = self.client(&mut link).await?;
            call(client).await.map_err(|e| self.error(chain(&e)))
        })
        .await
        .unwrap_or_else(|_| Err(self.error("timed out".into())));
        if result.is_err() {
            link.client = None;
            link.failed_at = Some(Instant::now());
        }
        result
    }

    /// The `L` rows with a version above the last one taken, written by other servers (or by
    /// anyone, for `all`, which is a load: the count starts over); the last version taken
    /// moves to the highest of them.
    async fn rows_since<L: PgRow>(&self, all: bool) -> Result<Vec<L>, Error> {
        let seen = L::seen(self);
        let since = if all { 0 } else { seen.load(Ordering::Relaxed) };
        let server = self.server.clone();
        let sql = format!(
            "SELECT address, mac, {}, state, expires, version FROM {}
              WHERE version > $1 AND ($2 OR server <> $3)
              ORDER BY version",
            L::OWN_COLUMNS,
            L::TABLE,
        );
        let rows = self
            .with_client(async move |c| c.query(&sql, &[&since, &all, &server]).await)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            seen.fetch_max(row.get::<_, i64>(6), Ordering::Relaxed);
            out.push(self.lease_of(row, 0)?);
        }
        Ok(out)
    }

    /// The lease in `row`, whose columns start at `at` in the order address, mac, the
    /// family's own two, state, expires.
    fn lease_of<L: PgRow>(&self, row: &Row, at: usize) -> Result<L, Error> {
        let bad = |what: &str| self.error(format!("a {} row has {what}", L::TABLE));
        let addr = L::addr_of(row.get(at)).ok_or_else(|| bad("an address of the other family"))?;
        let mac: String = row.get(at + 1);
        let state: String = row.get(at + 4);
        let expires: i64 = row.get(at + 5);
        let common = Common {
            mac: mac.parse().map_err(|_| bad("an invalid MAC"))?,
            state: match state.as_str() {
                "bound" => Stored::Bound,
                "released" => Stored::Released,
                "declined" => Stored::Declined,
                _ => return Err(bad("an unknown state")),
            },
            expires: u64::try_from(expires).unwrap_or(0),
        };
        L::from_row(addr, common, row, at + 2).map_err(bad)
    }

    /// One `<family>_commit` call for `commit`: what it refused, with the rows in the way.
    async fn commit_rows<L: PgRow>(
        &self,
        commit: Commit<L>,
    ) -> Result<Vec<RefusedBinding<L>>, Error> {
        // A removal sends the entry it removes (its address and key), marked not `put`.
        let rows: Vec<(bool, &L)> = commit
            .changes
            .iter()
            .filter_map(|c| match (&c.after, &c.before) {
                (Some(after), _) => Some((true, after)),
                (None, Some(before)) => Some((false, before)),
                (None, None) => None,
            })
            .collect();
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let subnet: Vec<String> = rows
            .iter()
            .map(|(_, l)| subnet_of(l.ip(), &commit.subnets))
            .collect();
        let address: Vec<IpAddr> = rows.iter().map(|(_, l)| l.ip()).collect();
        let put: Vec<bool> = rows.iter().map(|(put, _)| *put).collect();
        let mac: Vec<String> = rows.iter().map(|(_, l)| l.mac().to_string()).collect();
        let key: Vec<Option<String>> = rows.iter().map(|(_, l)| l.client_key()).collect();
        let leases: Vec<&L> = rows.iter().map(|(_, l)| *l).collect();
        let [own1, own2] = L::own_columns(&leases);
        let state: Vec<&str> = rows.iter().map(|(_, l)| l.stored_state().name()).collect();
        let expires: Vec<i64> = rows
            .iter()
            .map(|(_, l)| i64::try_from(l.expires()).unwrap_or(i64::MAX))
            .collect();
        let server = self.server.clone();
        let now = i64::try_from(commit.now).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT refused, h_address, h_mac, h_{}, h_{}, h_state, h_expires
               FROM {}($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            L::OWN[0],
            L::OWN[1],
            L::COMMIT,
        );
        let refused = self
            .with_client(async move |c| {
                c.query(
                    &sql,
                    &[
                        &server, &now, &subnet, &address, &put, &mac, &key, &*own1, &*own2, &state,
                        &expires,
                    ],
                )
                .await
            })
            .await?;
        refused
            .iter()
            .map(|r| {
                let addr = L::addr_of(r.get(0)).ok_or_else(|| {
                    self.error(format!(
                        "{} refused an address of the other family",
                        L::COMMIT
                    ))
                })?;
                let holder = r.get::<_, Option<IpAddr>>(1).map(|_| self.lease_of(r, 1));
                Ok(RefusedBinding {
                    addr,
                    holder: holder.transpose()?,
                })
            })
            .collect()
    }
}

/// A persisted entry's state, as the tables spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    Bound,
    Released,
    Declined,
}

impl Stored {
    fn name(self) -> &'static str {
        match self {
            Stored::Bound => "bound",
            Stored::Released => "released",
            Stored::Declined => "declined",
        }
    }
}

/// The columns both families' rows share, read from a row.
struct Common {
    mac: Mac,
    state: Stored,
    expires: u64,
}

/// A lease as a row of its family's table. Both tables have the address, the MAC, the client
/// key, the state and the end time, and two columns of their own (DHCPv4: the client identifier
/// and hostname; DHCPv6: the DUID and IAID), which every query puts between the MAC and the
/// state; the commit functions take and hand back their columns in that order too.
trait PgRow: StoredLease + Sized {
    /// The table.
    const TABLE: &'static str;
    /// The commit function.
    const COMMIT: &'static str;
    /// The family's own two columns.
    const OWN: [&'static str; 2];
    /// [`OWN`](Self::OWN), comma separated.
    const OWN_COLUMNS: &'static str;
    /// The last version this server took in from the table.
    fn seen(store: &PgLeaseStore) -> &AtomicI64;
    /// The address, if it is of this family.
    fn addr_of(ip: IpAddr) -> Option<Self::Addr>;
    /// The address.
    fn ip(&self) -> IpAddr;
    /// The host.
    fn mac(&self) -> Mac;
    /// Who holds the lease, as the table's unique client key (`mac:..`, or `id:..` for a v4
    /// client identifier); `None` for a declined address (it is nobody's lease).
    fn client_key(&self) -> Option<String>;
    /// The state to store (an offer is never stored; counted as bound if it were).
    fn stored_state(&self) -> Stored;
    /// The end time.
    fn expires(&self) -> u64;
    /// The family's own two column arrays for `leases`.
    fn own_columns(leases: &[&Self]) -> [Box<dyn ToSql + Sync + Send>; 2];
    /// The lease from its address, the shared columns, and its own two at `at` in `row`.
    fn from_row(
        addr: Self::Addr,
        common: Common,
        row: &Row,
        at: usize,
    ) -> Result<Self, &'static str>;
}

impl PgRow for Lease {
    const TABLE: &'static str = "dhcp4_lease";
    const COMMIT: &'static str = "dhcp4_commit";
    const OWN: [&'static str; 2] = ["client_id", "hostname"];
    const OWN_COLUMNS: &'static str = "client_id, hostname";

    fn seen(store: &PgLeaseStore) -> &AtomicI64 {
        &store.seen
    }

    fn addr_of(ip: IpAddr) -> Option<Ipv4Addr> {
        match ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }

    fn ip(&self) -> IpAddr {
        IpAddr::V4(self.addr)
    }

    fn mac(&self) -> Mac {
        self.mac
    }

    fn client_key(&self) -> Option<String> {
        match (&self.state, &self.client_id) {
            (State::Declined, _) => None,
            (_, Some(id)) => Some(format!("id:{id}")),
            (_, None) => Some(format!("mac:{}", self.mac)),
        }
    }

    fn stored_state(&self) -> Stored {
        match self.state {
            State::Bound | State::Offered => Stored::Bound,
            State::Released => Stored::Released,
            State::Declined => Stored::Declined,
        }
    }

    fn expires(&self) -> u64 {
        self.expires
    }

    fn own_columns(leases: &[&Lease]) -> [Box<dyn ToSql + Sync + Send>; 2] {
        let client_id: Vec<Option<String>> = leases.iter().map(|l| l.client_id.clone()).collect();
        let hostname: Vec<Option<String>> = leases.iter().map(|l| l.hostname.clone()).collect();
        [Box::new(client_id), Box::new(hostname)]
    }

    fn from_row(addr: Ipv4Addr, c: Common, row: &Row, at: usize) -> Result<Lease, &'static str> {
        Ok(Lease {
            addr,
            mac: c.mac,
            client_id: row.get(at),
            hostname: row.get(at + 1),
            state: match c.state {
                Stored::Bound => State::Bound,
                Stored::Released => State::Released,
                Stored::Declined => State::Declined,
            },
            expires: c.expires,
        })
    }
}

/// The URL as logs may show it: a password in it (`user:secret@`, `password=secret`) becomes
/// `***` (connect refuses such a URL, and its error must not repeat the secret).
fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (auth, host) = match rest.rsplit_once('@') {
            Some(x) => x,
            None => return url.to_owned(),
        };
        let user = auth.split_once(':').map_or(auth, |(u, _)| u);
        let hidden = if auth.contains(':') { ":***" } else { "" };
        let query = host
            .split_once('?')
            .map(|(h, q)| {
                let q: Vec<String> = q
                    .split('&')
                    .map(|kv| match kv.split_once('=') {
                        Some(("password", _)) => "password=***".to_owned(),
                        _ => kv.to_owned(),
                    })
                    .collect();
                format!("{h}?{}", q.join("&"))
            })
            .unwrap_or_else(|| host.to_owned());
        return format!("{scheme}://{user}{hidden}@{query}");
    }
    url.split_whitespace()
        .map(|kv| match kv.split_once('=') {
            Some(("password", _)) => "password=***".to_owned(),
            _ => kv.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `192.168.126.0/24` (or `fd00:126::/64`) for an address in that subnet, always with the
/// host bits cleared (a subnet configured as `192.168.126.1/24` is the same subnet on every
/// server); `0.0.0.0/0` (`::/0`) outside every subnet of its family.
fn subnet_of(addr: IpAddr, subnets: &[(IpAddr, u8)]) -> String {
    let bits = |a: IpAddr| match a {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32u32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    };
    let (a, width) = bits(addr);
    let mask = |len: u8| {
        let keep = u32::from(len).min(width);
        let ones = if keep == 0 {
            0
        } else {
            u128::MAX << (128 - keep)
        };
        ones >> (128 - width)
    };
    subnets
        .iter()
        .find(|(net, len)| {
            let (n, w) = bits(*net);
            w == width && a & mask(*len) == n & mask(*len)
        })
        .map_or_else(
            || if width == 32 { "0.0.0.0/0" } else { "::/0" }.to_owned(),
            |(_, len)| {
                let net = a & mask(*len);
                let shown = if width == 32 {
                    IpAddr::V4(std::net::Ipv4Addr::from(net as u32))
                } else {
                    IpAddr::V6(std::net::Ipv6Addr::from(net))
                };
                format!("{shown}/{}", u32::from(*len).min(width))
            },
        )
}

impl LeaseStore<Lease> for PgLeaseStore {
    type Error = Error;

    fn load(&self) -> StoreFuture<'_, Vec<Lease>, Error> {
        Box::pin(self.rows_since(true))
    }

    fn commit(&self, commit: Commit<Lease>) -> StoreFuture<'_, Vec<RefusedBinding<Lease>>, Error> {
        Box::pin(self.commit_rows(commit))
    }

    fn refresh(&self) -> StoreFuture<'_, Vec<Lease>, Error> {
        Box::pin(self.rows_since(false))
    }

    fn shared(&self) -> bool {
        true
    }

    fn renews_while_down(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("postgres at {}", self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mac;
    use std::net::Ipv4Addr;

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            redact("postgresql://dhcp:s3cret@db.example/site?sslmode=require&password=x"),
            "postgresql://dhcp:***@db.example/site?sslmode=require&password=***"
        );
        assert_eq!(
            redact("postgresql://db.example/site"),
            "postgresql://db.example/site"
        );
        assert_eq!(
            redact("host=/run/postgresql password=s3cret user=dhcp"),
            "host=/run/postgresql password=*** user=dhcp"
        );
    }

    #[test]
    fn subnets_and_client_keys() {
        let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
        let subnets = [
            (v4(10, 0, 0, 0), 24),
            (v4(10, 1, 0, 0), 16),
            ("fd00:1::".parse().unwrap(), 64),
        ];
        assert_eq!(
            subnet_of("fd00:1::9".parse().unwrap(), &subnets),
            "fd00:1::/64"
        );
        assert_eq!(subnet_of("fd00:2::9".parse().unwrap(), &subnets), "::/0");
        // A subnet written with its server's address is still the network.
        assert_eq!(
            subnet_of(v4(10, 9, 0, 7), &[(v4(10, 9, 0, 1), 24)]),
            "10.9.0.0/24"
        );
        assert_eq!(subnet_of(v4(10, 0, 0, 9), &subnets), "10.0.0.0/24");
        assert_eq!(subnet_of(v4(10, 1, 7, 9), &subnets), "10.1.0.0/16");
        assert_eq!(subnet_of(v4(10, 2, 0, 1), &subnets), "0.0.0.0/0");
        assert_eq!(
            subnet_of(v4(10, 2, 0, 1), &[(v4(0, 0, 0, 0), 0)]),
            "0.0.0.0/0"
        );
        let mut lease = Lease {
            addr: Ipv4Addr::new(10, 0, 0, 9),
            mac: Mac([0x52, 0x54, 0, 0, 0, 1]),
            expires: 10,
            hostname: None,
            state: State::Bound,
            client_id: None,
        };
        assert_eq!(lease.client_key().as_deref(), Some("mac:52:54:00:00:00:01"));
        lease.client_id = Some("ff:01".into());
        assert_eq!(lease.client_key().as_deref(), Some("id:ff:01"));
        lease.state = State::Declined;
        assert_eq!(lease.client_key(), None);
    }
}

/// The DHCPv6 half: `dhcp6_lease` and `dhcp6_commit`, with the same rules.
#[cfg(feature = "dhcp6")]
mod v6 {
    use std::net::{IpAddr, Ipv6Addr};
    use std::sync::atomic::AtomicI64;

    use tokio_postgres::Row;
    use tokio_postgres::types::ToSql;

    use super::{Common, Error, PgLeaseStore, PgRow, Stored};
    use crate::Mac;
    use crate::dhcp6::{Lease6, State6};
    use crate::store::{Commit, LeaseStore, RefusedBinding, StoreFuture};

    fn to6(e: Error) -> crate::dhcp6::Error {
        match e {
            Error::LeaseStore { store, message } => {
                crate::dhcp6::Error::LeaseStore { store, message }
            }
            other => crate::dhcp6::Error::LeaseStore {
                store: "postgres".into(),
                message: other.to_string(),
            },
        }
    }

    impl PgRow for Lease6 {
        const TABLE: &'static str = "dhcp6_lease";
        const COMMIT: &'static str = "dhcp6_commit";
        const OWN: [&'static str; 2] = ["duid", "iaid"];
        const OWN_COLUMNS: &'static str = "duid, iaid";

        fn seen(store: &PgLeaseStore) -> &AtomicI64 {
            &store.seen6
        }

        fn addr_of(ip: IpAddr) -> Option<Ipv6Addr> {
            match ip {
                IpAddr::V6(a) => Some(a),
                IpAddr::V4(_) => None,
            }
        }

        fn ip(&self) -> IpAddr {
            IpAddr::V6(self.addr)
        }

        fn mac(&self) -> Mac {
            self.mac
        }

        fn client_key(&self) -> Option<String> {
            (self.state != State6::Declined).then(|| format!("mac:{}", self.mac))
        }

        fn stored_state(&self) -> Stored {
            match self.state {
                State6::Bound | State6::Offered => Stored::Bound,
                State6::Released => Stored::Released,
                State6::Declined => Stored::Declined,
            }
        }

        fn expires(&self) -> u64 {
            self.expires
        }

        fn own_columns(leases: &[&Lease6]) -> [Box<dyn ToSql + Sync + Send>; 2] {
            let duid: Vec<String> = leases.iter().map(|l| l.duid.clone()).collect();
            let iaid: Vec<i64> = leases.iter().map(|l| i64::from(l.iaid)).collect();
            [Box::new(duid), Box::new(iaid)]
        }

        fn from_row(
            addr: Ipv6Addr,
            c: Common,
            row: &Row,
            at: usize,
        ) -> Result<Lease6, &'static str> {
            let iaid: i64 = row.get(at + 1);
            Ok(Lease6 {
                addr,
                mac: c.mac,
                duid: row.get(at),
                iaid: u32::try_from(iaid).map_err(|_| "an IAID out of range")?,
                state: match c.state {
                    Stored::Bound => State6::Bound,
                    Stored::Released => State6::Released,
                    Stored::Declined => State6::Declined,
                },
                expires: c.expires,
            })
        }
    }

    impl LeaseStore<Lease6> for PgLeaseStore {
        type Error = crate::dhcp6::Error;

        fn load(&self) -> StoreFuture<'_, Vec<Lease6>, Self::Error> {
            Box::pin(async { self.rows_since(true).await.map_err(to6) })
        }

        fn commit(
            &self,
            commit: Commit<Lease6>,
        ) -> StoreFuture<'_, Vec<RefusedBinding<Lease6>>, Self::Error> {
            Box::pin(async { self.commit_rows(commit).await.map_err(to6) })
        }

        fn refresh(&self) -> StoreFuture<'_, Vec<Lease6>, Self::Error> {
            Box::pin(async { self.rows_since(false).await.map_err(to6) })
        }

        fn shared(&self) -> bool {
            true
        }

        fn renews_while_down(&self) -> bool {
            true
        }

        fn describe(&self) -> String {
            format!("postgres at {}", self.target)
        }
    }
}
