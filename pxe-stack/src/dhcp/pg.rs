//! The shared lease store: DHCPv4 leases in PostgreSQL (feature `postgres`), for several
//! servers answering one provisioning network.
//!
//! Every batch of a server's changes is one call of `dhcp4_commit` (see
//! `pxe-stack/migrations/`), one round trip and one transaction. Offers stay in each server's
//! memory and may race; the database's constraints make a second binding of an address
//! impossible, and the function hands back the row that won so the losing server NAKs.

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls, Row};

use super::error::Error;
use super::leases::{Lease, State};
use crate::pg::{MakeRustls, chain};
use crate::store::{Change, Commit, StoreFuture};
use crate::store::{LeaseStore, RefusedBinding};

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

    /// The rows of `table` (columns `columns`, then `version`) with a version above `seen`,
    /// written by other servers (or by anyone, for `all`, which is a load: `seen` starts over),
    /// each mapped by `lease`; `seen` moves to the highest version taken.
    async fn rows_since<L>(
        &self,
        table: &str,
        columns: &str,
        seen: &AtomicI64,
        all: bool,
        lease: impl Fn(&Row) -> Result<L, Error>,
    ) -> Result<Vec<L>, Error> {
        let since = if all { 0 } else { seen.load(Ordering::Relaxed) };
        let server = self.server.clone();
        let sql = format!(
            "SELECT {columns}, version FROM {table}
              WHERE version > $1 AND ($2 OR server <> $3)
              ORDER BY version"
        );
        let rows = self
            .with_client(async move |c| c.query(&sql, &[&since, &all, &server]).await)
            .await?;
        let version = columns.split(',').count();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            seen.fetch_max(row.get::<_, i64>(version), Ordering::Relaxed);
            out.push(lease(row)?);
        }
        Ok(out)
    }

    /// [`rows_since`](Self::rows_since) of `dhcp4_lease`.
    async fn rows4_since(&self, all: bool) -> Result<Vec<Lease>, Error> {
        let columns = "address, mac, client_id, hostname, state, expires";
        self.rows_since("dhcp4_lease", columns, &self.seen, all, |r| {
            self.lease_of(r, 0)
        })
        .await
    }

    /// The lease in `row`, whose columns start at `at` in the order address, mac, client_id,
    /// hostname, state, expires.
    fn lease_of(&self, row: &Row, at: usize) -> Result<Lease, Error> {
        let bad = |what: &str| self.error(format!("a dhcp4_lease row has {what}"));
        let IpAddr::V4(addr) = row.get::<_, IpAddr>(at) else {
            return Err(bad("an IPv6 address"));
        };
        let mac: String = row.get(at + 1);
        let state: String = row.get(at + 4);
        let expires: i64 = row.get(at + 5);
        Ok(Lease {
            addr,
            mac: mac.parse().map_err(|_| bad("an invalid MAC"))?,
            client_id: row.get(at + 2),
            hostname: row.get(at + 3),
            state: match state.as_str() {
                "bound" => State::Bound,
                "released" => State::Released,
                "declined" => State::Declined,
                _ => return Err(bad("an unknown state")),
            },
            expires: u64::try_from(expires).unwrap_or(0),
        })
    }
}

/// The column arrays of one `dhcp4_commit` call.
#[derive(Default)]
struct Columns {
    subnet: Vec<String>,
    address: Vec<IpAddr>,
    put: Vec<bool>,
    mac: Vec<String>,
    key: Vec<Option<String>>,
    client_id: Vec<Option<String>>,
    hostname: Vec<Option<String>>,
    state: Vec<String>,
    expires: Vec<i64>,
}

