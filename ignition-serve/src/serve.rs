//! The `/ignition` HTTP route: identify the host, check it may have its config, serve it.

use std::fmt;
use std::future;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac as _};
use http::{Method, Response, StatusCode, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use pxe_stack::route::{Handler, HandlerFuture, Params, ParamsError, RouteRequest, reply};
use pxe_stack::{Event, EventKind, EventSink, HostLookup, Mac};
use sha2::Sha256;

use crate::customize::Mode;
use crate::error::Error;
use crate::store::{Query, Store};

/// Query parameters with a meaning of their own; every other parameter is a label.
pub const RESERVED_PARAMS: [&str; 6] = ["mac", "uuid", "serial", "hostname", "role", "token"];

const QUERY_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':');

impl Query {
    /// The query string for this machine, in a canonical order (`mac`, `uuid`, `serial`,
    /// `hostname`, `role`, then labels sorted), percent-encoded, without a leading `?`.
    ///
    /// Labels named like a reserved parameter ([`RESERVED_PARAMS`]) are left out.
    pub fn to_query_string(&self) -> String {
        let mut parts = Vec::new();
        let mut push = |k: &str, v: &str| {
            parts.push(format!(
                "{}={}",
                utf8_percent_encode(k, QUERY_SAFE),
                utf8_percent_encode(v, QUERY_SAFE)
            ));
        };
        if let Some(m) = &self.mac {
            push("mac", &m.to_string());
        }
        for (k, v) in [
            ("uuid", &self.uuid),
            ("serial", &self.serial),
            ("hostname", &self.hostname),
            ("role", &self.role),
        ] {
            if let Some(v) = v {
                push(k, v);
            }
        }
        for (k, v) in &self.labels {
            if !RESERVED_PARAMS.contains(&k.as_str()) {
                push(k, v);
            }
        }
        parts.join("&")
    }

    /// Parse a URL query string (without the `?`); returns the machine and the `token`, if any.
    ///
    /// `mac` accepts the three forms [`Mac`] parses. A repeated parameter is an error.
    pub fn from_query_string(qs: &str) -> Result<(Query, Option<String>), QueryError> {
        let params = Params::parse(qs)?;
        let mut q = Query::default();
        let mut token = None;
        for (k, v) in params.iter() {
            let v = v.to_owned();
            match k {
                "mac" => {
                    q.mac = Some(
                        v.parse()
                            .map_err(|_| QueryError::InvalidMac { value: v.clone() })?,
                    )
                }
                "uuid" => q.uuid = Some(v),
                "serial" => q.serial = Some(v),
                "hostname" => q.hostname = Some(v),
                "role" => q.role = Some(v),
                "token" => token = Some(v),
                _ => {
                    q.labels.insert(k.to_owned(), v);
                }
            }
        }
        Ok((q, token))
    }
}

/// A request's query string that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The query string cannot be read (a repeated parameter, not UTF-8).
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// The `mac` parameter is not a MAC address.
    #[error("invalid mac {value:?}")]
    InvalidMac {
        /// The value.
        value: String,
    },
}

/// The secret behind per-host URL tokens: a token is the HMAC-SHA256 of the canonical query
/// string ([`Query::to_query_string`]), so it authenticates the MAC and every other claim in
/// the URL. `Debug` does not print the key.
#[derive(Clone)]
pub struct TokenKey(Vec<u8>);

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl TokenKey {
    /// A key from secret bytes (use at least 32 random bytes).
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        TokenKey(secret.into())
    }

    fn hmac(&self, q: &Query) -> HmacSha256 {
        let mut h = HmacSha256::new_from_slice(&self.0).expect("hmac takes keys of any length");
        h.update(q.to_query_string().as_bytes());
        h
    }

    /// The token for a machine's query, lowercase hex.
    pub fn token_for(&self, q: &Query) -> String {
        hex::encode(self.hmac(q).finalize().into_bytes())
    }

    /// The full query string for a machine's URL: the canonical query plus `token`.
    pub fn query_string(&self, q: &Query) -> String {
        let qs = q.to_query_string();
        let token = self.token_for(q);
        if qs.is_empty() {
            format!("token={token}")
        } else {
            format!("{qs}&token={token}")
        }
    }

    /// Whether `token` is the token for `q` (constant-time comparison).
    pub fn verify(&self, q: &Query, token: &str) -> bool {
        match hex::decode(token) {
            Ok(bytes) => self.hmac(q).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }
}

