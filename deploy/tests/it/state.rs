//! `[state] backend = "postgres"` against a real PostgreSQL (Debian's, started here in a temp
//! directory as an unprivileged user, stopped on drop): two deployments, each a process of its
//! own in a network namespace of its own, share one database. A host introspected through
//! server A gets the same role, disk, hostname and Ignition from server B; a host's DHCPv4
//! lease from A (busybox udhcpc) is in the shared table and B gives it the same address; both
//! servers' events land on one timeline; the password is never in their logs or `/status`; with the database
//! down, a new host is refused (503, said plainly), never guessed. TLS to the database is
//! verified against the plan's CA.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use rhcos_deploy::{Artifacts, Generation, Plan, StateConfig, StateStore, Timeline};

const HOST_MAC: &str = "52:54:00:6b:3c:01";
const OTHER_MAC: &str = "52:54:00:6b:4c:01";
const PASSWORD: &str = "s3cret-Pw-never-logged";
const PASSWORD_VAR: &str = "RHCOS_TEST_DB_PASSWORD";
/// Set in a child process: the plan it serves.
const CHILD_PLAN: &str = "RHCOS_TEST_STATE_CHILD_PLAN";

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    })
}

fn on_path(p: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(p).is_file()))
}

/// PostgreSQL's server programs (Debian keeps them off PATH).
fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// Whether the prerequisites are here; in CI a missing one is a failure.
fn have(root: bool, programs: &[&str]) -> bool {
    let mut missing: Vec<String> = programs
        .iter()
        .filter(|p| !on_path(p))
        .map(|p| p.to_string())
        .collect();
    if pg_bin().is_none() {
        missing.push("postgresql (initdb)".into());
    }
    if root && !is_root() {
        missing.push("root".into());
    }
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "missing {missing:?} (required in CI; scripts/install-deps.sh installs the programs)"
    );
    eprintln!("skipping: missing {missing:?}");
    false
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A PostgreSQL cluster in a temp directory: Unix socket in that directory, TCP on loopback
/// with TLS (a test CA signs its certificate for 127.0.0.1), role `rhcos` with [`PASSWORD`]
/// (SCRAM) owning database `rhcos`. Runs as `nobody` when we are root (postgres refuses
/// root). Stopped (immediately) and removed on drop.
struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    uid: Option<(u32, u32)>,
}