impl Columns {
    fn of(changes: &[Change<Lease>], subnets: &[(IpAddr, u8)]) -> Columns {
        let mut c = Columns::default();
        for change in changes {
            let (put, lease) = match (&change.after, &change.before) {
                (Some(after), _) => (true, after),
                (None, Some(before)) => (false, before),
                (None, None) => continue,
            };
            c.subnet.push(subnet_of(IpAddr::V4(lease.addr), subnets));
            c.address.push(IpAddr::V4(lease.addr));
            c.put.push(put);
            c.mac.push(lease.mac.to_string());
            c.key.push(client_key(lease));
            c.client_id.push(lease.client_id.clone());
            c.hostname.push(lease.hostname.clone());
            c.state.push(
                match lease.state {
                    State::Bound | State::Offered => "bound",
                    State::Released => "released",
                    State::Declined => "declined",
                }
                .to_owned(),
            );
            c.expires
                .push(i64::try_from(lease.expires).unwrap_or(i64::MAX));
        }
        c
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

/// Who holds the lease, as the table's unique client key: `mac:..`, `id:..`, or nothing for a
/// declined address (it is nobody's lease).
fn client_key(lease: &Lease) -> Option<String> {
    match (&lease.state, &lease.client_id) {
        (State::Declined, _) => None,
        (_, Some(id)) => Some(format!("id:{id}")),
        (_, None) => Some(format!("mac:{}", lease.mac)),
    }
}

impl LeaseStore<Lease> for PgLeaseStore {
    type Error = Error;

    fn load(&self) -> StoreFuture<'_, Vec<Lease>, Error> {
        Box::pin(self.rows4_since(true))
    }

    fn commit(&self, commit: Commit<Lease>) -> StoreFuture<'_, Vec<RefusedBinding<Lease>>, Error> {
        Box::pin(async move {
            let cols = Columns::of(&commit.changes, &commit.subnets);
            if cols.address.is_empty() {
                return Ok(Vec::new());
            }
            let server = self.server.clone();
            let now = i64::try_from(commit.now).unwrap_or(i64::MAX);
            let rows = self
                .with_client(async move |c| {
                    c.query(
                        "SELECT refused, h_address, h_mac, h_client_id, h_hostname, h_state,
                                h_expires
                           FROM dhcp4_commit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                        &[
                            &server,
                            &now,
                            &cols.subnet,
                            &cols.address,
                            &cols.put,
                            &cols.mac,
                            &cols.key,
                            &cols.client_id,
                            &cols.hostname,
                            &cols.state,
                            &cols.expires,
                        ],
                    )
                    .await
                })
                .await?;
            rows.iter()
                .map(|r| {
                    let IpAddr::V4(addr) = r.get::<_, IpAddr>(0) else {
                        return Err(self.error("dhcp4_commit refused an IPv6 address".into()));
                    };
                    let holder = r.get::<_, Option<IpAddr>>(1).map(|_| self.lease_of(r, 1));
                    Ok(RefusedBinding {
                        addr,
                        holder: holder.transpose()?,
                    })
                })
                .collect()
        })
    }

    fn refresh(&self) -> StoreFuture<'_, Vec<Lease>, Error> {
        Box::pin(self.rows4_since(false))
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
        assert_eq!(client_key(&lease).as_deref(), Some("mac:52:54:00:00:00:01"));
        lease.client_id = Some("ff:01".into());
        assert_eq!(client_key(&lease).as_deref(), Some("id:ff:01"));
        lease.state = State::Declined;
        assert_eq!(client_key(&lease), None);
    }
}

/// The DHCPv6 half: `dhcp6_lease` and `dhcp6_commit`, with the same rules.
#[cfg(feature = "dhcp6")]
mod v6 {
    use std::net::IpAddr;

    use tokio_postgres::Row;

    use super::{Error, PgLeaseStore, subnet_of};
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

    impl PgLeaseStore {
        /// The lease in `row`, whose columns start at `at` in the order address, mac, duid,
        /// iaid, state, expires.
        fn lease6_of(&self, row: &Row, at: usize) -> Result<Lease6, Error> {
            let bad = |what: &str| self.error(format!("a dhcp6_lease row has {what}"));
            let IpAddr::V6(addr) = row.get::<_, IpAddr>(at) else {
                return Err(bad("an IPv4 address"));
            };
            let mac: String = row.get(at + 1);
            let state: String = row.get(at + 4);
            let iaid: i64 = row.get(at + 3);
            let expires: i64 = row.get(at + 5);
            Ok(Lease6 {
                addr,
                mac: mac.parse().map_err(|_| bad("an invalid MAC"))?,
                duid: row.get(at + 2),
                iaid: u32::try_from(iaid).map_err(|_| bad("an IAID out of range"))?,
                state: match state.as_str() {
                    "bound" => State6::Bound,
                    "released" => State6::Released,
                    "declined" => State6::Declined,
                    _ => return Err(bad("an unknown state")),
                },
                expires: u64::try_from(expires).unwrap_or(0),
            })
        }