/// Who may fetch a host's config.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Access {
    /// Only an address holding the host's DHCP lease (the request's source address is the
    /// MAC's: [`HostLookup::mac_for`], or [`HostLookup::addr_for`] of the MAC; a dual-stack
    /// host holds one of each family). For flat provisioning networks. A host some
    /// group selects that holds no lease yet is answered 503 with `Retry-After` (Ignition and
    /// coreos-installer retry a 5xx, and give up on a 4xx); any other refusal is 403.
    Lease,
    /// A `token` parameter made by [`TokenKey::token_for`]. For routed setups, where the
    /// source address is a router's.
    Token(TokenKey),
    /// Either of the above.
    LeaseOrToken(TokenKey),
}

/// What a host receives from `GET /ignition?...`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// The role config with the host's customization merged in.
    Merged,
    /// A pointer config holding the customization and pulling in
    /// `<base_url>/ignition/<role>?<same query>` pinned by sha512.
    Pointer {
        /// This server's URL as the host reaches it, such as `http://192.168.126.1:8080`.
        base_url: String,
    },
}

/// The route's settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Who may fetch a host's config. Default: [`Access::Lease`].
    pub access: Access,
    /// Merged or pointer configs. Default: [`Delivery::Merged`].
    pub delivery: Delivery,
    /// `Retry-After` on 503s. Default: 5 s.
    pub retry_after: Duration,
    /// Roles anyone may fetch by name at `/ignition/<role>` (for example `worker` when its
    /// pointer config holds no secret). Default: none.
    pub public_roles: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            access: Access::Lease,
            delivery: Delivery::Merged,
            retry_after: Duration::from_secs(5),
            public_roles: Vec::new(),
        }
    }
}

/// The `/ignition` route, a [`Handler`] for the pxe-stack HTTP server.
///
/// - `GET /ignition?mac=..&uuid=..&serial=..&hostname=..&role=..&<label>=..[&token=..]`: the
///   config of the most specific matching group. The MAC defaults to the one holding the
///   request's source address.
/// - `GET /ignition/<role>?<same query>`: the role config's exact bytes, for a host whose
///   group has that role (what a pointer config fetches), or for anyone if the role is public.
///
/// Answers 503 with `Retry-After` while the store or the role config is not ready (Ignition
/// retries 5xx), 404 when no group matches, 403 when the host may not have the config, 400 for
/// a bad query and 405 for methods other than GET and HEAD. Cloning is cheap and clones share
/// the store.
#[derive(Clone)]
pub struct Route {
    inner: Arc<Inner>,
}

struct Inner {
    store: RwLock<Arc<Store>>,
    lookup: Arc<dyn HostLookup>,
    events: Arc<dyn EventSink>,
    options: Options,
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

enum Target {
    Host,
    Role(String),
}

impl Route {
    /// A route serving `store`.
    pub fn new(
        store: Store,
        lookup: Arc<dyn HostLookup>,
        events: Arc<dyn EventSink>,
        options: Options,
    ) -> Route {
        Route {
            inner: Arc::new(Inner {
                store: RwLock::new(Arc::new(store)),
                lookup,
                events,
                options,
            }),
        }
    }

    /// A snapshot of the store.
    pub fn store(&self) -> Arc<Store> {
        match self.inner.store.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replace the store (requests in flight keep the old one).
    pub fn replace_store(&self, store: Store) {
        self.update(|s| *s = store);
    }

    /// Change the store in place, for example to load a role config or mark it ready.
    pub fn update<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut guard = match self.inner.store.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(Arc::make_mut(&mut guard))
    }