impl Postgres {
    fn start() -> Postgres {
        let bin = pg_bin().expect("checked by have()");
        let dir = tempfile::Builder::new()
            .prefix("rhcos-pg-")
            .tempdir()
            .unwrap();
        let uid = is_root().then_some((65534, 65534));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Postgres {
            dir,
            bin,
            port,
            uid,
        };
        let d = pg.dir.path();
        // The TLS material: a CA and a server certificate for 127.0.0.1 it signs.
        let ssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(d));
        ssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=rhcos test db CA",
        ]);
        ssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        ssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        // A second CA that signed nothing: the wrong one.
        ssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other-ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=other",
        ]);
        std::fs::create_dir(d.join("data")).unwrap();
        if let Some((u, g)) = uid {
            run(Command::new("chown")
                .arg("-R")
                .arg(format!("{u}:{g}"))
                .arg(d));
            run(Command::new("chmod").arg("0755").arg(d));
        }
        std::fs::write(d.join("pw"), "postgres-superuser-unused\n").unwrap();
        pg.as_pg(&pg.bin.join("initdb"))
            .args(["-D", "data", "-U", "postgres", "--auth-local=trust"])
            .args(["--auth-host=scram-sha-256", "--no-sync"])
            .output_ok();
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{dir}'\n\
             ssl = on\nssl_cert_file = '{dir}/server.pem'\nssl_key_file = '{dir}/server.key'\n\
             fsync = off\n",
            dir = d.display()
        );
        let data = d.join("data");
        let mut auto = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(&mut auto, conf.as_bytes()).unwrap();
        // The password, for the role the servers log in as, over the socket too.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all postgres trust\nlocal all all scram-sha-256\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        if let Some((u, g)) = uid {
            run(Command::new("chown")
                .arg("-R")
                .arg(format!("{u}:{g}"))
                .arg(d));
            run(Command::new("chmod").arg("0600").arg(d.join("server.key")));
        }
        pg.pg_ctl("start");
        pg.psql_in(
            "postgres",
            &format!("CREATE ROLE rhcos LOGIN PASSWORD '{PASSWORD}'"),
        );
        pg.psql_in("postgres", "CREATE DATABASE rhcos OWNER rhcos");
        pg
    }

    fn as_pg(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.current_dir(self.dir.path()).env_remove("PGPASSWORD");
        if let Some((u, g)) = self.uid {
            c.uid(u).gid(g);
        }
        c
    }

    fn pg_ctl(&self, action: &str) {
        let mut c = self.as_pg(&self.bin.join("pg_ctl"));
        c.args(["-D", "data", "-l", "log", "-w", "-m", "immediate", action])
            .stdout(Stdio::null());
        c.output_ok();
    }

    /// SQL as the superuser over the socket; the output, unaligned.
    fn psql(&self, sql: &str) -> String {
        self.psql_in("rhcos", sql)
    }

    fn psql_in(&self, db: &str, sql: &str) -> String {
        let mut c = self.as_pg(Path::new("psql"));
        c.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ]);
        c.output_ok()
    }

    /// The URL over the Unix socket (reachable from every network namespace).
    fn socket_url(&self) -> String {
        let dir = self.dir.path().display().to_string().replace('/', "%2F");
        format!("postgresql://rhcos@{dir}:{}/rhcos", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .as_pg(&self.bin.join("pg_ctl"))
            .args(["-D", "data", "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

trait OutputOk {
    fn output_ok(&mut self) -> String;
}

impl OutputOk for Command {
    fn output_ok(&mut self) -> String {
        run(self)
    }
}

// ---- TLS and credentials, PgState alone (no namespaces) ----

fn state(url: String, ca: Option<PathBuf>, password_env: &str) -> StateConfig {
    StateConfig {
        backend: rhcos_deploy::StateBackend::Postgres,
        url: Some(url),
        password_env: Some(password_env.into()),
        allow_plaintext: ca.is_none(),
        ca_file: ca,
        server_name: None,
    }
}

#[test]
fn tls_to_the_database_is_verified_and_the_password_comes_from_the_environment() {
    if std::env::var_os(PASSWORD_VAR).is_some() {
        return;
    }
    if !have(false, &["openssl", "psql"]) {
        return;
    }
    let pg = Postgres::start();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "state::tls_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PASSWORD_VAR, PASSWORD)
        .env("RHCOS_TEST_PG_PORT", pg.port.to_string())
        .env("RHCOS_TEST_PG_DIR", pg.dir.path())
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains("tls child ok"), "{log}");
    assert!(
        !log.contains(PASSWORD),
        "the password is in the output:\n{log}"
    );
    // The servers' connection was TLS (pg_stat_ssl of the session that migrated is gone; the
    // schema is there, made by the TLS client).
    assert_eq!(
        pg.psql("SELECT name FROM rhcos_deploy_migrations").trim(),
        "0001_host_state"
    );
}

/// The child of the test above: TLS with the right CA works (and is TLS), the wrong CA and a
/// missing password variable are refused with clear errors.
#[test]
fn tls_child() {
    let Ok(port) = std::env::var("RHCOS_TEST_PG_PORT") else {
        return;
    };
    let dir = PathBuf::from(std::env::var("RHCOS_TEST_PG_DIR").unwrap());
    let url = format!("postgresql://rhcos@127.0.0.1:{port}/rhcos");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let good = rhcos_deploy::PgState::connect(
            &state(url.clone(), Some(dir.join("ca.pem")), PASSWORD_VAR),
            "tls",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(good.describe().contains("127.0.0.1"));
        assert!(!good.describe().contains(PASSWORD));
        assert!(rhcos_introspect::Store::load(&good).unwrap().is_empty());

        let wrong = rhcos_deploy::PgState::connect(
            &state(url.clone(), Some(dir.join("other-ca.pem")), PASSWORD_VAR),
            "tls",
        )
        .await
        .expect_err("a certificate from another CA");
        let msg = wrong.to_string();
        assert!(msg.contains("certificate") || msg.contains("Certificate"), "{msg}");
        assert!(!msg.contains(PASSWORD));

        let unset = rhcos_deploy::PgState::connect(
            &state(url.clone(), Some(dir.join("ca.pem")), "RHCOS_TEST_UNSET_VARIABLE"),
            "tls",
        )
        .await
        .expect_err("no password");
        assert!(
            matches!(unset, rhcos_deploy::StateError::PasswordMissing { ref var } if var == "RHCOS_TEST_UNSET_VARIABLE"),
            "{unset}"
        );
    });
    println!("tls child ok");
}

// ---- two deployments, one database ----

/// A network namespace with a veth interface at `addr`/24 (for DHCP to bind); removed on
/// drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str, addr: &str) -> Netns {
        let name = format!("pgd-{tag}-{}", std::process::id() % 100_000);
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns(name);
        // A veth pair inside the namespace (no dummy module needed): DHCP binds to one end.
        ns.exec(&[
            "ip", "link", "add", "pgd0", "type", "veth", "peer", "name", "pgd1",
        ]);
        ns.exec(&["ip", "link", "set", "pgd1", "up"]);
        ns.exec(&["ip", "addr", "add", &format!("{addr}/24"), "dev", "pgd0"]);
        ns.exec(&["ip", "link", "set", "pgd0", "up"]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn exec(&self, cmd: &[&str]) -> String {
        run(Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(cmd))
    }

    /// A client namespace on this one's link: the veth's other end (`pgd1`) moves there, with
    /// `mac`. Keep it while the server runs (its removal takes the server's interface along).
    fn client(&self, tag: &str, mac: &str) -> Netns {
        let name = format!("pgd-{tag}-{}", std::process::id() % 100_000);
        run(Command::new("ip").args(["netns", "add", &name]));
        let client = Netns(name);
        self.exec(&["ip", "link", "set", "pgd1", "netns", &client.0]);
        client.exec(&["ip", "link", "set", "pgd1", "address", mac]);
        client.exec(&["ip", "link", "set", "pgd1", "up"]);
        client.exec(&["ip", "link", "set", "lo", "up"]);
        client
    }

    /// busybox udhcpc once on `pgd1` (asking for `requested`, if given): the address bound.
    fn udhcpc(&self, dir: &Path, requested: Option<&str>) -> String {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join(format!("{}.sh", self.0));
        let out = dir.join(format!("{}.ip", self.0));
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n[ \"$1\" = bound ] && echo \"$ip\" > {}\nexit 0\n",
                out.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0, "busybox", "udhcpc", "-i", "pgd1"])
            .args(["-n", "-q", "-f", "-t", "5", "-T", "1", "-s"])
            .arg(&script);
        if let Some(addr) = requested {
            cmd.args(["-r", addr]);
        }
        let status = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "udhcpc in {}: {status}", self.0);
        std::fs::read_to_string(&out).unwrap().trim().to_owned()
    }

    /// curl inside the namespace: (HTTP status, body).
    fn curl(&self, args: &[&str]) -> (u16, String) {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.0,
                "curl",
                "-s",
                "-w",
                "\n%{http_code}",
            ])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// One deployment: this test binary, re-run as `state::server_child` inside `ns`, serving
