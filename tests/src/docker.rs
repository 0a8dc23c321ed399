//! Helpers for tests against the real Docker engine: bounded `docker` and compose commands,
//! images built from binaries with no base image, and a guard that removes every container,
//! network, volume, image tag and compose project a test made — also when it fails.
//!
//! Everything a test makes is named `grt<pid>-…` (images `…:grt<pid>`) and labelled
//! `grelay.test.pid=<pid>`; [`Docker::new`] first removes what a crashed earlier run of a
//! process that is gone left behind ([`sweep_stale`]). Nothing else on the engine is touched:
//! no `prune`, no removal by anything but these names.
//!
//! Traffic stays on networks the test creates: ports are published only on the host's address
//! on a test network's bridge (in 198.18.0.0/15), never on 0.0.0.0.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Label on every object a test makes, with the test process's pid.
pub const PID_LABEL: &str = "grelay.test.pid";
/// Time limit of one `docker` command unless said otherwise.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// A failed command, with what it printed.
#[derive(Debug)]
pub struct Failed(pub String);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failed {}

/// Result of the helpers.
pub type Result<T> = std::result::Result<T, Failed>;

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit status: `Some(code)`, or `None` when killed by a signal or the time limit.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Exit status 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `program args…` with `env` added and `stdin` fed, killed after `timeout`.
pub fn run(
    program: &str,
    args: &[&str],
    env: &[(String, String)],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let shown = format!("{program} {}", args.join(" "));
    let mut child = command
        .spawn()
        .map_err(|e| Failed(format!("{shown}: {e}")))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data)
            .map_err(|e| Failed(format!("{shown}: writing stdin: {e}")))?;
    }
    // Read both pipes on threads so that a chatty command cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(Failed(format!("{shown}: {e}"))),
        }
    };
    let output = Output {
        code: status.and_then(|s| s.code()),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    if status.is_none() {
        return Err(Failed(format!(
            "{shown}: no result within {timeout:?}: {}",
            output.stderr.trim()
        )));
    }
    Ok(output)
}

/// `docker args…`; an error (with stderr) unless it exits 0.
pub fn docker(args: &[&str]) -> Result<String> {
    let out = run("docker", args, &[], None, COMMAND_TIMEOUT)?;
    if out.ok() {
        Ok(out.stdout)
    } else {
        Err(Failed(format!(
            "docker {} failed ({:?}): {}",
            args.join(" "),
            out.code,
            out.stderr.trim()
        )))
    }
}

/// Whether `docker info` answers (an engine is running and we may talk to it).
pub fn engine_available() -> bool {
    run("docker", &["info"], &[], None, Duration::from_secs(20)).is_ok_and(|o| o.ok())
}

/// The compose command: `docker compose` (v2 plugin) if present, else `docker-compose` (the
/// Debian package, v1).
pub fn compose_command() -> Option<Vec<String>> {
    let v2 = run(
        "docker",
        &["compose", "version"],
        &[],
        None,
        Duration::from_secs(20),
    );
    if v2.is_ok_and(|o| o.ok()) {
        return Some(vec!["docker".into(), "compose".into()]);
    }
    let v1 = run(
        "docker-compose",
        &["version"],
        &[],
        None,
        Duration::from_secs(20),
    );
    v1.is_ok_and(|o| o.ok())
        .then(|| vec!["docker-compose".to_owned()])
}

