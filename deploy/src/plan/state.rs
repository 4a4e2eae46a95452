//! The plan's `[state]`: where what the servers decide about hosts is kept (introspection
//! decisions and inventory, the per-host events, the DHCPv4 and DHCPv6 leases). Pure:
//! [`Plan::load`](super::Plan::load)
//! checks it; the `postgres` feature connects.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where the deciding state lives.
///
/// `files` (the default) keeps it in this server's directories: nothing to install, one server.
/// `postgres` keeps it in one PostgreSQL database that several servers share, so any of them can
/// answer any host: the inventory, the events, and the DHCPv4 and DHCPv6 leases (pxe-stack's
/// `PgLeaseStore`: a host keeps its address whichever server answers, and no address is bound
/// to two hosts). The URL carries no password:
/// it comes from the environment variable `password_env` names. The connection is TLS,
/// verified against `ca_file` (the server's certificate must name the URL's host); plaintext
/// needs `allow_plaintext = true`, for a database on loopback or a Unix socket.
///
/// ```toml
/// [state]
/// backend = "postgres"
/// url = "postgresql://rhcos@db.example.net:5432/rhcos"
/// password_env = "RHCOS_DB_PASSWORD"
/// ca_file = "/etc/pki/rhcos-db-ca.pem"
/// # server_name = "a-provisioning-server"   # default: the provisioning address
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `files` or `postgres`.
    #[serde(default)]
    pub backend: StateBackend,
    /// `postgresql://user@host:port/database`, without a password.
    #[serde(default)]
    pub url: Option<String>,
    /// The environment variable holding the database password (none: the server does not
    /// ask for one, e.g. certificate or trust authentication).
    #[serde(default)]
    pub password_env: Option<String>,
    /// The CA certificate(s), PEM, that the database server's certificate must chain to.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Connect without TLS. Off by default: the connection carries the password and every
    /// host's inventory.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// This server's name on the shared timeline (which server saw each event) and on the
    /// DHCP leases it writes; default: the provisioning address.
    #[serde(default)]
    pub server_name: Option<String>,
}

/// The kinds of `[state]` backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateBackend {
    /// Files in this server's state directory (one server).
    #[default]
    Files,
    /// One PostgreSQL database shared by every server of the site.
    Postgres,
}

impl StateConfig {
    /// Checks the section; `Err((key under "state", message))`.
    pub(crate) fn check(&self) -> Result<(), (&'static str, String)> {
        if self.backend == StateBackend::Files {
            let extra = [
                ("url", self.url.is_some()),
                ("password_env", self.password_env.is_some()),
                ("ca_file", self.ca_file.is_some()),
                ("allow_plaintext", self.allow_plaintext),
            ];
            if let Some((key, _)) = extra.iter().find(|(_, set)| *set) {
                return Err((key, "only with backend = \"postgres\"".into()));
            }
            return Ok(());
        }
        let Some(url) = &self.url else {
            return Err((
                "url",
                "backend = \"postgres\" needs `url` (postgresql://user@host:port/database)".into(),
            ));
        };
        check_url(url).map_err(|m| ("url", m))?;
        if let Some(var) = &self.password_env
            && (var.is_empty() || var.contains('=') || var.contains('\0'))
        {
            return Err(("password_env", format!("{var:?} is not a variable name")));
        }
        match (&self.ca_file, self.allow_plaintext) {
            (None, false) => Err((
                "ca_file",
                "give the database's CA (`ca_file`) for TLS, or `allow_plaintext = true`".into(),
            )),
            (Some(_), true) => Err((
                "allow_plaintext",
                "give `ca_file` (TLS) or `allow_plaintext`, not both".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// A `postgresql://` URL without a password and without connection options that the plan's
/// own keys decide (TLS, password).
fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
        .ok_or_else(|| "must start with postgresql://".to_owned())?;
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let authority = authority.split('/').next().unwrap_or("");
    if let Some((user, _)) = authority.rsplit_once('@')
        && user.contains(':')
    {
        return Err(
            "holds a password: leave it out and name its variable in `password_env`".into(),
        );
    }
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() {
        return Err("names no host".into());
    }
    for param in query.into_iter().flat_map(|q| q.split('&')) {
        let key = param.split('=').next().unwrap_or("");
        match key {
            "password" => {
                return Err(
                    "holds a password: leave it out and name its variable in `password_env`".into(),
                );
            }
            "sslmode" | "sslrootcert" | "sslcert" | "sslkey" => {
                return Err(format!(
                    "`{key}` is decided by `ca_file` / `allow_plaintext`, not the URL"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(url: &str) -> StateConfig {
        StateConfig {
            backend: StateBackend::Postgres,
            url: Some(url.into()),
            ca_file: Some("/ca.pem".into()),
            ..Default::default()
        }
    }

    #[test]
    fn urls() {
        assert!(pg("postgresql://rhcos@db:5432/rhcos").check().is_ok());
        assert!(pg("postgres://db/rhcos?connect_timeout=5").check().is_ok());
        assert_eq!(
            pg("postgresql://rhcos:pw@db/rhcos").check().unwrap_err().0,
            "url"
        );
        assert_eq!(
            pg("postgresql://db/x?password=pw").check().unwrap_err().0,
            "url"
        );
        assert_eq!(
            pg("postgresql://db/x?sslmode=disable")
                .check()
                .unwrap_err()
                .0,
            "url"
        );
        assert_eq!(pg("mysql://db/x").check().unwrap_err().0, "url");
        assert_eq!(pg("postgresql:///x").check().unwrap_err().0, "url");
    }

    #[test]
    fn tls_is_chosen_explicitly() {
        let mut c = pg("postgresql://db/x");
        c.ca_file = None;
        assert_eq!(c.check().unwrap_err().0, "ca_file");
        c.allow_plaintext = true;
        assert!(c.check().is_ok());
        c.ca_file = Some("/ca.pem".into());
        assert_eq!(c.check().unwrap_err().0, "allow_plaintext");
    }

    #[test]
    fn files_takes_no_database_keys() {
        let c = StateConfig {
            url: Some("postgresql://db/x".into()),
            ..Default::default()
        };
        assert_eq!(c.check().unwrap_err().0, "url");
        assert!(StateConfig::default().check().is_ok());
    }
}