/// `plan`. Killed (by its PID) on drop; its log is kept to check.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn start(ns: &Netns, plan: &Path, log: PathBuf) -> Server {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.0])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "state::server_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_PLAN, plan)
            .env(PASSWORD_VAR, PASSWORD)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.any(|l| l.is_ok_and(|l| l.contains("servers ready")));
        let server = Server { child, log };
        assert!(ready, "the server did not start: {}", server.log());
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_plan(dir: &Path, name: &str, addr: &str, url: &str) -> PathBuf {
    let assets = dir.join("assets");
    std::fs::create_dir_all(&assets).unwrap();
    for role in ["master", "worker"] {
        std::fs::write(
            assets.join(format!("{role}.ign")),
            format!(r#"{{"ignition":{{"version":"3.2.0"}},"storage":{{"files":[{{"path":"/etc/role","contents":{{"source":"data:,{role}"}}}}]}}}}"#),
        )
        .unwrap();
    }
    let cache = dir.join(format!("cache-{name}"));
    std::fs::create_dir_all(&cache).unwrap();
    let text = format!(
        r#"
[cluster]
name = "ocp"
base_domain = "example.com"
assets = "{assets}"

[images]
stream = "file:///nonexistent/stream.json"
cache = "{cache}"

[provisioning]
interface = "pgd0"
address = "{addr}"
dhcp_range = ["172.22.0.100", "172.22.0.199"]
admin_allow = ["{addr}"]
ipxe_dir = "{cache}"
http_port = 18080

[dns]
enabled = false

[status]
enabled = true

[state]
backend = "postgres"
url = "{url}"
password_env = "{PASSWORD_VAR}"
allow_plaintext = true
server_name = "server-{name}"

[[hosts]]
name = "new-0"
mac = "{HOST_MAC}"
role = "introspect"

[[hosts]]
name = "new-1"
mac = "{OTHER_MAC}"
role = "introspect"
"#,
        assets = assets.display(),
        cache = cache.display(),
    );
    let path = dir.join(format!("plan-{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The child: serve the plan in `RHCOS_TEST_STATE_CHILD_PLAN` until stdin closes.
#[test]
fn server_child() {
    let Some(plan_path) = std::env::var_os(CHILD_PLAN) else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let plan = Plan::load(Path::new(&plan_path)).unwrap_or_else(|e| panic!("{e}"));
    let root = plan.images.cache.clone();
    let artifacts = Artifacts {
        root,
        generation: Generation::Live,
        kernel: "/kernel".into(),
        initramfs: "/initramfs".into(),
        rootfs: Some("/rootfs".into()),
        image: Some("/image".into()),
        image_4k: None,
        boot_chain: None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let servers = rhcos_deploy::start_servers(&plan, &artifacts, Arc::new(pxe_stack::Discard))
            .await
            .unwrap_or_else(|e| panic!("{e}: {:?}", std::error::Error::source(&e)));
        tracing::info!(plan = ?plan, "the plan");
        println!("servers ready");
        // Until the parent closes stdin (or dies).
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await;
        servers.shutdown().await;
    });
}

fn body_for(mac_stem: &str, uuid: &str) -> String {
    let fixture = format!(
        "{}/../introspect/tests/fixtures/ghw-modern-qemu-host.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(fixture)
        .unwrap()
        .replace("52:54:00:6b:3c:0", mac_stem)
        .replace("6F1A2B3C-4D5E-4F60-8172-839405A6B7C8", uuid)
        .replace("rhcos-lab-0001", uuid)
}

/// `text` with either server's address replaced by `SERVER`: what each serves from its own
/// cache is named by its own address.
fn unserver(text: &str) -> String {
    text.replace("172.22.0.1:", "SERVER:")
        .replace("172.22.0.2:", "SERVER:")
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn netns_two_servers_share_one_database_and_refuse_to_guess_without_it() {
    if std::env::var_os(PASSWORD_VAR).is_some() {
        return;
    }
    if !have(true, &["openssl", "psql", "ip", "curl", "busybox"]) {
        return;
    }
    let pg = Postgres::start();
    let work = tempfile::tempdir().unwrap();
    let url = pg.socket_url();
    let (ns_a, ns_b) = (Netns::new("a", "172.22.0.1"), Netns::new("b", "172.22.0.2"));
    // The host, on A's link and on B's: one MAC.
    let (host_a, host_b) = (ns_a.client("ah", HOST_MAC), ns_b.client("bh", HOST_MAC));
    let plan_a = write_plan(work.path(), "a", "172.22.0.1", &url);
    let plan_b = write_plan(work.path(), "b", "172.22.0.2", &url);
    let a = Server::start(&ns_a, &plan_a, work.path().join("a.log"));

    // The host's DHCPv4 lease from A (an address it asks for, not the one its MAC hashes to) is
    // in the shared table, written by A ...
    let leased = host_a.udhcpc(work.path(), Some("172.22.0.150"));
    assert_eq!(leased, "172.22.0.150", "{}", a.log());
    let rows = "SELECT host(address), mac, state, server FROM dhcp4_lease ORDER BY address";
    assert_eq!(
        pg.psql(rows).trim(),
        format!("172.22.0.150|{HOST_MAC}|bound|server-a")
    );
    // ... so B, starting beside A, gives the host the same address when it asks B (no address
    // requested): from the database, the only place B could know it from.
    let b = Server::start(&ns_b, &plan_b, work.path().join("b.log"));
    let again = host_b.udhcpc(work.path(), None);
    assert_eq!(again, leased, "{}", b.log());
    // Still one lease (B writes it again only when it changed: a later expiry, which within
    // the same second it has not).
    assert_eq!(
        pg.psql("SELECT host(address), mac, state FROM dhcp4_lease")
            .trim(),
        format!("172.22.0.150|{HOST_MAC}|bound"),
        "{}",
        b.log()
    );
    let (base_a, base_b) = ("http://172.22.0.1:18080", "http://172.22.0.2:18080");

    // Introspected through A ...
    let body = body_for("52:54:00:6b:3c:0", "6F1A2B3C-4D5E-4F60-8172-839405A6B7C8");
    let (code, ign_a) = ns_a.curl(&[
        "-X",
        "POST",
        "--data-binary",
        &body,
        &format!("{base_a}/introspection"),
    ]);
    assert_eq!(code, 200, "{ign_a}\n{}", a.log());
    // ... B knows the decision: the inventory record, the install config, the same Ignition.
    let (code, rec_b) = ns_b.curl(&[&format!("{base_b}/inventory/{HOST_MAC}")]);
    assert_eq!(code, 200, "{rec_b}\n{}", b.log());
    let (_, rec_a) = ns_a.curl(&[&format!("{base_a}/inventory/{HOST_MAC}")]);
    let (rec_a, rec_b) = (json(&rec_a), json(&rec_b));
    assert_eq!(rec_b["role"], "worker");
    for key in ["role", "hostname", "install_dev", "first_seen"] {
        assert_eq!(rec_a[key], rec_b[key], "{key}");
    }
    let (code, install_b) = ns_b.curl(&[&format!("{base_b}/install-config?mac={HOST_MAC}")]);
    assert_eq!(code, 200, "{install_b}");
    let (_, install_a) = ns_a.curl(&[&format!("{base_a}/install-config?mac={HOST_MAC}")]);
    // The same decision; the image comes from each server's own cache.
    assert_eq!(unserver(&install_a), unserver(&install_b));
    assert!(
        install_b.contains("image-url: http://172.22.0.2:18080/"),
        "{install_b}"
    );
    assert!(install_b.contains(&format!(
        "dest-device: {}",
        rec_a["install_dev"].as_str().unwrap()
    )));
    let (code, ign_b) = ns_b.curl(&[
        "-X",
        "POST",
        "--data-binary",
        &body,
        &format!("{base_b}/introspection"),
    ]);
    assert_eq!(code, 200, "{ign_b}");
    assert_eq!(
        json(&unserver(&ign_a)),
        json(&unserver(&ign_b)),
        "the same Ignition from either server"
    );
    // One inventory, listed alike by both; the second post was an update, not a new host.
    let (_, list_a) = ns_a.curl(&[&format!("{base_a}/inventory")]);
    let (_, list_b) = ns_b.curl(&[&format!("{base_b}/inventory")]);
    assert_eq!(json(&list_a), json(&list_b));
    assert_eq!(json(&list_a).as_array().unwrap().len(), 1);
    assert_eq!(pg.psql("SELECT count(*) FROM inventory").trim(), "1");
    assert_eq!(
        pg.psql("SELECT record->>'posts' FROM inventory").trim(),
        "2"
    );
    // The per-host script is the same from either server.
    let (code, script_a) = ns_a.curl(&[&format!("{base_a}/ipxe?mac={HOST_MAC}")]);
    let (_, script_b) = ns_b.curl(&[&format!("{base_b}/ipxe?mac={HOST_MAC}")]);
    assert_eq!(code, 200, "{script_a}");
    assert_eq!(
        unserver(&script_a),
        unserver(&script_b),
        "scripts differ beyond the server's own address"
    );

    // Both servers' events are on the shared timeline.
    let servers: Vec<String> = pg
        .psql("SELECT DISTINCT server FROM host_events WHERE event->'kind' ? 'Introspected' ORDER BY server")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(servers, ["server-a", "server-b"]);
    // ... and read back through the trait they make one host's timeline.
    let events = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "state::events_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PASSWORD_VAR, PASSWORD)
        .env("RHCOS_TEST_PG_URL", &url)
        .output()
        .unwrap();
    let events = format!(
        "{}{}",
        String::from_utf8_lossy(&events.stdout),
        String::from_utf8_lossy(&events.stderr)
    );
    assert!(
        events.contains("introspected by server-a and server-b"),
        "{events}"
    );

    // The password is in no log and not on /status.
    let (code, status) = ns_a.curl(&[&format!("{base_a}/status")]);
    assert_eq!(code, 200);
    assert!(!status.contains(PASSWORD));
    for log in [a.log(), b.log()] {
        assert!(
            log.contains("shared state") && log.contains("DHCP leases shared"),
            "the servers log which state they use:\n{log}"
        );
        assert!(
            !log.contains("leases stay in this server's lease file"),
            "{log}"
        );
        assert!(!log.contains(PASSWORD), "the password is in a log:\n{log}");
    }

    // The database goes away: a new host is refused plainly, never decided from a guess ...
    pg.pg_ctl("stop");
    let other = body_for("52:54:00:6b:4c:0", "00000000-4D5E-4F60-8172-839405A6B7C8");
    let (code, refused) = ns_b.curl(&[
        "-X",
        "POST",
        "--data-binary",
        &other,
        &format!("{base_b}/introspection"),
    ]);
    assert_eq!(code, 503, "{refused}");
    assert!(
        refused.contains("shared inventory store is unavailable"),
        "{refused}"
    );
    // ... while a decision already made is still answered.
    let (code, again) = ns_b.curl(&[&format!("{base_b}/install-config?mac={HOST_MAC}")]);
    assert_eq!((code, unserver(&again)), (200, unserver(&install_a)));
    // Back: the new host is decided once, through either server.
    pg.pg_ctl("start");
    let (code, ok) = ns_a.curl(&[
        "-X",
        "POST",
        "--data-binary",
        &other,
        &format!("{base_a}/introspection"),
    ]);
    assert_eq!(code, 200, "{ok}\n{}", a.log());
    assert_eq!(pg.psql("SELECT count(*) FROM inventory").trim(), "2");
    assert_eq!(
        pg.psql("SELECT string_agg(hostname, ',' ORDER BY hostname) FROM inventory")
            .trim(),
        "worker-0,worker-1"
    );
    drop((a, b, host_a, host_b));
}

/// The child of the test above that reads the shared timeline through [`StateStore::events`].
#[test]
fn events_child() {
    let Ok(url) = std::env::var("RHCOS_TEST_PG_URL") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let state = rt
        .block_on(rhcos_deploy::PgState::connect(
            &state(url, None, PASSWORD_VAR),
            "reader",
        ))
        .unwrap();
    let events = state.events().unwrap();
    let mac: pxe_stack::Mac = HOST_MAC.parse().unwrap();
    let mut timeline = Timeline::new([("new-0".to_owned(), mac)]);
    let mut by = std::collections::BTreeSet::new();
    for e in &events {
        timeline.record(&e.event);
        if matches!(e.event.kind, pxe_stack::EventKind::Introspected { .. }) {
            by.insert(e.server.clone());
        }
    }
    let host = timeline.host(mac).unwrap();
    assert_eq!(host.role.as_deref(), Some("worker"));
    println!(
        "introspected by {}",
        by.into_iter().collect::<Vec<_>>().join(" and ")
    );
}