/// Whether a process with this pid exists.
fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes what test processes that are gone left behind: containers, networks and volumes
/// labelled [`PID_LABEL`], and images tagged `…:grt<pid>`.
pub fn sweep_stale() {
    let me = std::process::id();
    let stale = |pid: &str| {
        pid.trim()
            .parse::<u32>()
            .is_ok_and(|p| p != me && !pid_alive(p))
    };
    let label = format!("{{{{.Label \"{PID_LABEL}\"}}}}");
    let filter = format!("label={PID_LABEL}");
    let list = |kind: &[&str], format: &str| -> Vec<(String, String)> {
        let mut args: Vec<&str> = kind.to_vec();
        args.extend(["--filter", &filter, "--format", format]);
        docker(&args)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())))
            .collect()
    };
    for (id, pid) in list(&["ps", "-a"], &format!("{{{{.ID}}}} {label}")) {
        if stale(&pid) {
            let _ = docker(&["rm", "-f", "-v", &id]);
        }
    }
    for (id, pid) in list(&["network", "ls"], &format!("{{{{.ID}}}} {label}")) {
        if stale(&pid) {
            let _ = docker(&["network", "rm", &id]);
        }
    }
    for (name, pid) in list(&["volume", "ls"], &format!("{{{{.Name}}}} {label}")) {
        if stale(&pid) {
            let _ = docker(&["volume", "rm", "-f", &name]);
        }
    }
    let images = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]).unwrap_or_default();
    for image in images.lines() {
        if let Some(pid) = image.rsplit_once(":grt").map(|(_, p)| p) {
            if stale(pid) {
                let _ = docker(&["image", "rm", "-f", image]);
            }
        }
    }
}

/// A compose project started by a test.
#[derive(Debug, Clone)]
struct Project {
    name: String,
    files: Vec<PathBuf>,
    env: Vec<(String, String)>,
}

/// The objects one test made; all removed on drop, in dependency order.
#[derive(Debug)]
pub struct Docker {
    prefix: String,
    compose: Option<Vec<String>>,
    containers: Mutex<Vec<String>>,
    networks: Mutex<Vec<String>>,
    volumes: Mutex<Vec<String>>,
    images: Mutex<Vec<String>>,
    projects: Mutex<Vec<Project>>,
}

impl Docker {
    /// A guard for objects named `grt<pid>-<label>-…`; sweeps stale runs first.
    pub fn new(label: &str) -> Docker {
        sweep_stale();
        Docker {
            prefix: format!("grt{}-{label}", std::process::id()),
            compose: compose_command(),
            containers: Mutex::default(),
            networks: Mutex::default(),
            volumes: Mutex::default(),
            images: Mutex::default(),
            projects: Mutex::default(),
        }
    }

