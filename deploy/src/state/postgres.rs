//! The shared state in PostgreSQL (tokio-postgres), with the schema in `deploy/migrations/`.
//!
//! One connection per server, owned by a thread of its own (its own small runtime), so the
//! synchronous [`Store`] calls of the introspector and the non-blocking [`EventSink`] calls of
//! every server reach it through a queue. A lost connection is opened again on the next call;
//! until it is back, decisions fail with [`rhcos_introspect::Error::Unavailable`] (HTTP 503,
//! the host retries) and events are logged as dropped from the shared timeline.

use std::sync::mpsc as sync_mpsc;
use std::time::Duration;

use pxe_stack::{Event, EventSink};
use rhcos_introspect::{Record, Store};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, GenericClient, NoTls};

use super::{SharedEvent, StateError, StateStore};
use crate::StateConfig;
use pxe_stack::pg::{MakeRustls, chain};

/// The migrations, in order: (name, SQL). Each runs once, in a transaction, under
/// [`MIGRATION_LOCK`], and is recorded in `rhcos_deploy_migrations`.
const MIGRATIONS: &[(&str, &str)] = &[(
    "0001_host_state",
    include_str!("../../migrations/0001_host_state.sql"),
)];

/// Advisory lock keys (`pg_advisory_xact_lock`): migrations, and the inventory's decisions.
const MIGRATION_LOCK: i64 = 0x7268_636f_7301;
const INVENTORY_LOCK: i64 = 0x7268_636f_7302;

/// How long one call may take, connecting included, before it fails as unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed connection attempt, how long calls fail at once before the next attempt.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);
/// Events waiting for the database; more are dropped from the shared timeline (with a
/// warning), never made to wait.
const QUEUE: usize = 1 << 16;

enum Job {
    Load(sync_mpsc::Sender<Result<Vec<Record>, StateError>>),
    Save(Box<Record>, sync_mpsc::Sender<Result<(), StateError>>),
    Decide {
        records: sync_mpsc::Sender<Result<Vec<Record>, StateError>>,
        decided: oneshot::Receiver<Option<Box<Record>>>,
        done: sync_mpsc::Sender<Result<(), StateError>>,
    },
    Event(Box<Event>),
    Events(sync_mpsc::Sender<Result<Vec<SharedEvent>, StateError>>),
}

/// The deciding state in one PostgreSQL database that several servers share.
///
/// Built by [`open_state`](crate::open_state) from `[state] backend = "postgres"`, or with
/// [`PgState::connect`]. Every decision about a new host is made inside a transaction that
/// holds an advisory lock on the inventory, so two servers never decide the same host (or the
/// same hostname) twice.
#[derive(Debug, Clone)]
pub struct PgState {
    jobs: mpsc::Sender<Job>,
    target: String,
}

struct Link {
    config: tokio_postgres::Config,
    tls: Option<MakeRustls>,
    client: Option<Client>,
    target: String,
    server: String,
    dropped: u64,
    /// When the last connection attempt failed: calls within [`RECONNECT_PAUSE`] fail at once
    /// instead of each waiting for a connect timeout behind the others.
    failed_at: Option<std::time::Instant>,
}

