//! A throwaway PostgreSQL for the tests: one cluster per test binary, one database per test.
//!
//! If `MATRIX_PEEK_PG_URL` is set, it names a server to use instead (a connection string or
//! URL of a role that may `CREATE DATABASE`); each test gets a fresh database on it.
//!
//! Otherwise the first test to ask runs `initdb` into a temp dir (as the unprivileged
//! `postgres` user when we are root, through `runuser`), starts the server with `pg_ctl`
//! listening only on a unix socket in that dir, and waits until it accepts connections. The
//! cluster is shared by the binary's tests and lives in a static, which is never dropped, so a
//! watchdog (`sh`, its stdin a pipe from this process) stops the server and removes the dir once
//! the pipe closes: when the test binary exits, however it exits (normally, on a panic, killed).
//! A [`Cluster`] that is dropped (not the static one) stops and removes itself directly.
//!
//! When `initdb`, `pg_ctl` or `runuser` cannot be found, or the server does not start, every
//! test fails with a message naming the missing part: these tests never pass silently.

#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The environment variable naming an external server to use instead of a throwaway cluster.
pub const URL_ENV: &str = "MATRIX_PEEK_PG_URL";

/// The port number in the socket's file name (`.s.PGSQL.<port>`); the server listens on no
/// TCP port, so any number will do.
const PORT: u16 = 5432;

/// A running throwaway cluster.
pub struct Cluster {
    /// The temp dir: `data/` (the cluster), the socket and `server.log`.
    dir: PathBuf,
    /// The directory holding `pg_ctl`.
    bin: PathBuf,
    /// Whether server commands run through `runuser -u postgres`.
    as_postgres: bool,
    /// The watchdog's stdin (see the module docs); dropping it stops the cluster.
    watchdog: Option<(Child, ChildStdin)>,
}

impl Cluster {
    /// The connection string of `dbname` on this cluster.
    pub fn conn_str(&self, dbname: &str) -> String {
        format!("host={} port={PORT} user=postgres dbname={dbname}", self.dir.display())
    }

