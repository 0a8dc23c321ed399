//! `grelay up`, `grelay down` and `grelay status`: the life of one interface.
//!
//! `up`, in order: take the interface's lock; remove what a crashed earlier run left (from its
//! state file); resolve the gateway; open the TUN and the marked UDP socket; install the
//! policy rules (and, in full-tunnel mode, the fail-closed fallbacks and the kill switch);
//! open the control socket; run the packet loop, which installs addresses and routes when the
//! gateway assigns them. Whatever ends the loop — `down`, SIGINT, SIGTERM or an error — the
//! teardown removes everything recorded, newest first, and the TUN goes with the process.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use grelay_io::tun::Tun;
use grelay_proto::tunnel::client::{Client, ClientConfig};
use tokio::sync::mpsc;

use crate::config::{Config, Endpoint};
use crate::control::{self, Request};
use crate::net::item::Device;
use crate::net::plan::Settings;
use crate::net::sys::{System, set_socket_mark};
use crate::net::{Network, ResolvConf, remove_leftovers};
use crate::rundir::RunDir;
use crate::state::{StateFile, remove_file};
use crate::status::{ShellInfo, StatusReport};
use crate::transport::ladder::{Action, Ladder, LadderConfig};
use crate::transport::{Links, Settings as LinkSettings};
use crate::tunnel::{Exit, Tunnel};
use grelay_io::fallback::Transport;

/// The resolver file `write_resolv_conf` replaces.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// How long `down` waits for the `up` process to finish its teardown.
const DOWN_WAIT: Duration = Duration::from_secs(20);

/// Brings the tunnel up and runs it until it is taken down.
pub async fn up(config: Config, run_dir: RunDir) -> Result<()> {
    for warning in &config.warnings {
        tracing::warn!("{}: {warning}", config.file.display());
    }
    let name = config.interface.name.clone();
    run_dir.ensure()?;
    let _lock = run_dir.lock(&name)?;
    let sys = System::new()?;
    clean_leftovers(&sys, &run_dir, &name).await?;
    let endpoint = resolve(&config.gateway.endpoint).await?;
    let mtu = config.interface.mtu_for(endpoint);
    // The TUN vanishes with the process, so nothing needs recording before this point.
    let tun = Tun::open(&name, mtu).with_context(|| format!("creating TUN device {name}"))?;
    let udp =
        grelay_io::udp::bind(bind_address(endpoint.ip())).context("opening the UDP socket")?;
    set_socket_mark(&udp, config.interface.fwmark)?;
    let state = StateFile::create(&run_dir.state(&name), &name)?;
    let resolv = config.interface.write_resolv_conf.then(|| ResolvConf {
        target: PathBuf::from(RESOLV_CONF),
        backup: run_dir.resolv_backup(&name),
    });
    let device = Device {
        index: tun.index(),
        name: name.clone(),
    };
    let settings = Settings::from_config(&config);
    let mut network = Network::new(sys, state, settings, device, resolv);
    let result = run(&config, &run_dir, endpoint, udp, tun, &mut network).await;
    let teardown = network.teardown().await;
    match (result, teardown) {
        (Ok(exit), Ok(())) => {
            let why = match exit {
                Exit::Down => "grelay down",
                Exit::Signal(signal) => signal,
            };
            tracing::info!("{name} is down ({why}); routes and rules removed");
            Ok(())
        }
        (Ok(_), Err(e)) => Err(e),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(t)) => Err(e.context(format!("and the teardown failed too: {t:#}"))),
    }
}

/// The part of `up` after which everything is torn down.
async fn run(
    config: &Config,
    run_dir: &RunDir,
    endpoint: SocketAddr,
    udp: tokio::net::UdpSocket,
    tun: Tun,
    network: &mut Network,
) -> Result<Exit> {
    network.prepare().await?;
    let (tx, rx) = mpsc::channel(8);
    let _server = control::serve(&run_dir.socket(&config.interface.name), tx)?;
    let suite = config.interface.cipher.resolve();
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    let mut client_config = ClientConfig::new(
        config.interface.private_key.clone(),
        config.gateway.public_key,
        endpoint,
        unix,
    );
    client_config.suite = suite;
    client_config.psk = config.gateway.psk;
    let client = Client::new(client_config, Instant::now(), grelay_io::seed()?);
    let mode = if config.routes.full_tunnel {
        "full"
    } else {
        "split"
    };
    tracing::info!(
        "{} up ({mode} tunnel, mtu {}, {}), handshaking with {endpoint}",
        config.interface.name,
        tun.mtu(),
        suite.name()
    );
    let shell = ShellInfo {
        interface: config.interface.name.clone(),
        mode,
        routed_prefixes: config.routes.prefixes.len(),
        mtu: tun.mtu(),
        uptime: Duration::ZERO,
        unreachable: false,
        counters: Default::default(),
        transport: None,
    };
    let (links, ladder) = transports(config).await?;
    Tunnel::new(client, udp, tun, shell, links, ladder)
        .run(network, rx)
        .await
}