        async fn rows6_since(&self, all: bool) -> Result<Vec<Lease6>, Error> {
            let columns = "address, mac, duid, iaid, state, expires";
            self.rows_since("dhcp6_lease", columns, &self.seen6, all, |r| {
                self.lease6_of(r, 0)
            })
            .await
        }

        async fn commit6(
            &self,
            commit: Commit<Lease6>,
        ) -> Result<Vec<RefusedBinding<Lease6>>, Error> {
            let mut link = Vec::new();
            let mut address = Vec::new();
            let mut put = Vec::new();
            let mut mac = Vec::new();
            let mut key: Vec<Option<String>> = Vec::new();
            let mut duid = Vec::new();
            let mut iaid: Vec<i64> = Vec::new();
            let mut state = Vec::new();
            let mut expires: Vec<i64> = Vec::new();
            for change in &commit.changes {
                let (is_put, lease) = match (&change.after, &change.before) {
                    (Some(after), _) => (true, after),
                    (None, Some(before)) => (false, before),
                    (None, None) => continue,
                };
                link.push(subnet_of(IpAddr::V6(lease.addr), &commit.subnets));
                address.push(IpAddr::V6(lease.addr));
                put.push(is_put);
                mac.push(lease.mac.to_string());
                key.push((lease.state != State6::Declined).then(|| format!("mac:{}", lease.mac)));
                duid.push(lease.duid.clone());
                iaid.push(i64::from(lease.iaid));
                state.push(
                    match lease.state {
                        State6::Bound | State6::Offered => "bound",
                        State6::Released => "released",
                        State6::Declined => "declined",
                    }
                    .to_owned(),
                );
                expires.push(i64::try_from(lease.expires).unwrap_or(i64::MAX));
            }
            if address.is_empty() {
                return Ok(Vec::new());
            }
            let server = self.server.clone();
            let now = i64::try_from(commit.now).unwrap_or(i64::MAX);
            let rows = self
                .with_client(async move |c| {
                    c.query(
                        "SELECT refused, h_address, h_mac, h_duid, h_iaid, h_state, h_expires
                           FROM dhcp6_commit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                        &[
                            &server, &now, &link, &address, &put, &mac, &key, &duid, &iaid, &state,
                            &expires,
                        ],
                    )
                    .await
                })
                .await?;
            rows.iter()
                .map(|r| {
                    let IpAddr::V6(addr) = r.get::<_, IpAddr>(0) else {
                        return Err(self.error("dhcp6_commit refused an IPv4 address".into()));
                    };
                    let holder = r.get::<_, Option<IpAddr>>(1).map(|_| self.lease6_of(r, 1));
                    Ok(RefusedBinding {
                        addr,
                        holder: holder.transpose()?,
                    })
                })
                .collect()
        }
    }

    impl LeaseStore<Lease6> for PgLeaseStore {
        type Error = crate::dhcp6::Error;

        fn load(&self) -> StoreFuture<'_, Vec<Lease6>, Self::Error> {
            Box::pin(async { self.rows6_since(true).await.map_err(to6) })
        }

        fn commit(
            &self,
            commit: Commit<Lease6>,
        ) -> StoreFuture<'_, Vec<RefusedBinding<Lease6>>, Self::Error> {
            Box::pin(async { self.commit6(commit).await.map_err(to6) })
        }

        fn refresh(&self) -> StoreFuture<'_, Vec<Lease6>, Self::Error> {
            Box::pin(async { self.rows6_since(false).await.map_err(to6) })
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
