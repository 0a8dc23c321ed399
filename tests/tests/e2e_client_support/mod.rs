//! Shared set-up for the client end-to-end tests (`e2e_client_*.rs`): the real `grelay` and
//! `grelay-gateway` binaries in the harness's standard world.
//!
//! ```text
//!   laptop 10.200.1.2 ── nat1 198.18.2.2 ── internet ── gateway 198.18.1.2 ── b1 ── game 10.99.1.2
//!   (grelay0, grelay up)   (EI masquerade)               (grelay-gw 10.77.0.1/16, NAT egress)
//! ```
//!
//! # Finding the binaries
//! `GRELAY_BIN_DIR`, when set, names a directory holding prebuilt `grelay` and
//! `grelay-gateway`. Otherwise the first test that needs them runs `cargo build --locked -p
//! grelay-client --bin grelay -p grelay-gateway --bin grelay-gateway` (a no-op when up to
//! date) and uses `$CARGO_TARGET_DIR/debug` (default: the workspace's `target/debug`, i.e.
//! `CARGO_MANIFEST_DIR/../target/debug`).
//!
//! Every wait is bounded; processes are stopped by pid through the harness (dropping a
//! [`Process`] or its namespace).

#![allow(dead_code)]

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;

use grelay_proto::crypto::keys::StaticSecret;
use grelay_tests::netns::{Host, Namespace, Nat, NatKind, Process, Scratch, World, wait_until};

/// The reflector/prober helper built from `src/bin/grt-udp.rs`.
pub const UDP_TOOL: &str = env!("CARGO_BIN_EXE_grt-udp");
/// The gateway's UDP port.
pub const PORT: u16 = 4747;
/// The client's TUN.
pub const TUN: &str = "grelay0";
/// The client's routing table and socket mark (the default).
pub const TABLE: &str = "4747";
/// The client's kill-switch table.
pub const NFT_TABLE: &str = "grelay_client_grelay0";
/// How long the gateway or the client may take to come up.
pub const START: Duration = Duration::from_secs(20);

/// The directory holding `grelay` and `grelay-gateway`, built once per test process if needed.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("GRELAY_BIN_DIR") {
            let dir = PathBuf::from(dir);
            for bin in ["grelay", "grelay-gateway"] {
                assert!(dir.join(bin).exists(), "GRELAY_BIN_DIR has no {bin}");
            }
            return dir;
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ lies in the workspace");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args([
                "build",
                "--locked",
                "-p",
                "grelay-client",
                "--bin",
                "grelay",
            ])
            .args(["-p", "grelay-gateway", "--bin", "grelay-gateway"])
            .current_dir(workspace)
            .status()
            .expect("running cargo build");
        assert!(
            status.success(),
            "building grelay and grelay-gateway failed"
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| workspace.join("target"), |t| workspace.join(t));
        target.join("debug")
    })
}

/// `path` of binary `name` as a string.
pub fn bin(name: &str) -> String {
    bin_dir().join(name).to_string_lossy().into_owned()
}

/// A fixed key per role (the tests need distinct keys, not secret ones).
pub fn secret(n: u8) -> StaticSecret {
    StaticSecret::from_bytes([n; 32])
}

/// Writes a file readable by its owner only (key files).
pub fn write_private(path: &Path, contents: &str) {
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("creating a key file");
    f.write_all(contents.as_bytes())
        .expect("writing a key file");
}

/// The world of one test.
pub struct Setup {
    /// Logs, configs, captures, the client's run directory.
    pub scratch: Scratch,
    /// Kept alive for the hosts.
    pub world: World,
    /// The gateway host (198.18.1.2).
    pub gateway: Host,
    /// The laptop's NAT router.
    pub nat: Nat,
    /// The laptop behind the NAT.
    pub laptop: Host,
    /// The game server behind the gateway (10.99.1.2), reachable only through the tunnel.
    pub game: Host,
}

impl Setup {
    /// Builds the world; `label` names the scratch directory.
    pub fn new(label: &str) -> Setup {
        let scratch = Scratch::new(label).expect("scratch directory");
        let mut world = World::new().expect("world");
        let gateway = world.add_public_host("gateway").expect("gateway host");
        let mut nat = world.add_nat(NatKind::EndpointIndependent).expect("nat");
        let laptop = nat.add_host("laptop").expect("laptop");
        let game = world.add_private_link(&gateway, "game").expect("game host");
        // Make sure the binaries exist before any timing starts.
        bin_dir();
        Setup {
            scratch,
            world,
            gateway,
            nat,
            laptop,
            game,
        }
    }

    /// The client's run directory (instead of `/run/grelay`, which all namespaces share).
    pub fn run_dir(&self) -> String {
        self.scratch.file("run").to_string_lossy().into_owned()
    }