    /// Answer one request (what [`Handler::handle`] does, synchronously).
    pub fn respond(&self, req: &RouteRequest) -> Response<Bytes> {
        let method = req.request.method();
        if method != Method::GET && method != Method::HEAD {
            let mut resp = reply::error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
            resp.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        let Some(target) = target(req.request.uri().path()) else {
            return reply::error(StatusCode::NOT_FOUND, "not found");
        };
        let (mut query, token) =
            match Query::from_query_string(req.request.uri().query().unwrap_or("")) {
                Ok(q) => q,
                Err(e) => return reply::error(StatusCode::BAD_REQUEST, &e.to_string()),
            };
        // The token covers the query as the URL states it, before the MAC is filled in.
        let claimed = query.clone();
        let peer = req.peer.ip().to_canonical();
        let store = self.store();
        let opts = &self.inner.options;

        if let Target::Role(role) = &target
            && opts.public_roles.iter().any(|r| r == role)
        {
            return self.serve_role(&store, role, query.mac, peer);
        }

        if query.mac.is_none() {
            query.mac = req.mac.or_else(|| self.inner.lookup.mac_for(peer));
        }
        let Some(mac) = query.mac else {
            tracing::info!(%peer, "ignition request from an unidentified host");
            return reply::error(StatusCode::FORBIDDEN, "host not identified");
        };
        // The requester holds the host's lease: asked by address, so a dual-stack host (a
        // lease of each family, one MAC) is recognised over either.
        let lease_ok = || {
            self.inner.lookup.mac_for(peer) == Some(mac)
                || self
                    .inner
                    .lookup
                    .addr_for(mac)
                    .is_some_and(|a| a.to_canonical() == peer)
        };
        let token_ok = |key: &TokenKey| token.as_deref().is_some_and(|t| key.verify(&claimed, t));
        let allowed = match &opts.access {
            Access::Lease => lease_ok(),
            Access::Token(key) => token_ok(key),
            Access::LeaseOrToken(key) => lease_ok() || token_ok(key),
        };
        if !allowed {
            // A known host that nobody holds a lease for yet asked early (or its lease
            // lapsed): Ignition and coreos-installer retry a 5xx but give up on a 4xx.
            let lease_access = matches!(opts.access, Access::Lease | Access::LeaseOrToken(_));
            if lease_access
                && self.inner.lookup.addr_for(mac).is_none()
                && store.select(&query).is_some()
            {
                tracing::info!(%mac, %peer, "ignition request before the host's DHCP lease; retry later");
                return reply::not_ready(opts.retry_after, "no DHCP lease for this host yet");
            }
            tracing::warn!(%mac, %peer, "ignition request refused: not the host's lease or token");
            return reply::error(StatusCode::FORBIDDEN, "not allowed for this host");
        }
        if !store.is_ready() {
            return reply::not_ready(opts.retry_after, "ignition configs not ready");
        }
        let Some(group) = store.select(&query) else {
            tracing::info!(%mac, "no ignition group matches this host");
            return reply::error(StatusCode::NOT_FOUND, "no config for this host");
        };
        let role = group.profile.role.as_str();
        match target {
            Target::Role(wanted) => {
                if wanted != role {
                    tracing::warn!(%mac, group = %group.id, wanted, "ignition role refused");
                    return reply::error(StatusCode::FORBIDDEN, "not this host's role");
                }
                self.serve_role(&store, role, Some(mac), peer)
            }
            Target::Host => {
                let mode = match &opts.delivery {
                    Delivery::Merged => Mode::Merged,
                    Delivery::Pointer { base_url } => {
                        let mut qs = claimed.to_query_string();
                        if let Some(t) = &token {
                            if !qs.is_empty() {
                                qs.push('&');
                            }
                            qs.push_str("token=");
                            qs.push_str(&utf8_percent_encode(t, QUERY_SAFE).to_string());
                        }
                        Mode::Pointer {
                            url: format!("{}/ignition/{role}?{qs}", base_url.trim_end_matches('/')),
                        }
                    }
                };
                match store.render_for(&query, &mode) {
                    Ok(Some((group, r))) => {
                        self.served(Some(mac), peer, &group.profile.role, &r.sha512);
                        config_reply(r.bytes)
                    }
                    Ok(None) => reply::error(StatusCode::NOT_FOUND, "no config for this host"),
                    Err(Error::RoleNotReady { .. }) => {
                        reply::not_ready(opts.retry_after, "role config not ready")
                    }
                    Err(e) => {
                        // Error messages carry paths and field names, never content.
                        tracing::error!(role, %mac, error = %e, "cannot render ignition config");
                        reply::error(StatusCode::INTERNAL_SERVER_ERROR, "cannot render config")
                    }
                }
            }
        }
    }

    fn serve_role(
        &self,
        store: &Store,
        role: &str,
        mac: Option<Mac>,
        peer: IpAddr,
    ) -> Response<Bytes> {
        let Some(config) = store.role(role) else {
            return reply::not_ready(self.inner.options.retry_after, "role config not ready");
        };
        self.served(mac, peer, role, config.sha512());
        config_reply(config.bytes().clone())
    }

    fn served(&self, mac: Option<Mac>, peer: IpAddr, role: &str, sha512: &str) {
        tracing::info!(role, mac = ?mac, sha512, "ignition config served");
        self.inner.events.emit(Event::now(
            mac,
            Some(peer),
            EventKind::Ignition {
                role: role.to_owned(),
                sha512: sha512.to_owned(),
            },
        ));
    }
}

/// A config: JSON, and never kept by caches or proxies (configs hold secrets).
fn config_reply(body: Bytes) -> Response<Bytes> {
    let mut resp = reply::ok("application/json", body);
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

/// `/ignition` (or `…/ignition`) is a host request; `…/ignition/<role>` a role request.
fn target(path: &str) -> Option<Target> {
    let path = path.trim_end_matches('/');
    if path == "/ignition" || path.ends_with("/ignition") {
        return Some(Target::Host);
    }
    let (head, role) = path.rsplit_once('/')?;
    if head == "/ignition" || head.ends_with("/ignition") {
        let role = percent_decode_str(role).decode_utf8().ok()?;
        if !role.is_empty() {
            return Some(Target::Role(role.into_owned()));
        }
    }
    None
}

impl Handler for Route {
    fn handle(&self, req: RouteRequest) -> HandlerFuture<'_> {
        Box::pin(future::ready(self.respond(&req)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings() {
        let (q, t) = Query::from_query_string(
            "mac=52-54-00-12-34-56&uuid=AB&hostname=n+1&rack=a%2Fb&token=xy",
        )
        .unwrap();
        assert_eq!(q.mac.unwrap().to_string(), "52:54:00:12:34:56");
        assert_eq!(q.hostname.as_deref(), Some("n 1"));
        assert_eq!(q.labels["rack"], "a/b");
        assert_eq!(t.as_deref(), Some("xy"));
        assert_eq!(
            q.to_query_string(),
            "mac=52:54:00:12:34:56&uuid=AB&hostname=n%201&rack=a%2Fb"
        );
        assert!(matches!(
            Query::from_query_string("mac=525400000001&mac=525400000001"),
            Err(QueryError::Params(ParamsError::Repeated { .. }))
        ));
        assert!(matches!(
            Query::from_query_string("mac=zz"),
            Err(QueryError::InvalidMac { .. })
        ));
        assert_eq!(
            Query::from_query_string("%ff=1"),
            Err(QueryError::Params(ParamsError::NotUtf8))
        );
    }

    #[test]
    fn targets() {
        assert!(matches!(target("/ignition"), Some(Target::Host)));
        assert!(matches!(target("/ignition/"), Some(Target::Host)));
        assert!(matches!(target("/x/ignition/master"), Some(Target::Role(r)) if r == "master"));
        assert!(target("/other").is_none());
        assert!(target("/ignition/a/b").is_none());
    }
}
