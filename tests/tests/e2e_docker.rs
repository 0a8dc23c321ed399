//! The gateway's container image and compose stack, with the real Docker engine.
//!
//! ```text
//!   alice (container, wan) ───────────────┐             host 198.18.X.1 (wan bridge)
//!                                         ├─ UDP 4747 ─► published port (docker-proxy)
//!   bob (container, lan) ─ nat (container,│                        │
//!        default via nat    masquerade) ──┘                        ▼
//!                                              gateway (compose, non-root, gw network)
//!                                                      │ game network (internal)
//!                                                      ▼
//!                                              game server (grt-udp reflect)
//! ```
//!
//! One test builds the image offline with `deploy/gateway/build.sh` from the debug binary
//! (`target/debug`, stripped of debug info: one build shared with the other tests, no
//! `--release` on two cores; the image then holds an unoptimised binary — fine for a
//! function test, not for a benchmark), starts `deploy/compose.yaml` with a test override
//! (test networks, the ports published only on the test bridge's host address, health checks
//! every second), and checks, in order:
//!
//! 1. the health check turns `healthy`; the private key was generated on the first start;
//! 2. both clients (`grelay up` in containers, one behind a NAT container) get their
//!    addresses, reach the game server through the gateway's NAT and each other through the
//!    relay;
//! 3. `/metrics` matches what was sent: sessions, completed handshakes (the clients' own
//!    counts), one initiation from an unknown key and one with a bad MAC (rejected by reason),
//!    five garbage datagrams (`malformed`), silence towards all of them, and the packets and
//!    bytes of ten probes through the TUN;
//! 4. SIGHUP (`docker kill -s HUP`) after adding a client to the mounted file: served at once;
//!    `docker restart`: both clients pass traffic again within 5 s, same addresses;
//! 5. `docker kill -s KILL`, then start: the state file is byte for byte the one before, the
//!    addresses are unchanged;
//! 6. `docker stop`: exit status 0 within 2 s;
//! 7. the image run with a listen address the container does not have: `unhealthy`, and
//!    `/healthz` says why;
//! 8. everything the test made is gone (containers, networks, volume, image tags).
//!
//! Needs root, a running Docker engine, compose (`docker compose` or Debian's
//! `docker-compose`), `nsenter` (util-linux), `ip` (iproute2), `nft` (nftables), `setcap`
//! (libcap2-bin) and `strip` (binutils). Without an engine the test prints why and passes,
//! unless `GRELAY_REQUIRE_DOCKER=1` (CI on a Docker machine sets it), when it fails.

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use grelay_proto::crypto::keys::{PublicKey, StaticSecret};
use grelay_proto::tunnel::client::{Client, ClientConfig};
use grelay_tests::docker::{self, Docker, docker, in_netns, inspect};
use grelay_tests::netns::Scratch;
use grelay_tests::netns::wait_until;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const UDP_TOOL: &str = env!("CARGO_BIN_EXE_grt-udp");
const GAME_PORT: u16 = 5000;
const RELAY_PORT: u16 = 6000;
/// How long building a binary may take (a cold build on two cores).
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lies in the workspace")
        .to_path_buf()
}

/// `$GRELAY_BIN_DIR/<bin>`, or `<bin>` of `package` after a bounded `cargo build` (debug).
fn built_bin(package: &str, bin: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("GRELAY_BIN_DIR") {
        let path = Path::new(&dir).join(bin);
        assert!(path.exists(), "GRELAY_BIN_DIR has no {bin}");
        return path;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--locked", "-p", package, "--bin", bin])
        .current_dir(workspace());
    // As in e2e_gateway_smoke: do not pass this package's variables on to the build.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || matches!(
                &*name,
                "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "OUT_DIR"
            )
        {
            command.env_remove(&*name);
        }
    }
    let mut child = command.spawn().expect("running cargo build");
    let deadline = Instant::now() + BUILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for cargo build") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cargo build -p {package} took more than {BUILD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "cargo build -p {package} failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace().join("target"), |t| workspace().join(t));
    target.join("debug").join(bin)
}