    /// Initialises and starts a cluster in a new temp dir, or says what is missing.
    pub fn start() -> Result<Cluster, String> {
        let bin = find_bin_dir()?;
        let as_postgres = running_as_root();
        if as_postgres && find_on_path("runuser").is_none() {
            return Err(
                "running as root, but `runuser` (util-linux) is not on PATH: it is needed \
                        to run initdb and postgres as the unprivileged `postgres` user"
                    .into(),
            );
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "matrix-peek-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let mut cluster = Cluster { dir, bin, as_postgres, watchdog: None };
        if as_postgres {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(&cluster.dir)
                .status()
                .map_err(|e| format!("run chown: {e}"))?;
            if !status.success() {
                return Err(format!(
                    "chown postgres: {} failed ({status}); does the `postgres` user exist?",
                    cluster.dir.display()
                ));
            }
        }
        let data = cluster.dir.join("data");
        let out = cluster
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"])
            .output()
            .map_err(|e| format!("run initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // From here on the cluster exists: arm the watchdog before starting the server, so it
        // is cleaned up whatever happens next.
        cluster.arm_watchdog()?;
        let options = format!(
            "-c listen_addresses='' -k {} -p {PORT} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=50",
            cluster.dir.display()
        );
        let out = cluster
            .command("pg_ctl")
            .arg("start")
            .arg("-w")
            .args(["-t", "60"])
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(cluster.dir.join("server.log"))
            .arg("-o")
            .arg(&options)
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("run pg_ctl start: {e}"))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(cluster.dir.join("server.log")).unwrap_or_default();
            return Err(format!(
                "postgres did not start ({}): {}\nserver log:\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(cluster)
    }

    /// `program` from the PostgreSQL bin dir, through `runuser -u postgres --` when root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    /// The shell commands that stop the server and remove the dir.
    fn teardown_script(&self) -> String {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.dir.join("data");
        let stop = format!("'{}' stop -m immediate -w -D '{}'", pg_ctl.display(), data.display());
        let stop = if self.as_postgres { format!("runuser -u postgres -- {stop}") } else { stop };
        format!("{stop} >/dev/null 2>&1; rm -rf '{}'", self.dir.display())
    }

    /// Starts the watchdog: `sh` that waits for EOF on its stdin, then tears the cluster down.
    fn arm_watchdog(&mut self) -> Result<(), String> {
        let script = format!("cat >/dev/null; {}", self.teardown_script());
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start the cleanup watchdog (sh): {e}"))?;
        let stdin = child.stdin.take().ok_or("the watchdog has no stdin")?;
        self.watchdog = Some((child, stdin));
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        match self.watchdog.take() {
            Some((mut child, mut stdin)) => {
                // EOF: the watchdog tears down; wait for it so the dir is gone when we return.
                let _ = stdin.flush();
                drop(stdin);
                let _ = child.wait();
            }
            None => {
                let _ = Command::new("sh").args(["-c", &self.teardown_script()]).status();
            }
        }
    }
}

/// Whether this process runs as root (the owner of `/proc/self` is our effective uid).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

/// The directory with `initdb`, `pg_ctl` and `postgres`: the real bin dir of the `initdb` on
/// PATH (through its symlink), else the newest `/usr/lib/postgresql/*/bin`.
fn find_bin_dir() -> Result<PathBuf, String> {
    let complete =
        |dir: &Path| ["initdb", "pg_ctl", "postgres"].iter().all(|p| dir.join(p).is_file());
    if let Some(initdb) = find_on_path("initdb")
        && let Ok(real) = std::fs::canonicalize(&initdb)
        && let Some(dir) = real.parent()
        && complete(dir)
    {
        return Ok(dir.to_owned());
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|dir| complete(dir))
        .collect();
    candidates.sort_by_key(|dir| {
        dir.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    candidates.pop().ok_or_else(|| {
        "PostgreSQL server binaries not found: need `initdb`, `pg_ctl` and `postgres` on PATH or \
         in /usr/lib/postgresql/<version>/bin (install the PostgreSQL server, or set \
         MATRIX_PEEK_PG_URL to a server to use)"
            .to_owned()
    })
}

/// Where the tests' databases are created: an external server or the shared throwaway cluster.
enum Server {
    External(String),
    Local(Cluster),
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    let server = SERVER.get_or_init(|| match std::env::var(URL_ENV) {
        Ok(url) => Ok(Server::External(url)),
        Err(_) => Cluster::start().map(Server::Local),
    });
    match server {
        Ok(server) => server,
        Err(why) => panic!("cannot run the PostgreSQL tests: {why}"),
    }
}

/// A new empty database for one test: its connection string. Panics (failing the test) if no
/// server can be had.
pub async fn fresh_database() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!("test_{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
    let (admin, db_conn_str) = match server() {
        Server::External(url) => (url.clone(), with_dbname(url, &name)),
        Server::Local(cluster) => (cluster.conn_str("postgres"), cluster.conn_str(&name)),
    };
    let client = connect(&admin).await;
    // Concurrent CREATE DATABASEs can collide on the template; retry a few times.
    let mut attempt = 0;
    loop {
        match client.batch_execute(&format!("CREATE DATABASE {name}")).await {
            Ok(()) => break,
            Err(e) if attempt < 20 => {
                attempt += 1;
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("CREATE DATABASE {name}: {e}"),
        }
    }
    db_conn_str
}

/// A plain client on `conn_str`, its connection task spawned on the current runtime.
pub async fn connect(conn_str: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(conn_str, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {conn_str}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// `url` with its database replaced by `dbname` (a URL or a key=value connection string).
fn with_dbname(url: &str, dbname: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (url, None),
        };
        let scheme_end = base.find("://").map_or(0, |i| i + 3);
        let base = match base[scheme_end..].find('/') {
            Some(i) => &base[..scheme_end + i],
            None => base,
        };
        match query {
            Some(q) => format!("{base}/{dbname}?{q}"),
            None => format!("{base}/{dbname}"),
        }
    } else {
        format!("{url} dbname={dbname}")
    }
}