impl PgState {
    /// Connects (TLS as the plan says, the password from its variable), applies the
    /// migrations this database lacks, and starts the connection's thread. `server` names this
    /// server's events on the shared timeline.
    ///
    /// # Errors
    /// [`StateError::PasswordMissing`], [`StateError::Ca`], or [`StateError::Database`] when
    /// the URL is not one tokio-postgres reads, the server cannot be reached, refuses the
    /// credentials or TLS, or a migration fails.
    pub async fn connect(
        plan: &StateConfig,
        server: impl Into<String>,
    ) -> Result<PgState, StateError> {
        let url = plan.url.clone().unwrap_or_default();
        let target = url.clone();
        let database = |message: String| StateError::Database {
            target: target.clone(),
            message,
        };
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| database(chain(&e)))?;
        if let Some(var) = &plan.password_env {
            let password =
                std::env::var(var).map_err(|_| StateError::PasswordMissing { var: var.clone() })?;
            config.password(password);
        }
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .application_name("rhcos-deploy");
        let tls = match (&plan.ca_file, plan.allow_plaintext) {
            (Some(ca), _) => {
                config.ssl_mode(SslMode::Require);
                Some(MakeRustls::from_ca_file(ca).map_err(|e| StateError::Ca {
                    path: e.path,
                    message: e.message,
                })?)
            }
            (None, true) => {
                config.ssl_mode(SslMode::Disable);
                None
            }
            (None, false) => {
                return Err(database(
                    "no `ca_file` and plaintext not allowed (`allow_plaintext`)".into(),
                ));
            }
        };
        let mut link = Link {
            config,
            tls,
            client: None,
            target: target.clone(),
            server: server.into(),
            dropped: 0,
            failed_at: None,
        };
        let (jobs, queue) = mpsc::channel(QUEUE);
        let (ready_tx, ready) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| database(format!("cannot start the connection's runtime: {e}")))?;
        std::thread::Builder::new()
            .name("rhcos-state".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let first = async {
                        let client = link.client().await?;
                        migrate(client)
                            .await
                            .map_err(|e| link_err(&link.target, &e))
                    };
                    let first = tokio::time::timeout(CALL_TIMEOUT, first)
                        .await
                        .unwrap_or_else(|_| Err(link.timeout()));
                    let failed = first.is_err();
                    let _ = ready_tx.send(first);
                    if !failed {
                        link.serve(queue).await;
                    }
                });
            })
            .map_err(|e| database(format!("cannot start the connection's thread: {e}")))?;
        ready
            .await
            .map_err(|_| database("the connection's thread stopped".into()))??;
        Ok(PgState { jobs, target })
    }

    fn unavailable(&self, why: &str) -> StateError {
        StateError::Database {
            target: self.target.clone(),
            message: why.into(),
        }
    }

    /// Queues `job` and waits for its answer on `rx`.
    fn call<T>(
        &self,
        job: Job,
        rx: &sync_mpsc::Receiver<Result<T, StateError>>,
    ) -> Result<T, StateError> {
        self.jobs
            .try_send(job)
            .map_err(|_| self.unavailable("the queue to the database is full or closed"))?;
        rx.recv()
            .map_err(|_| self.unavailable("the connection's thread stopped"))?
    }
}

fn unavailable(e: StateError) -> rhcos_introspect::Error {
    rhcos_introspect::Error::Unavailable {
        message: e.to_string(),
    }
}

impl Store for PgState {
    fn load(&self) -> Result<Vec<Record>, rhcos_introspect::Error> {
        let (tx, rx) = sync_mpsc::channel();
        self.call(Job::Load(tx), &rx).map_err(unavailable)
    }

    fn save(&self, record: &Record) -> Result<(), rhcos_introspect::Error> {
        let (tx, rx) = sync_mpsc::channel();
        self.call(Job::Save(Box::new(record.clone()), tx), &rx)
            .map_err(unavailable)
    }

    fn shared(&self) -> bool {
        true
    }

    fn decide(
        &self,
        decide: &mut dyn FnMut(&[Record]) -> Result<Record, rhcos_introspect::Error>,
    ) -> Result<Record, rhcos_introspect::Error> {
        let (records_tx, records_rx) = sync_mpsc::channel();
        let (decided_tx, decided) = oneshot::channel();
        let (done, done_rx) = sync_mpsc::channel();
        let records = self
            .call(
                Job::Decide {
                    records: records_tx,
                    decided,
                    done,
                },
                &records_rx,
            )
            .map_err(unavailable)?;
        match decide(&records) {
            Ok(record) => {
                let _ = decided_tx.send(Some(Box::new(record.clone())));
                done_rx
                    .recv()
                    .map_err(|_| self.unavailable("the connection's thread stopped"))
                    .and_then(|r| r)
                    .map_err(unavailable)?;
                Ok(record)
            }
            Err(e) => {
                // Rolled back: nothing of this post is stored.
                let _ = decided_tx.send(None);
                Err(e)
            }
        }
    }
}

impl EventSink for PgState {
    fn emit(&self, event: Event) {
        if self.jobs.try_send(Job::Event(Box::new(event))).is_err() {
            tracing::warn!(state = %self.target, "event dropped from the shared timeline: the queue to the database is full");
        }
    }
}