/// Whether the engine (and compose) are there; without them the test is skipped with a
/// message, or fails under `GRELAY_REQUIRE_DOCKER=1`.
fn docker_ready() -> bool {
    let required = std::env::var("GRELAY_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let why = if !root {
        Some("not root")
    } else if !docker::engine_available() {
        Some("`docker info` fails: no Docker engine")
    } else if docker::compose_command().is_none() {
        Some("neither `docker compose` nor `docker-compose` (Debian: docker-compose)")
    } else {
        None
    };
    match why {
        None => true,
        Some(why) if required => panic!("GRELAY_REQUIRE_DOCKER=1 but {why}"),
        Some(why) => {
            eprintln!("e2e_docker: skipped: {why} (GRELAY_REQUIRE_DOCKER=1 makes this fail)");
            false
        }
    }
}

fn secret(n: u8) -> StaticSecret {
    StaticSecret::from_bytes([n; 32])
}

fn write_file(path: &Path, contents: &str, mode: u32) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?
        .write_all(contents.as_bytes())
}

/// Picks `X` for 198.18.X.0/24 (and 198.19.X.0/24) that no network on the engine uses, and
/// creates the wan network with it; the subnet depends on the pid so parallel runs differ.
fn wan_network(d: &Docker) -> Result<(String, u8), docker::Failed> {
    let start = 100 + (std::process::id() % 150) as u8;
    let mut last = None;
    for i in 0..20u8 {
        let x = 100 + (start - 100 + i) % 150;
        match d.network("wan", &format!("198.18.{x}.0/24"), false) {
            Ok(name) => return Ok((name, x)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("tried"))
}

/// `docker logs` of a container, both streams.
fn logs(container: &str) -> String {
    docker::run(
        "docker",
        &["logs", container],
        &[],
        None,
        docker::COMMAND_TIMEOUT,
    )
    .map(|o| format!("{}{}", o.stdout, o.stderr))
    .unwrap_or_else(|e| e.to_string())
}

/// `grt-udp probe` from `container` to `dest`: the answer (the address the far end saw).
fn probe(container: &str, dest: &str) -> Option<String> {
    docker(&[
        "exec",
        container,
        "/usr/bin/grt-udp",
        "probe",
        "0.0.0.0:0",
        dest,
    ])
    .ok()
    .map(|s| s.trim().to_owned())
}

/// The tunnel addresses on `grelay0` in `container` (`ip -br addr`).
fn tunnel_addresses(container: &str) -> String {
    in_netns(container, &["ip", "-br", "addr", "show", "grelay0"], None).unwrap_or_default()
}

/// A number field of `grelay status --json` in `container`.
fn client_status(container: &str, field: &str) -> Option<u64> {
    let json = docker(&[
        "exec",
        container,
        "/usr/bin/grelay",
        "--run-dir",
        "/run/grelay",
        "status",
        "--json",
    ])
    .ok()?;
    let key = format!("\"{field}\":");
    let rest = json[json.find(&key)? + key.len()..].trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `grelay up` in a client container, run through `docker exec` with its log in a file.
struct ClientProcess {
    child: Child,
    log: PathBuf,
}

impl ClientProcess {
    fn start(container: &str, log: PathBuf) -> std::io::Result<Self> {
        let file = std::fs::File::create(&log)?;
        let child = Command::new("docker")
            .args([
                "exec",
                container,
                "/usr/bin/grelay",
                "--run-dir",
                "/run/grelay",
                "--log-level",
                "debug",
                "up",
                "/cfg/client.toml",
            ])
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()?;
        Ok(ClientProcess { child, log })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ClientProcess {
    fn drop(&mut self) {
        // The process inside goes with its container; this ends the `docker exec` client.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client container that keeps game traffic flowing (so that its RTT probes run) and notes
/// when its probes to the game server got answers.
struct Player {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Instant>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Player {
    fn start(container: String, dest: String) -> Player {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let (s, a) = (Arc::clone(&stop), Arc::clone(&answers));
        let deadline = Instant::now() + Duration::from_secs(240);
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
                if probe(&container, &dest).is_some() {
                    a.lock().expect("lock").push(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Player {
            stop,
            answers,
            thread: Some(thread),
        }
    }

    /// The first answer at or after `since`, waiting up to `timeout` for it.
    fn answered_after(&self, since: Instant, timeout: Duration) -> Option<Instant> {
        let mut found = None;
        wait_until(timeout, || {
            found = self
                .answers
                .lock()
                .expect("lock")
                .iter()
                .copied()
                .find(|t| *t >= since);
            found.is_some()
        });
        found
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Scrapes `/metrics`; panics with the reason when it cannot.
fn scrape(addr: SocketAddr) -> String {
    let (code, body) = docker::http_get(addr, "/metrics").expect("scraping /metrics");
    assert_eq!(code, 200, "{body}");
    body
}

fn value(text: &str, series: &str) -> f64 {
    docker::sample(text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// The first handshake initiation of a client with `key` towards a gateway whose key the
/// client believes is `gateway_key`.
fn initiation(key: StaticSecret, gateway_key: PublicKey, dest: SocketAddr) -> Vec<u8> {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    let config = ClientConfig::new(key, gateway_key, dest, unix);
    let mut client = Client::new(config, Instant::now(), [7; 32]);
    client
        .poll_transmit()
        .expect("a new client sends an initiation")
        .contents
        .to_vec()
}

/// Copies a file out of a container (running or not).
fn copy_out(container: &str, path: &str, to: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let _ = std::fs::remove_file(to);
    docker(&[
        "cp",
        &format!("{container}:{path}"),
        &to.display().to_string(),
    ])?;
    Ok(std::fs::read_to_string(to)?)
}

static SUMMARY: OnceLock<Mutex<Vec<String>>> = OnceLock::new();

/// Notes a measured number for the final summary line (and prints it now).
fn note(line: String) {
    eprintln!("e2e_docker: {line}");
    SUMMARY
        .get_or_init(Mutex::default)
        .lock()
        .expect("lock")
        .push(line);
}

#[test]
fn gateway_image_and_compose_stack_end_to_end() -> TestResult {
    if !docker_ready() {
        return Ok(());
    }
    let scratch = Scratch::new("docker")?;
    let d = Docker::new("e2e");
    let pid = std::process::id();

    // --- Images, offline. -------------------------------------------------------------------
    let gateway_bin = built_bin("grelay-gateway", "grelay-gateway");
    let client_bin = built_bin("grelay-client", "grelay");
    let gw_image = Docker::image_tag("grelay-gateway");
    d.own_image(&gw_image);
    let started = Instant::now();
    let build = docker::run(
        "bash",
        &[
            &workspace()
                .join("deploy/gateway/build.sh")
                .display()
                .to_string(),
            "--binary",
            &gateway_bin.display().to_string(),
            "--tag",
            &gw_image,
        ],
        &[],
        None,
        Duration::from_secs(300),
    )?;
    assert!(
        build.ok(),
        "build.sh failed: {}{}",
        build.stdout,
        build.stderr
    );
    let size: u64 = inspect(&gw_image, "{{.Size}}")?.parse()?;
    note(format!(
        "image {gw_image} built in {:.1}s, {:.1} MB (debug binary, debug info stripped)",
        started.elapsed().as_secs_f64(),
        size as f64 / 1e6
    ));
    let tools = Docker::image_tag("grt-tools");
    d.own_image(&tools);
    let label = format!("LABEL {}={pid}", docker::PID_LABEL);
    docker::import_image(
        &tools,
        &[
            (Path::new(UDP_TOOL), "/usr/bin/grt-udp"),
            (&client_bin, "/usr/bin/grelay"),
            (Path::new("/bin/sleep"), "/usr/bin/sleep"),
        ],
        &[
            "ENTRYPOINT [\"/usr/bin/sleep\"]",
            "CMD [\"900\"]",
            label.as_str(),
        ],
    )?;

    // --- Networks: the "internet" (wan), the gateway's own, the game's and a home LAN. -------
    let (wan, x) = wan_network(&d)?;
    let gw_net = d.network("gw", &format!("198.19.{x}.0/26"), false)?;
    let game_net = d.network("game", &format!("198.19.{x}.64/26"), true)?;
    // Not `--internal`: Docker's rules for internal networks drop even bridged frames to
    // addresses outside the subnet, which is all that bob sends (to its NAT box).
    let lan = d.network("lan", &format!("198.19.{x}.128/26"), false)?;
    let public_ip = format!("198.18.{x}.1");
    let endpoint: SocketAddr = format!("{public_ip}:4747").parse()?;
    let metrics_addr: SocketAddr = format!("{public_ip}:9477").parse()?;

    // A private 0666 copy of the TUN device node, so that the gateway runs as uid 65532 even
    // where the host's /dev/net/tun is 0600 (as here); the host's node is not touched.
    let tun = scratch.file("tun");
    let mknod = docker::run(
        "mknod",
        &["-m", "0666", &tun.display().to_string(), "c", "10", "200"],
        &[],
        None,
        Duration::from_secs(5),
    )?;
    assert!(mknod.ok(), "mknod: {}", mknod.stderr);

    // --- The compose stack. -----------------------------------------------------------------
    let (alice_key, bob_key) = (secret(10), secret(11));
    let config = scratch.file("gateway.toml");
    write_file(
        &config,
        &format!(
            "listen = \"0.0.0.0:4747\"\nprivate_key_file = \"/var/lib/grelay/gateway.key\"\n\
             state_file = \"/var/lib/grelay/state.json\"\n[tunnel]\nmtu = 1300\n\
             [egress]\nmode = \"nat\"\n\
             [[clients]]\nname = \"alice\"\npublic_key = \"{}\"\n\
             [[clients]]\nname = \"bob\"\npublic_key = \"{}\"\n",
            alice_key.public_key(),
            bob_key.public_key()
        ),
        0o644,
    )?;
    let override_file = scratch.file("compose.test.yaml");
    write_file(
        &override_file,
        &format!(
            "services:\n  gateway:\n    labels:\n      {label_key}: \"{pid}\"\n    networks:\n\
             \x20     - default\n      - game\n    healthcheck:\n      interval: 1s\n\
             \x20     start_period: 1s\n\
             networks:\n  default:\n    external: true\n    name: {gw_net}\n  game:\n\
             \x20   external: true\n    name: {game_net}\n\
             volumes:\n  state:\n    labels:\n      {label_key}: \"{pid}\"\n",
            label_key = docker::PID_LABEL
        ),
        0o644,
    )?;
    let compose_file = workspace().join("deploy/compose.yaml");
    let files = [compose_file.as_path(), override_file.as_path()];
    let env: Vec<(String, String)> = [
        ("GRELAY_IMAGE", gw_image.clone()),
        ("GRELAY_PUBLISH_IP", public_ip.clone()),
        ("GRELAY_METRICS_PUBLISH", metrics_addr.to_string()),
        ("GRELAY_CONFIG", config.display().to_string()),
        ("GRELAY_TUN_DEVICE", tun.display().to_string()),
        ("RUST_LOG", "info,grelay_gateway=debug".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let started = Instant::now();
    d.compose("stack", &files, &env, &["up", "-d"])?;
    let gw = d
        .compose("stack", &files, &env, &["ps", "-q", "gateway"])?
        .stdout
        .trim()
        .to_owned();
    assert!(!gw.is_empty(), "compose started no gateway");
    let health = || inspect(&gw, "{{.State.Health.Status}}").unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(30), || health() == "healthy"),
        "not healthy ({}): {}",
        health(),
        logs(&gw)
    );
    note(format!(
        "compose up to healthy: {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    assert_eq!(inspect(&gw, "{{.Config.User}}")?, "65532:65532");
    let gw_log = logs(&gw);
    assert!(gw_log.contains("generated a new private key"), "{gw_log}");
    let at = gw_log
        .find("public key ")
        .ok_or("no public key in the log")?
        + "public key ".len();
    let gateway_key: PublicKey = gw_log[at..at + 44].parse().map_err(|_| "bad public key")?;
    let (code, body) = docker::http_get(metrics_addr, "/healthz")?;
    assert_eq!(code, 200, "{body}");

    // --- The game server, the NAT box and two clients. ---------------------------------------
    let game = d.run_detached("game", &["--network", &game_net, &tools])?;
    docker(&[
        "exec",
        "-d",
        &game,
        "/usr/bin/grt-udp",
        "reflect",
        &format!("0.0.0.0:{GAME_PORT}"),
    ])?;
    let game_ip = docker::address_on(&game, &game_net)?;
    let gw_game_ip = docker::address_on(&gw, &game_net)?;
    let game_dest = format!("{game_ip}:{GAME_PORT}");

    let nat = d.run_detached(
        "nat",
        &[
            "--network",
            &wan,
            "--sysctl",
            "net.ipv4.ip_forward=1",
            &tools,
        ],
    )?;
    docker(&["network", "connect", &lan, &nat])?;
    let nat_wan_ip = docker::address_on(&nat, &wan)?;
    let nat_lan_ip = docker::address_on(&nat, &lan)?;
    let addrs = in_netns(&nat, &["ip", "-o", "-4", "addr", "show"], None)?;
    let wan_if = addrs
        .lines()
        .find(|l| l.contains(&format!("inet {nat_wan_ip}/")))
        .and_then(|l| l.split_whitespace().nth(1))
        .ok_or("no wan interface in the NAT container")?
        .to_owned();
    in_netns(
        &nat,
        &["nft", "-f", "-"],
        Some(&format!(
            "table ip grt_nat {{\n chain post {{\n  type nat hook postrouting priority srcnat; \
             policy accept;\n  oifname \"{wan_if}\" masquerade\n }}\n}}\n"
        )),
    )?;

    let mut clients = Vec::new();
    let mut names = Vec::new();
    for (name, key, network) in [("alice", &alice_key, &wan), ("bob", &bob_key, &lan)] {
        let dir = scratch.file(name);
        std::fs::create_dir_all(&dir)?;
        write_file(&dir.join("client.key"), &key.to_base64(), 0o600)?;
        write_file(
            &dir.join("client.toml"),
            &format!(
                "[interface]\nname = \"grelay0\"\nprivate_key_file = \"client.key\"\nmtu = 1300\n\
                 [gateway]\nendpoint = \"{endpoint}\"\npublic_key = \"{gateway_key}\"\n\
                 [routes]\nprefixes = [\"198.19.{x}.64/26\", \"10.77.0.0/16\"]\n"
            ),
            0o644,
        )?;
        let container = d.run_detached(
            name,
            &[
                "--network",
                network,
                "--cap-add",
                "NET_ADMIN",
                "--cap-add",
                "NET_RAW",
                // Docker turns IPv6 off on networks without it; the tunnel carries IPv6 too.
                "--sysctl",
                "net.ipv6.conf.all.disable_ipv6=0",
                "--device",
                &format!("{}:/dev/net/tun", tun.display()),
                "-v",
                &format!("{}:/cfg:ro", dir.display()),
                &tools,
            ],
        )?;
        if name == "bob" {
            in_netns(
                &container,
                &["ip", "route", "replace", "default", "via", &nat_lan_ip],
                None,
            )?;
        }
        clients.push(ClientProcess::start(
            &container,
            scratch.file(&format!("{name}.log")),
        )?);
        names.push(container);
    }
    let (alice, bob) = (names[0].clone(), names[1].clone());
    for (container, address, client) in [
        (&alice, "10.77.0.2/16", &clients[0]),
        (&bob, "10.77.0.3/16", &clients[1]),
    ] {
        assert!(
            wait_until(Duration::from_secs(20), || tunnel_addresses(container)
                .contains(address)),
            "{container}: no {address}: {}\ngateway: {}",
            client.log(),
            logs(&gw)
        );
    }

    // --- Traffic: to the game server through the gateway's NAT, and client to client. -------
    for container in [&alice, &bob] {
        let seen = probe(container, &game_dest)
            .ok_or_else(|| format!("{container}: no answer from the game server"))?;
        assert!(
            seen.starts_with(&format!("{gw_game_ip}:")),
            "the game server saw {seen}, not the gateway's {gw_game_ip}"
        );
    }
    docker(&[
        "exec",
        "-d",
        &bob,
        "/usr/bin/grt-udp",
        "reflect",
        &format!("0.0.0.0:{RELAY_PORT}"),
    ])?;
    let seen = probe(&alice, &format!("10.77.0.3:{RELAY_PORT}")).ok_or("alice cannot reach bob")?;
    assert!(seen.starts_with("10.77.0.2:"), "bob saw {seen}");
    let log = logs(&gw);
    assert!(log.contains("client alice connected from"), "{log}");
    assert!(log.contains("client bob connected from"), "{log}");

    // --- Metrics match what was sent. --------------------------------------------------------
    let m = scrape(metrics_addr);
    assert_eq!(value(&m, "grelay_gateway_up"), 1.0);
    assert_eq!(value(&m, "grelay_gateway_clients"), 2.0);
    assert_eq!(value(&m, "grelay_gateway_clients_connected"), 2.0);
    assert_eq!(value(&m, "grelay_gateway_sessions{transport=\"udp\"}"), 2.0);
    let client_handshakes: u64 = [&alice, &bob]
        .iter()
        .map(|c| client_status(c, "handshakes").unwrap_or(0))
        .sum();
    assert_eq!(
        value(&m, "grelay_gateway_handshakes_completed_total"),
        client_handshakes as f64,
        "completed handshakes differ from the clients' own count"
    );
    assert!(
        value(&m, "grelay_gateway_relay_packets_total") >= 2.0,
        "{m}"
    );

    // Strangers, from the host through the published port: five garbage datagrams, one
    // initiation from a key the gateway does not know, one made for another gateway key.
    let stranger = UdpSocket::bind("0.0.0.0:0")?;
    stranger.set_read_timeout(Some(Duration::from_millis(200)))?;
    for _ in 0..5 {
        stranger.send_to(&[0xff; 100], endpoint)?;
    }
    stranger.send_to(&initiation(secret(66), gateway_key, endpoint), endpoint)?;
    stranger.send_to(
        &initiation(secret(67), secret(99).public_key(), endpoint),
        endpoint,
    )?;
    let series = |name: &str, reason: &str| format!("grelay_gateway_{name}{{reason=\"{reason}\"}}");
    let dropped = wait_until(Duration::from_secs(5), || {
        let m = scrape(metrics_addr);
        docker::sample(&m, &series("drops_total", "malformed")) == Some(5.0)
            && docker::sample(&m, &series("handshakes_rejected_total", "bad_mac")) == Some(1.0)
    });
    let m = scrape(metrics_addr);
    assert!(dropped, "{m}");
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        assert!(
            stranger.recv_from(&mut buf).is_err(),
            "the gateway answered a stranger"
        );
    }
    assert_eq!(value(&m, &series("drops_total", "malformed")), 5.0);
    assert_eq!(
        value(&m, &series("handshakes_rejected_total", "unknown_key")),
        1.0
    );
    assert_eq!(
        value(&m, &series("handshakes_rejected_total", "bad_mac")),
        1.0
    );
    assert_eq!(value(&m, &series("drops_total", "unknown_key")), 1.0);
    assert_eq!(value(&m, &series("drops_total", "bad_mac")), 1.0);
    assert_eq!(value(&m, "grelay_gateway_cookie_replies_total"), 0.0);

    // Ten probes through the tunnel: ten inner packets written to the TUN, counted each way.
    let before = scrape(metrics_addr);
    for _ in 0..10 {
        probe(&alice, &game_dest).ok_or("a probe got no answer")?;
    }
    let after = scrape(metrics_addr);
    let delta = |s: &str| value(&after, s) - value(&before, s);
    let to_tun = delta("grelay_gateway_tun_packets_total{direction=\"tx\"}");
    assert!(
        (10.0..=14.0).contains(&to_tun),
        "{to_tun} packets to the TUN for 10 probes"
    );
    assert!(delta("grelay_gateway_tun_packets_total{direction=\"rx\"}") >= 10.0);
    assert!(delta("grelay_gateway_tun_bytes_total{direction=\"tx\"}") >= 10.0 * 33.0);
    assert!(delta("grelay_gateway_tunnel_packets_total{direction=\"rx\"}") >= 10.0);
    assert!(delta("grelay_gateway_tunnel_packets_total{direction=\"tx\"}") >= 10.0);
    assert!(
        delta("grelay_gateway_udp_bytes_total{direction=\"rx\"}")
            >= delta("grelay_gateway_tun_bytes_total{direction=\"tx\"}")
    );
    note(format!(
        "metrics: {} handshakes, drops malformed=5 unknown_key=1 bad_mac=1, {to_tun} TUN packets for 10 probes",
        client_handshakes
    ));

    // --- SIGHUP: a client added to the mounted file is served at once. ----------------------
    // Rewritten in place: a single-file bind mount keeps the old inode if the file is replaced.
    let text = std::fs::read_to_string(&config)?;
    std::fs::write(
        &config,
        format!(
            "{text}[[clients]]\nname = \"carol\"\npublic_key = \"{}\"\n",
            secret(12).public_key()
        ),
    )?;
    docker(&["kill", "-s", "HUP", &gw])?;
    assert!(
        wait_until(Duration::from_secs(10), || logs(&gw)
            .contains("client carol added: 10.77.0.4/16")),
        "no reload: {}",
        logs(&gw)
    );
    assert_eq!(value(&scrape(metrics_addr), "grelay_gateway_clients"), 3.0);

    // --- docker restart: clients back within 5 s with the same addresses. -------------------
    let state_before = copy_out(
        &gw,
        "/var/lib/grelay/state.json",
        &scratch.file("state0.json"),
    )?;
    assert!(state_before.contains("10.77.0.2") && state_before.contains("10.77.0.3"));
    let players = [
        Player::start(alice.clone(), game_dest.clone()),
        Player::start(bob.clone(), game_dest.clone()),
    ];
    let asked = Instant::now();
    docker(&["restart", "-t", "5", &gw])?;
    let restarted = Instant::now();
    note(format!(
        "docker restart returned after {:.2}s",
        (restarted - asked).as_secs_f64()
    ));
    for (player, name) in players.iter().zip(["alice", "bob"]) {
        let back = player
            .answered_after(restarted, Duration::from_secs(15))
            .ok_or_else(|| format!("{name} not back after the restart: {}", logs(&gw)))?;
        let took = back - restarted;
        note(format!(
            "after restart: {name} passes traffic again {:.2}s after the restart returned \
             ({:.2}s after it was asked)",
            took.as_secs_f64(),
            (back - asked).as_secs_f64()
        ));
        assert!(took <= Duration::from_secs(5), "{name} took {took:?}");
    }
    assert!(tunnel_addresses(&alice).contains("10.77.0.2/16"));
    assert!(tunnel_addresses(&bob).contains("10.77.0.3/16"));
    let m = scrape(metrics_addr);
    assert_eq!(value(&m, "grelay_gateway_clients_connected"), 2.0);

    // --- docker kill -s KILL: the state file survives, addresses stay. ----------------------
    docker(&["kill", "-s", "KILL", &gw])?;
    wait_until(Duration::from_secs(10), || {
        inspect(&gw, "{{.State.Running}}").is_ok_and(|r| r == "false")
            || inspect(&gw, "{{.RestartCount}}").is_ok_and(|c| c != "0")
    });
    let killed = Instant::now();
    if inspect(&gw, "{{.State.Running}}")? == "false" {
        docker(&["start", &gw])?;
    }
    assert!(
        wait_until(Duration::from_secs(30), || health() == "healthy"),
        "not healthy after the kill: {}",
        logs(&gw)
    );
    let state_after = copy_out(
        &gw,
        "/var/lib/grelay/state.json",
        &scratch.file("state1.json"),
    )?;
    assert_eq!(
        state_after, state_before,
        "the address book changed across a SIGKILL"
    );
    for (player, name) in players.iter().zip(["alice", "bob"]) {
        let back = player
            .answered_after(killed, Duration::from_secs(15))
            .ok_or_else(|| format!("{name} not back after the kill: {}", logs(&gw)))?;
        note(format!(
            "after kill + start: {name} back {:.2}s after the kill",
            (back - killed).as_secs_f64()
        ));
    }
    assert!(tunnel_addresses(&alice).contains("10.77.0.2/16"));
    assert!(tunnel_addresses(&bob).contains("10.77.0.3/16"));
    drop(players);

    // --- docker stop: a clean exit within 2 s. -----------------------------------------------
    let asked = Instant::now();
    docker(&["stop", "-t", "5", &gw])?;
    let took = asked.elapsed();
    note(format!("docker stop took {:.2}s", took.as_secs_f64()));
    assert_eq!(inspect(&gw, "{{.State.ExitCode}}")?, "0", "{}", logs(&gw));
    assert!(took < Duration::from_secs(2), "docker stop took {took:?}");
    let log = logs(&gw);
    assert!(log.trim_end().ends_with("stopped"), "{log}");
    assert!(!log.contains("deleting nftables table"), "{log}");

    // --- Unhealthy when the data plane cannot bind. ------------------------------------------
    let unbound = d.run_detached(
        "unbound",
        &[
            "--network",
            "none",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "NET_ADMIN",
            "--cap-add",
            "NET_RAW",
            "--device",
            &format!("{}:/dev/net/tun", tun.display()),
            "-e",
            "GRELAY_LISTEN=198.51.100.7:4747",
            "--health-interval",
            "1s",
            "--health-retries",
            "2",
            &gw_image,
        ],
    )?;
    let started = Instant::now();
    let unhealthy = wait_until(Duration::from_secs(30), || {
        inspect(&unbound, "{{.State.Health.Status}}").is_ok_and(|s| s == "unhealthy")
    });
    assert!(unhealthy, "not unhealthy: {}", logs(&unbound));
    note(format!(
        "listen address not on the container: unhealthy after {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    let check = docker::run(
        "docker",
        &["exec", &unbound, "/usr/bin/grelay-gateway", "healthcheck"],
        &[],
        None,
        Duration::from_secs(20),
    )?;
    assert!(!check.ok(), "{check:?}");
    assert!(
        check.stderr.contains("data plane not bound"),
        "{}",
        check.stderr
    );
    let asked = Instant::now();
    docker(&["stop", "-t", "5", &unbound])?;
    assert!(asked.elapsed() < Duration::from_secs(2));
    assert_eq!(inspect(&unbound, "{{.State.ExitCode}}")?, "0");

    // --- Nothing left behind. ----------------------------------------------------------------
    drop(clients);
    d.cleanup();
    let filter = format!("label={}={pid}", docker::PID_LABEL);
    for kind in [
        &["ps", "-a", "-q"][..],
        &["network", "ls", "-q"],
        &["volume", "ls", "-q"],
    ] {
        let mut args = kind.to_vec();
        args.extend(["--filter", &filter]);
        let left = docker(&args)?;
        assert!(left.trim().is_empty(), "left behind ({kind:?}): {left}");
    }
    let images = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])?;
    assert!(
        !images.lines().any(|i| i.ends_with(&format!(":grt{pid}"))),
        "images left: {images}"
    );
    let summary = SUMMARY
        .get_or_init(Mutex::default)
        .lock()
        .expect("lock")
        .join("\n  ");
    eprintln!("e2e_docker summary:\n  {summary}");
    Ok(())
}

/// The client's systemd unit is accepted by `systemd-analyze verify` (where systemd's tools
/// are installed; no running systemd is needed).
#[test]
fn client_service_unit_verifies() -> TestResult {
    let Ok(out) = docker::run(
        "systemd-analyze",
        &["--version"],
        &[],
        None,
        Duration::from_secs(10),
    ) else {
        eprintln!("client_service_unit_verifies: skipped: no systemd-analyze");
        return Ok(());
    };
    assert!(out.ok());
    let scratch = Scratch::new("unit")?;
    let unit = std::fs::read_to_string(workspace().join("deploy/client/grelay@.service"))?;
    // verify needs an instance and an existing binary: point ExecStart at one that exists.
    let unit = unit.replace("/usr/bin/grelay ", "/bin/true ");
    let path = scratch.file("grelay@game.service");
    std::fs::write(&path, unit)?;
    let out = docker::run(
        "systemd-analyze",
        &["verify", "--man=no", &path.display().to_string()],
        &[],
        None,
        Duration::from_secs(30),
    )?;
    assert!(out.ok(), "{}{}", out.stdout, out.stderr);
    // Nothing in the unit may be unknown to systemd (verify only warns about those).
    assert!(
        !out.stderr.contains("Unknown") && !out.stderr.contains("Invalid"),
        "{}",
        out.stderr
    );
    Ok(())
}