/// The fallback links and the transport ladder for `config`.
async fn transports(config: &Config) -> Result<(Links, (Ladder, Vec<Action>))> {
    let f = &config.gateway.fallback;
    if let Some(why) = &f.disabled_because {
        tracing::info!("{why}");
    }
    let mut transports = f.transports.clone();
    let tls = fallback_endpoint(&transports, Transport::Tls, &f.tls_endpoint).await;
    let quic = fallback_endpoint(&transports, Transport::Quic, &f.quic_endpoint).await;
    transports.retain(|t| match t {
        Transport::Udp => true,
        Transport::Tls => tls.is_some(),
        Transport::Quic => quic.is_some(),
    });
    if transports.is_empty() {
        bail!("no transport left to reach the gateway (see the warnings above)");
    }
    let links = if transports.iter().any(|t| *t != Transport::Udp) {
        let settings = LinkSettings::new(
            &f.trust,
            f.server_name.clone(),
            tls,
            quic,
            config.interface.fwmark,
        )?;
        let names: Vec<&str> = transports.iter().map(|t| t.name()).collect();
        tracing::info!(
            "transports {} (tls {}, quic {}, server name {:?})",
            names.join(", "),
            tls.map_or("off".to_owned(), |a| a.to_string()),
            quic.map_or("off".to_owned(), |a| a.to_string()),
            f.server_name
        );
        Links::new(Some(settings))
    } else {
        Links::new(None)
    };
    Ok((
        links,
        Ladder::new(LadderConfig::new(transports), Instant::now()),
    ))
}

/// The resolved endpoint of fallback `t`, if it is in `transports` and resolves.
async fn fallback_endpoint(
    transports: &[Transport],
    t: Transport,
    endpoint: &Endpoint,
) -> Option<SocketAddr> {
    if !transports.contains(&t) {
        return None;
    }
    resolve(endpoint)
        .await
        .map_err(|e| tracing::warn!("{t} fallback disabled: {e:#}"))
        .ok()
}

/// The gateway's address; a host name is resolved once, here.
async fn resolve(endpoint: &Endpoint) -> Result<SocketAddr> {
    match endpoint {
        Endpoint::Addr(addr) => Ok(*addr),
        Endpoint::Name { host, port } => tokio::net::lookup_host((host.as_str(), *port))
            .await
            .with_context(|| format!("resolving gateway {endpoint}"))?
            .next()
            .ok_or_else(|| anyhow!("gateway {endpoint} has no address")),
    }
}

/// Removes what a crashed run of `name` left installed; true if there was something.
async fn clean_leftovers(sys: &System, run_dir: &RunDir, name: &str) -> Result<bool> {
    let path = run_dir.state(name);
    let Some(state) = StateFile::load(&path)? else {
        return Ok(false);
    };
    tracing::info!(
        "removing what an earlier `grelay up` (pid {}) left installed",
        state.pid
    );
    let failed = remove_leftovers(sys, &state).await;
    remove_file(&run_dir.socket(name))?;
    if failed.is_empty() {
        remove_file(&path)?;
        return Ok(true);
    }
    let list: Vec<String> = failed
        .iter()
        .map(|(item, e)| format!("{}: {e:#}", item.describe()))
        .collect();
    bail!(
        "could not remove leftovers listed in {}:\n  {}",
        path.display(),
        list.join("\n  ")
    )
}

/// `grelay down`: asks a running `up` to stop and waits for it, or, when none runs, removes
/// what a crashed one left.
pub async fn down(run_dir: &RunDir, name: &str) -> Result<String> {
    if !run_dir.path().exists() {
        bail!(
            "{name} is not up ({} does not exist)",
            run_dir.path().display()
        );
    }
    if let Some(_lock) = run_dir.try_lock(name)? {
        let sys = System::new()?;
        return if clean_leftovers(&sys, run_dir, name).await? {
            Ok(format!(
                "{name} was not running; removed what a crashed `grelay up` left installed"
            ))
        } else {
            bail!("{name} is not up")
        };
    }
    let socket = run_dir.socket(name);
    let reply = blocking_request(socket, Request::Down).await?;
    if !reply.ok {
        bail!(
            "{name} refused to go down: {}",
            reply.error.unwrap_or_default()
        );
    }
    let deadline = Instant::now() + DOWN_WAIT;
    loop {
        if let Some(_lock) = run_dir.try_lock(name)? {
            if run_dir.state(name).exists() {
                // The process ended without finishing its teardown; finish it here.
                let sys = System::new()?;
                clean_leftovers(&sys, run_dir, name).await?;
            }
            return Ok(format!("{name} is down"));
        }
        if Instant::now() >= deadline {
            bail!("{name} did not finish going down within {DOWN_WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `grelay status`: the running `up`'s report.
pub async fn status(run_dir: &RunDir, name: &str) -> Result<StatusReport> {
    // The lock, not the socket file, says whether an `up` is alive: a killed one leaves its
    // socket file behind.
    let running = run_dir.path().exists() && run_dir.try_lock(name)?.is_none();
    if !running {
        let hint = if run_dir.state(name).exists() {
            format!(
                "; {} lists leftovers of a crashed run (the kill switch may be blocking \
                 traffic): run `grelay down --interface {name}`",
                run_dir.state(name).display()
            )
        } else {
            String::new()
        };
        bail!("{name} is not up{hint}");
    }
    let reply = blocking_request(run_dir.socket(name), Request::Status).await?;
    match (reply.ok, reply.status) {
        (true, Some(status)) => Ok(status),
        _ => bail!(
            "{name} did not report its status: {}",
            reply.error.unwrap_or_default()
        ),
    }
}

async fn blocking_request(socket: PathBuf, request: Request) -> Result<control::Reply> {
    tokio::task::spawn_blocking(move || control::request(&socket, request))
        .await
        .context("control request task")?
}

/// The wildcard address of `endpoint`'s family, for the UDP socket.
fn bind_address(endpoint: IpAddr) -> SocketAddr {
    match endpoint {
        IpAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        IpAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    }
}