impl StateStore for PgState {
    fn events(&self) -> Result<Vec<SharedEvent>, StateError> {
        let (tx, rx) = sync_mpsc::channel();
        self.call(Job::Events(tx), &rx)
    }

    fn describe(&self) -> String {
        format!("postgres at {}", self.target)
    }
}

fn link_err(target: &str, e: &tokio_postgres::Error) -> StateError {
    StateError::Database {
        target: target.to_owned(),
        message: chain(e),
    }
}

async fn migrate(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    pxe_stack::pg::migrate(
        client,
        "rhcos_deploy_migrations",
        MIGRATION_LOCK,
        MIGRATIONS,
    )
    .await
}

async fn load_records(
    target: &str,
    client: &impl GenericClient,
) -> Result<Vec<Record>, StateError> {
    let rows = client
        .query("SELECT mac, record::text FROM inventory ORDER BY mac", &[])
        .await
        .map_err(|e| link_err(target, &e))?;
    rows.iter()
        .map(|row| {
            let (mac, text): (String, String) = (row.get(0), row.get(1));
            serde_json::from_str(&text).map_err(|e| StateError::Database {
                target: target.to_owned(),
                message: format!("the inventory record of {mac} does not decode: {e}"),
            })
        })
        .collect()
}

async fn upsert(
    target: &str,
    server: &str,
    client: &impl GenericClient,
    record: &Record,
) -> Result<(), StateError> {
    let json = serde_json::to_string(record).map_err(|e| StateError::Database {
        target: target.to_owned(),
        message: format!("cannot encode the record of {}: {e}", record.mac),
    })?;
    client
        .execute(
            "INSERT INTO inventory (mac, hostname, role, record, saved_by)
             VALUES ($1, $2, $3, CAST($4::text AS jsonb), $5)
             ON CONFLICT (mac) DO UPDATE SET hostname = EXCLUDED.hostname,
                role = EXCLUDED.role, record = EXCLUDED.record,
                saved_by = EXCLUDED.saved_by, saved_at = now()",
            &[
                &record.mac.to_string(),
                &record.hostname,
                &record.role,
                &json,
                &server,
            ],
        )
        .await
        .map_err(|e| link_err(target, &e))?;
    Ok(())
}

impl Link {
    fn timeout(&mut self) -> StateError {
        // A call that hung leaves the connection in an unknown state: start again.
        self.client = None;
        StateError::Database {
            target: self.target.clone(),
            message: format!("no answer within {}s", CALL_TIMEOUT.as_secs()),
        }
    }