    /// Starts the gateway (IPv6 pool only if `ipv6`) and waits until it serves.
    pub fn start_gateway(&self, ipv6: bool) -> Process {
        write_private(&self.scratch.file("gw.key"), &secret(1).to_base64());
        let v6 = if ipv6 { "" } else { "ipv6_pool = \"\"\n" };
        let text = format!(
            "listen = \"0.0.0.0:{PORT}\"\nprivate_key_file = \"gw.key\"\n\
             state_file = \"gw-state.json\"\n[tunnel]\ninterface = \"grelay-gw\"\n{v6}\
             [egress]\nmode = \"nat\"\n[[clients]]\nname = \"laptop\"\npublic_key = \"{}\"\n",
            secret(2).public_key()
        );
        let config = self.scratch.file("gateway.toml");
        std::fs::write(&config, text).expect("writing the gateway config");
        let config = config.to_string_lossy().into_owned();
        let process = self
            .gateway
            .ns()
            .spawn(
                &[
                    &bin("grelay-gateway"),
                    "run",
                    "--config",
                    &config,
                    "--log-level",
                    "debug",
                ],
                self.scratch.file("gateway.log"),
            )
            .expect("spawning the gateway");
        let up = wait_until(START, || {
            process.log().contains("listening on udp") || !process.is_running()
        });
        assert!(
            up && process.is_running(),
            "gateway did not start: {}",
            process.log()
        );
        process
    }

    /// Writes the client's key and a config with `interface_extra` lines in `[interface]`
    /// and `routes` as the `[routes]` section; returns its path.
    pub fn client_config(&self, interface_extra: &str, routes: &str) -> PathBuf {
        write_private(&self.scratch.file("client.key"), &secret(2).to_base64());
        let text = format!(
            "[interface]\nname = \"{TUN}\"\nprivate_key_file = \"client.key\"\n{interface_extra}\n\
             [gateway]\nendpoint = \"{}:{PORT}\"\npublic_key = \"{}\"\n\n[routes]\n{routes}\n",
            self.gateway.v4(),
            secret(1).public_key()
        );
        let path = self.scratch.file("client.toml");
        std::fs::write(&path, text).expect("writing the client config");
        path
    }

    /// Starts `grelay up config` in the laptop, logging to `log`; waits until the gateway
    /// assigned addresses and the routes are in place.
    pub fn up(&self, config: &Path, log: &str) -> Process {
        let config = config.to_string_lossy().into_owned();
        let run_dir = self.run_dir();
        let process = self
            .laptop
            .ns()
            .spawn(
                &[
                    &bin("grelay"),
                    "--run-dir",
                    &run_dir,
                    "--log-level",
                    "debug",
                    "up",
                    &config,
                ],
                self.scratch.file(log),
            )
            .expect("spawning grelay up");
        let configured = wait_until(START, || {
            process.log().contains("configured grelay0") || !process.is_running()
        });
        assert!(
            configured && process.is_running(),
            "grelay up did not get configured: {}",
            process.log()
        );
        process
    }

    /// Runs `grelay --run-dir … args` in the laptop.
    pub fn grelay(&self, args: &[&str]) -> Output {
        let run_dir = self.run_dir();
        let bin = bin("grelay");
        let mut all = vec![bin.as_str(), "--run-dir", run_dir.as_str()];
        all.extend_from_slice(args);
        self.laptop
            .ns()
            .exec(&all, Duration::from_secs(30))
            .expect("running grelay")
    }

    /// `grelay args` must succeed; returns its standard output.
    pub fn grelay_ok(&self, args: &[&str]) -> String {
        let out = self.grelay(args);
        assert!(
            out.status.success(),
            "grelay {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What the laptop's routing and firewall look like: rules, the tunnel's table, nftables
    /// tables and links, for assertions about installation and cleanup.
    pub fn laptop_net(&self) -> NetView {
        let ns = self.laptop.ns();
        let run = |args: &[&str]| ns.run(args).unwrap_or_else(|e| format!("<{e}>"));
        NetView {
            rules: run(&["ip", "rule", "list"]) + &run(&["ip", "-6", "rule", "list"]),
            table: run(&["ip", "route", "show", "table", TABLE])
                + &run(&["ip", "-6", "route", "show", "table", TABLE]),
            nft: run(&["nft", "list", "tables"]),
            links: run(&["ip", "-o", "link", "show"]),
        }
    }
}

/// A snapshot of the laptop's networking state.
#[derive(Debug)]
pub struct NetView {
    /// `ip rule` and `ip -6 rule`.
    pub rules: String,
    /// The tunnel's table, both families.
    pub table: String,
    /// `nft list tables`.
    pub nft: String,
    /// `ip -o link`.
    pub links: String,
}

impl NetView {
    /// Nothing of grelay's is left.
    pub fn is_clean(&self) -> bool {
        !self.rules.contains(&format!("lookup {TABLE}"))
            && self.table.trim().is_empty()
            && !self.nft.contains(NFT_TABLE)
            && !self.links.contains(&format!(" {TUN}:"))
    }
}

/// True if `args` exit successfully in `ns` within 15 s.
pub fn succeeds(ns: &Namespace, args: &[&str]) -> bool {
    ns.exec(args, Duration::from_secs(15))
        .is_ok_and(|o| o.status.success())
}

/// Starts a UDP reflector on `port` in `host`.
pub fn reflector(host: &Host, scratch: &Scratch, port: u16) -> Process {
    let addr = format!("[::]:{port}");
    host.ns()
        .spawn(
            &[UDP_TOOL, "reflect", &addr],
            scratch.file(&format!("reflect-{port}.log")),
        )
        .expect("spawning the reflector")
}

/// Sends a UDP probe from `host` to `dest` and returns the source address the reflector saw,
/// or `None` if no answer came.
pub fn probe(host: &Host, dest: &str) -> Option<String> {
    let out = host
        .ns()
        .exec(
            &[UDP_TOOL, "probe", "0.0.0.0:0", dest],
            Duration::from_secs(30),
        )
        .expect("running grt-udp probe");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