    /// `grt<pid>-<label>-<name>`.
    pub fn name(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// The tag every image of this process gets: `grt<pid>`.
    pub fn image_tag(repository: &str) -> String {
        format!("{repository}:grt{}", std::process::id())
    }

    /// `--label grelay.test.pid=<pid>`, for `docker run` and `docker network create`.
    pub fn label_args() -> [String; 2] {
        [
            "--label".into(),
            format!("{PID_LABEL}={}", std::process::id()),
        ]
    }

    /// Whether a compose command exists.
    pub fn has_compose(&self) -> bool {
        self.compose.is_some()
    }

    /// Notes an image tag to remove at the end.
    pub fn own_image(&self, tag: &str) {
        self.images.lock().expect("lock").push(tag.to_owned());
    }

    /// Notes a container to remove at the end.
    pub fn own_container(&self, id: &str) {
        self.containers.lock().expect("lock").push(id.to_owned());
    }

    /// Notes a volume to remove at the end.
    pub fn own_volume(&self, name: &str) {
        self.volumes.lock().expect("lock").push(name.to_owned());
    }

    /// Creates a bridge network `name(label)` with `subnet`; `internal` ones have no way out.
    /// Returns its name.
    pub fn network(&self, label: &str, subnet: &str, internal: bool) -> Result<String> {
        let name = self.name(label);
        let [l, v] = Self::label_args();
        let mut args = vec![
            "network", "create", "--driver", "bridge", "--subnet", subnet,
        ];
        args.extend([l.as_str(), v.as_str()]);
        if internal {
            args.push("--internal");
        }
        args.push(&name);
        docker(&args)?;
        self.networks.lock().expect("lock").push(name.clone());
        Ok(name)
    }

    /// `docker run -d --name name(label) --label … args…`; returns the container's name.
    pub fn run_detached(&self, label: &str, args: &[&str]) -> Result<String> {
        let name = self.name(label);
        let [l, v] = Self::label_args();
        let mut all = vec!["run", "-d", "--name", &name, l.as_str(), v.as_str()];
        all.extend(args);
        // Noted before it runs, so that a half-made container is removed too.
        self.own_container(&name);
        docker(&all)?;
        Ok(name)
    }

    /// Runs compose for project `name(label)` with `files` and `env`, then `args`.
    pub fn compose(
        &self,
        label: &str,
        files: &[&Path],
        env: &[(String, String)],
        args: &[&str],
    ) -> Result<Output> {
        let Some(command) = &self.compose else {
            return Err(Failed(
                "no compose: install docker-compose (Debian) or the compose plugin".into(),
            ));
        };
        let project = self.name(label);
        {
            let mut projects = self.projects.lock().expect("lock");
            if !projects.iter().any(|p| p.name == project) {
                projects.push(Project {
                    name: project.clone(),
                    files: files.iter().map(|f| f.to_path_buf()).collect(),
                    env: env.to_vec(),
                });
            }
        }
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        let mut all: Vec<&str> = command[1..].iter().map(String::as_str).collect();
        all.extend(["-p", &project]);
        for f in &files {
            all.extend(["-f", f.as_str()]);
        }
        all.extend(args);
        let out = run(&command[0], &all, env, None, COMMAND_TIMEOUT)?;
        if out.ok() {
            Ok(out)
        } else {
            Err(Failed(format!(
                "compose {} failed: {}{}",
                args.join(" "),
                out.stdout,
                out.stderr
            )))
        }
    }

    /// Removes everything now (also done on drop); errors are printed, not returned.
    pub fn cleanup(&self) {
        let projects = std::mem::take(&mut *self.projects.lock().expect("lock"));
        for p in projects {
            if let Some(command) = &self.compose {
                let files: Vec<String> = p.files.iter().map(|f| f.display().to_string()).collect();
                let mut all: Vec<&str> = command[1..].iter().map(String::as_str).collect();
                all.extend(["-p", &p.name]);
                for f in &files {
                    all.extend(["-f", f.as_str()]);
                }
                all.extend(["down", "-v", "--remove-orphans", "-t", "1"]);
                match run(&command[0], &all, &p.env, None, COMMAND_TIMEOUT) {
                    Ok(o) if o.ok() => {}
                    Ok(o) => eprintln!("docker: compose down {}: {}", p.name, o.stderr.trim()),
                    Err(e) => eprintln!("docker: compose down {}: {e}", p.name),
                }
            }
        }
        for c in std::mem::take(&mut *self.containers.lock().expect("lock")) {
            let _ = docker(&["rm", "-f", "-v", &c]);
        }
        for n in std::mem::take(&mut *self.networks.lock().expect("lock")) {
            if let Err(e) = docker(&["network", "rm", &n]) {
                eprintln!("docker: {e}");
            }
        }
        for v in std::mem::take(&mut *self.volumes.lock().expect("lock")) {
            let _ = docker(&["volume", "rm", "-f", &v]);
        }
        for i in std::mem::take(&mut *self.images.lock().expect("lock")) {
            let _ = docker(&["image", "rm", "-f", &i]);
        }
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// `docker inspect -f FORMAT target`, trimmed.
pub fn inspect(target: &str, format: &str) -> Result<String> {
    docker(&["inspect", "-f", format, target]).map(|s| s.trim().to_owned())
}

/// The main process's pid of a running container (for `nsenter`).
pub fn pid_of(container: &str) -> Result<u32> {
    let pid = inspect(container, "{{.State.Pid}}")?;
    pid.parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Failed(format!("{container} is not running (pid {pid:?})")))
}

/// Runs `args` in the network namespace of `container` with the host's tools
/// (`nsenter -t PID -n`), feeding `stdin`; an error unless it exits 0.
pub fn in_netns(container: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let pid = pid_of(container)?.to_string();
    let mut all = vec!["-t", pid.as_str(), "-n", "--"];
    all.extend(args);
    let out = run(
        "nsenter",
        &all,
        &[],
        stdin.map(str::as_bytes),
        Duration::from_secs(20),
    )?;
    if out.ok() {
        Ok(out.stdout)
    } else {
        Err(Failed(format!(
            "in {container}: {} failed: {}",
            args.join(" "),
            out.stderr.trim()
        )))
    }
}

/// The container's address on `network`.
pub fn address_on(container: &str, network: &str) -> Result<String> {
    inspect(
        container,
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
    )
}

/// Builds image `tag` from `files` (host path → absolute path in the image) and the shared
/// libraries `ldd` names for them, with no base image (`docker import`). Debug information is
/// stripped from copies of the binaries. `changes` are `docker import --change` lines.
pub fn import_image(tag: &str, files: &[(&Path, &str)], changes: &[&str]) -> Result<()> {
    let stage = std::env::temp_dir().join(format!(
        "grt-{}-image-{}",
        std::process::id(),
        tag.replace([':', '/'], "-")
    ));
    let _ = std::fs::remove_dir_all(&stage);
    let io = |what: &str, e: std::io::Error| Failed(format!("{what}: {e}"));
    std::fs::create_dir_all(&stage).map_err(|e| io("creating the stage", e))?;
    let result = (|| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&stage, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| io("chmod", e))?;
        for dir in ["run", "tmp", "etc"] {
            std::fs::create_dir_all(stage.join(dir)).map_err(|e| io("mkdir", e))?;
        }
        let put = |from: &Path, to: &str| -> Result<()> {
            let dest = stage.join(to.trim_start_matches('/'));
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io("mkdir", e))?;
            }
            std::fs::copy(from, &dest)
                .map_err(|e| io(&format!("copying {}", from.display()), e))?;
            Ok(())
        };
        for (from, to) in files {
            put(from, to)?;
            let _ = run(
                "strip",
                &[
                    "--strip-debug",
                    &stage.join(to.trim_start_matches('/')).display().to_string(),
                ],
                &[],
                None,
                Duration::from_secs(60),
            );
            let ldd = run(
                "ldd",
                &[&from.display().to_string()],
                &[],
                None,
                Duration::from_secs(20),
            )?;
            for lib in ldd.stdout.split_whitespace().filter(|w| w.starts_with('/')) {
                put(Path::new(lib), lib)?;
            }
        }
        let stage_text = stage.display().to_string();
        let archive = format!("{stage_text}.tar");
        let out = run(
            "tar",
            &["--numeric-owner", "-C", &stage_text, "-cf", &archive, "."],
            &[],
            None,
            Duration::from_secs(60),
        )?;
        if !out.ok() {
            return Err(Failed(format!("tar: {}", out.stderr)));
        }
        let mut args = vec!["import".to_owned()];
        for c in changes {
            args.push("--change".into());
            args.push((*c).to_owned());
        }
        args.push(archive.clone());
        args.push(tag.to_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let imported = docker(&args);
        let _ = std::fs::remove_file(&archive);
        imported.map(|_| ())
    })();
    let _ = std::fs::remove_dir_all(&stage);
    result
}

/// One HTTP GET (HTTP/1.1, `Connection: close`): status code and body.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let fail = |e: std::io::Error| Failed(format!("GET http://{addr}{path}: {e}"));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(fail)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(fail)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(fail)?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(fail)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Failed(format!("GET http://{addr}{path}: no status in {head:?}")))?;
    Ok((code, body.to_owned()))
}

/// The value of the sample `series` (name with its labels exactly as encoded, e.g.
/// `grelay_gateway_drops_total{reason="malformed"}`) in a Prometheus/OpenMetrics text.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_reads_exact_series() {
        let text =
            "# TYPE x counter\nx_total{reason=\"a\"} 3\nx_total{reason=\"ab\"} 4\nx_total 7\n";
        assert_eq!(sample(text, "x_total{reason=\"a\"}"), Some(3.0));
        assert_eq!(sample(text, "x_total{reason=\"ab\"}"), Some(4.0));
        assert_eq!(sample(text, "x_total"), Some(7.0));
        assert_eq!(sample(text, "y"), None);
    }
}