    /// The connection, opened again when it was lost.
    async fn client(&mut self) -> Result<&mut Client, StateError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            if self
                .failed_at
                .is_some_and(|t| t.elapsed() < RECONNECT_PAUSE)
            {
                return Err(StateError::Database {
                    target: self.target.clone(),
                    message: "not connected (the last attempt failed less than a second ago)"
                        .into(),
                });
            }
            let client = match self.connect().await {
                Ok(client) => client,
                Err(e) => {
                    self.failed_at = Some(std::time::Instant::now());
                    return Err(e);
                }
            };
            self.failed_at = None;
            self.client = Some(client);
        }
        self.client.as_mut().ok_or_else(|| StateError::Database {
            target: self.target.clone(),
            message: "not connected".into(),
        })
    }

    async fn connect(&self) -> Result<Client, StateError> {
        {
            let client = match &self.tls {
                Some(tls) => {
                    let (client, conn) = self
                        .config
                        .connect(tls.clone())
                        .await
                        .map_err(|e| link_err(&self.target, &e))?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    client
                }
                None => {
                    let (client, conn) = self
                        .config
                        .connect(NoTls)
                        .await
                        .map_err(|e| link_err(&self.target, &e))?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    client
                }
            };
            Ok(client)
        }
    }

    async fn serve(&mut self, mut queue: mpsc::Receiver<Job>) {
        while let Some(job) = queue.recv().await {
            match job {
                Job::Load(reply) => {
                    let r = tokio::time::timeout(CALL_TIMEOUT, self.load())
                        .await
                        .unwrap_or_else(|_| Err(self.timeout()));
                    let _ = reply.send(r);
                }
                Job::Save(record, reply) => {
                    let r = tokio::time::timeout(CALL_TIMEOUT, async {
                        let (target, server) = (self.target.clone(), self.server.clone());
                        let client = self.client().await?;
                        upsert(&target, &server, &*client, &record).await
                    })
                    .await
                    .unwrap_or_else(|_| Err(self.timeout()));
                    let _ = reply.send(r);
                }
                Job::Decide {
                    records,
                    decided,
                    done,
                } => {
                    let mut sent = false;
                    let r = tokio::time::timeout(
                        CALL_TIMEOUT,
                        self.decide(&records, decided, &mut sent),
                    )
                    .await
                    .unwrap_or_else(|_| Err(self.timeout()));
                    // The caller waits on `records` until they are sent, then on `done`.
                    match r {
                        Err(e) if !sent => {
                            let _ = records.send(Err(e));
                        }
                        r => {
                            let _ = done.send(r);
                        }
                    }
                }
                Job::Event(event) => {
                    let r = tokio::time::timeout(CALL_TIMEOUT, self.insert_event(&event))
                        .await
                        .unwrap_or_else(|_| Err(self.timeout()));
                    if let Err(e) = r {
                        self.dropped += 1;
                        tracing::warn!(error = %e, dropped = self.dropped, "event dropped from the shared timeline");
                    }
                }
                Job::Events(reply) => {
                    let r = tokio::time::timeout(CALL_TIMEOUT, self.load_events())
                        .await
                        .unwrap_or_else(|_| Err(self.timeout()));
                    let _ = reply.send(r);
                }
            }
        }
    }

    async fn load(&mut self) -> Result<Vec<Record>, StateError> {
        let target = self.target.clone();
        let client = self.client().await?;
        load_records(&target, &*client).await
    }

    /// Under the inventory lock: the records out, the decision in, both in one transaction.
    /// `sent` tells whether the records went out (then an error goes to the caller's `done`).
    async fn decide(
        &mut self,
        records: &sync_mpsc::Sender<Result<Vec<Record>, StateError>>,
        decided: oneshot::Receiver<Option<Box<Record>>>,
        sent: &mut bool,
    ) -> Result<(), StateError> {
        let (target, server) = (self.target.clone(), self.server.clone());
        let client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| link_err(&target, &e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INVENTORY_LOCK])
            .await
            .map_err(|e| link_err(&target, &e))?;
        let all = load_records(&target, &tx).await?;
        *sent = true;
        if records.send(Ok(all)).is_err() {
            return Ok(());
        }
        let Ok(Some(record)) = decided.await else {
            // The caller's decision failed: roll back (on drop).
            return Ok(());
        };
        upsert(&target, &server, &tx, &record).await?;
        tx.commit().await.map_err(|e| link_err(&target, &e))
    }

    async fn insert_event(&mut self, event: &Event) -> Result<(), StateError> {
        let (target, server) = (self.target.clone(), self.server.clone());
        let json = serde_json::to_string(event).map_err(|e| StateError::Database {
            target: target.clone(),
            message: format!("cannot encode an event: {e}"),
        })?;
        let mac = event.mac.map(|m| m.to_string());
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO host_events (server, mac, at, event)
                 VALUES ($1, $2, $3, CAST($4::text AS jsonb))",
                &[&server, &mac, &event.at, &json],
            )
            .await
            .map_err(|e| link_err(&target, &e))?;
        Ok(())
    }

    async fn load_events(&mut self) -> Result<Vec<SharedEvent>, StateError> {
        let target = self.target.clone();
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, server, event::text FROM host_events ORDER BY id",
                &[],
            )
            .await
            .map_err(|e| link_err(&target, &e))?;
        rows.iter()
            .map(|row| {
                let (id, server, text): (i64, String, String) =
                    (row.get(0), row.get(1), row.get(2));
                let event = serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
                    id,
                    message: e.to_string(),
                })?;
                Ok(SharedEvent { server, event })
            })
            .collect()
    }
}
