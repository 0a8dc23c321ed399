//! `grelay-gateway run`: set up, serve until told to stop, tear down.
//!
//! Set-up order: address book → UDP socket (fails early if the port is taken) → TUN with the
//! gateway's first host of each pool (the kernel then routes the pools via the TUN) →
//! forwarding and the NAT table (per `[egress]`) → the core with every configured client.
//! Tear-down, on SIGINT/SIGTERM or [`Command::Shutdown`]: save the book, delete the NAT table,
//! close the TUN (a non-persistent TUN vanishes with its addresses and routes). All of it is
//! local work, well inside the 2 s a supervisor gives before SIGKILL.
//!
//! The metrics and health endpoint ([`crate::metrics`]) is bound before the data plane. When
//! the UDP socket or the TUN cannot be set up (port taken, address not on this host, no
//! `/dev/net/tun`), a gateway with the endpoint keeps trying every [`BIND_RETRY`] while
//! `/healthz` answers 503 with the error — a container's health check then reports
//! "unhealthy" instead of a restart loop hiding why; without the endpoint it exits with the
//! error as before.
//!
//! The runtime is tokio's `current_thread` one: the core's [`Gateway`] is one `&mut` state
//! machine, so a single thread owns it and the sockets with no locks and no cross-thread
//! wake-ups. A second worker would have nothing of its own to do — it could only contend for
//! the gateway — and the kernel's share of the data path (the inner TCP receive inside the TUN
//! write, the peer's UDP receive inside the send) already runs on the calling thread. Scaling
//! out comes later as several pipelines (multi-queue TUN + `SO_REUSEPORT`, `DATAPATH.md`),
//! each again a single-threaded loop.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use grelay_io::netlink::Netlink;
use grelay_io::tun::Tun;
use grelay_proto::tunnel::gateway::{Gateway, GatewayConfig};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, interval_at};

use crate::backends::BackendPlane;
use crate::clients::{Assigner, Change, Clients};
use crate::config::{Config, EgressMode};
use crate::dataplane::Dataplane;
use crate::metrics::{self, Endpoint, Health, Metrics, SnapshotRequest};
use crate::nat::{self, NatTable};
use crate::report::{STATUS_INTERVAL, status_line};
use crate::state::AddressBook;

/// How often a gateway whose data plane could not be set up tries again.
pub const BIND_RETRY: Duration = Duration::from_secs(2);

/// What the loop can be told from outside (signals, or a test running the gateway in-process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Re-read the configuration's `[[clients]]` (SIGHUP).
    Reload,
    /// Stop cleanly (SIGINT, SIGTERM).
    Shutdown,
}

/// Forwards SIGHUP as [`Command::Reload`] and SIGINT/SIGTERM as [`Command::Shutdown`]; call
/// inside the runtime.
pub fn signal_commands() -> Result<mpsc::Receiver<Command>> {
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let command = tokio::select! {
                _ = hup.recv() => Command::Reload,
                _ = int.recv() => Command::Shutdown,
                _ = term.recv() => Command::Shutdown,
            };
            if tx.send(command).await.is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// Runs the gateway described by `config` until a [`Command::Shutdown`] arrives or `commands`
/// closes. Must run on a tokio runtime with I/O and time enabled.
pub async fn run(config: Config, mut commands: mpsc::Receiver<Command>) -> Result<()> {
    let assigner = Assigner {
        v4: config.ipv4_pool,
        v6: config.ipv6_pool,
        mtu: config.mtu,
    };
    let mut book = AddressBook::load(&config.state_file, assigner.v4, assigner.v6)?;
    // The sender stays here too, so that `requests` never closes (even with no endpoint).
    let (requests_tx, mut requests) = mpsc::channel::<SnapshotRequest>(8);
    let endpoint = match config.metrics_listen {
        Some(addr) => {
            let metrics = Metrics::new(&config.private_key.public_key().to_string());
            let e = Endpoint::start(addr, metrics, requests_tx.clone()).await?;
            tracing::info!(
                "metrics on http://{}/metrics, health on /healthz",
                e.local_addr()
            );
            Some(e)
        }
        None => None,
    };
    let Some((udp, tun)) = bind_dataplane(&config, endpoint.as_ref(), &mut commands).await? else {
        tracing::info!("stopped before the data plane was bound");
        return Ok(());
    };
    // The TLS and QUIC fallbacks (their ports, too, must be free: fail early).
    let state_dir = config
        .state_file
        .parent()
        .unwrap_or(std::path::Path::new("."));
    let fallback = crate::transport::listen::start(&config.fallback, state_dir).await?;
    let netlink = Netlink::new()?;
    for pool in [assigner.v4, assigner.v6].into_iter().flatten() {
        let (addr, len) = (pool.gateway(), pool.prefix().prefix_len());
        match netlink.add_address(tun.index(), addr, len).await {
            Err(e) if !e.is_already_exists() => return Err(e.into()),
            _ => {}
        }
    }
    if config.egress != EgressMode::None {
        nat::enable_forwarding(assigner.v6.is_some())?;
    }
    let mut nat_table = match config.egress {
        EgressMode::Nat => {
            let pools: Vec<_> = [assigner.v4, assigner.v6].into_iter().flatten().collect();
            Some(NatTable::install(
                &pools,
                &config.interface,
                config.out_interface.as_deref(),
            )?)
        }
        _ => None,
    };

    let seed = grelay_io::seed()?;
    let mut gateway = Gateway::new(
        GatewayConfig::new(config.private_key.clone()),
        Instant::now(),
        seed,
    );
    let mut clients = Clients::default();
    let changes = clients.apply(&mut gateway, &mut book, assigner, &config.clients);
    if let Some(Change::Failed { name, reason }) =
        changes.iter().find(|c| matches!(c, Change::Failed { .. }))
    {
        bail!("client {name}: {reason}");
    }
    for change in &changes {
        tracing::info!("{change}");
    }
    if book.is_dirty() {
        book.save(&config.state_file)?;
    }
    let (rcv, snd) = grelay_io::udp::buffer_sizes(&udp);
    tracing::info!(
        "listening on udp {} (buffers {rcv}/{snd} B), public key {}, tun {} mtu {}, egress {}{}, \
         {} clients",
        config.listen,
        gateway.public_key(),
        tun.name(),
        tun.mtu(),
        config.egress.as_str(),
        nat_table.as_ref().map_or(String::new(), |t| format!(
            " (nftables table inet {})",
            t.name()
        )),
        clients.len()
    );

    let backends = BackendPlane::open(&config.backends, Instant::now())?;
    if let Some(b) = &backends {
        for id in b.table.ids() {
            if let Some(c) = b.table.config(id) {
                let prefixes: Vec<String> = c.prefixes.iter().map(|p| p.0.to_string()).collect();
                tracing::info!(
                    "back end {} at {} (from {}, key {}) serves {}",
                    c.name,
                    c.remote,
                    c.local,
                    c.key.map_or("none".to_owned(), |k| k.to_string()),
                    prefixes.join(", ")
                );
            }
        }
    }
    let mut plane = Dataplane::new(gateway, clients, udp, tun, backends);
    plane.fallback = fallback;
    if let Some(e) = &endpoint {
        e.set(Health::Serving);
    }
    let served = serve(
        &mut plane,
        &mut book,
        &config,
        assigner,
        &mut commands,
        &mut requests,
    )
    .await;
    if let Some(e) = &endpoint {
        e.set(Health::Stopping);
    }
    drop(requests_tx);

    let saved = book.save(&config.state_file);
    let unnat = nat_table.as_mut().map_or(Ok(()), NatTable::remove);
    drop(plane);
    tracing::info!("stopped");
    served.and(saved).and(unnat)
}

/// Binds the UDP socket and opens the TUN; with a health endpoint, retries every
/// [`BIND_RETRY`] until they work or a shutdown comes (`None`).
async fn bind_dataplane(
    config: &Config,
    endpoint: Option<&Endpoint>,
    commands: &mut mpsc::Receiver<Command>,
) -> Result<Option<(tokio::net::UdpSocket, Tun)>> {
    let mut last = String::new();
    loop {
        let attempt = grelay_io::udp::bind(config.listen).and_then(|udp| {
            let tun = Tun::open(&config.interface, config.mtu)?;
            Ok((udp, tun))
        });
        let error = match attempt {
            Ok(parts) => {
                if !last.is_empty() {
                    tracing::info!("data plane bound after all");
                }
                return Ok(Some(parts));
            }
            Err(e) => anyhow::Error::from(e),
        };
        let Some(endpoint) = endpoint else {
            return Err(error);
        };
        let text = format!("{error:#}");
        if text != last {
            tracing::error!(
                "{text}; trying again every {}s (/healthz answers 503 meanwhile)",
                BIND_RETRY.as_secs()
            );
            endpoint.set(Health::NotBound(text.clone()));
            last = text;
        }
        tokio::select! {
            c = commands.recv() => match c {
                Some(Command::Reload) => {
                    tracing::warn!("reload ignored: the data plane is not bound yet");
                }
                Some(Command::Shutdown) | None => return Ok(None),
            },
            () = tokio::time::sleep(BIND_RETRY) => {}
        }
    }
}

async fn serve(
    plane: &mut Dataplane,
    book: &mut AddressBook,
    config: &Config,
    assigner: Assigner,
    commands: &mut mpsc::Receiver<Command>,
    requests: &mut mpsc::Receiver<SnapshotRequest>,
) -> Result<()> {
    enum Wake {
        Command(Option<Command>),
        Snapshot(SnapshotRequest),
        Udp,
        Tun,
        Gre,
        Link(crate::transport::Event),
        Timer,
        Status,
    }
    let mut deadline = next_deadline(plane);
    let timer = tokio::time::sleep_until(deadline.into());
    tokio::pin!(timer);
    let start = tokio::time::Instant::now() + STATUS_INTERVAL;
    let mut status = interval_at(start, STATUS_INTERVAL);
    status.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        // Not `biased`: under a flood on one input the others must still get their turn
        // (tokio picks among ready branches at random).
        let wake = tokio::select! {
            c = commands.recv() => Wake::Command(c),
            Some(r) = requests.recv() => Wake::Snapshot(r),
            r = plane.udp.readable() => { r.context("waiting on the UDP socket")?; Wake::Udp }
            r = plane.tun.readable() => { r.context("waiting on the TUN")?; Wake::Tun }
            r = gre_readable(plane.backends.as_ref()) => {
                r.context("waiting on the raw GRE socket")?;
                Wake::Gre
            }
            event = plane.fallback.recv() => Wake::Link(event),
            () = &mut timer => Wake::Timer,
            _ = status.tick() => Wake::Status,
        };
        match wake {
            Wake::Command(Some(Command::Reload)) => reload(plane, book, config, assigner),
            Wake::Snapshot(reply) => {
                // The scraper may have given up already; nothing to do then.
                let _ = reply.send(metrics::snapshot(plane));
            }
            Wake::Command(Some(Command::Shutdown) | None) => {
                tracing::info!("shutting down");
                return Ok(());
            }
            Wake::Udp => plane.drain_udp().await,
            Wake::Tun => plane.drain_tun().await?,
            Wake::Gre => plane.drain_gre().await,
            Wake::Link(event) => plane.on_link_events(event).await,
            Wake::Timer => {
                let now = Instant::now();
                plane.gateway.handle_timeout(now);
                plane.flush().await;
                if let Some(b) = plane.backends.as_mut() {
                    b.table.handle_timeout(now);
                    b.flush().await;
                }
                // A fired timer stays ready: always re-arm it.
                deadline = next_deadline(plane);
                timer.as_mut().reset(deadline.into());
            }
            Wake::Status => tracing::info!(
                "{}",
                status_line(
                    plane.clients.len(),
                    plane.connected.len(),
                    plane.gateway.session_count(),
                    plane.gateway.stats(),
                    &plane.counters,
                )
            ),
        }
        // The core's next deadline may have moved with any input.
        let next = next_deadline(plane);
        if next != deadline {
            deadline = next;
            timer.as_mut().reset(next.into());
        }
    }
}

/// When the core (gateway or back-end table) next wants `handle_timeout`; an hour ahead when
/// neither has a timer.
fn next_deadline(plane: &Dataplane) -> Instant {
    let backends = plane.backends.as_ref().and_then(|b| b.table.poll_timeout());
    [plane.gateway.poll_timeout(), backends]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(3600))
}

/// Readiness of the raw GRE sockets; never ready when no back end is configured.
async fn gre_readable(backends: Option<&BackendPlane>) -> std::io::Result<()> {
    match backends {
        Some(b) => b.readable().await,
        None => std::future::pending().await,
    }
}

/// Applies the configuration file's `[[clients]]` again; everything else needs a restart.
fn reload(plane: &mut Dataplane, book: &mut AddressBook, config: &Config, assigner: Assigner) {
    let path: PathBuf = config.path.clone();
    let fresh = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("reload failed, keeping the current clients: {e}");
            return;
        }
    };
    if fresh.listen != config.listen
        || fresh.interface != config.interface
        || fresh.mtu != config.mtu
        || fresh.ipv4_pool != config.ipv4_pool
        || fresh.ipv6_pool != config.ipv6_pool
        || fresh.egress != config.egress
        || fresh.out_interface != config.out_interface
        || fresh.state_file != config.state_file
        || fresh.metrics_listen != config.metrics_listen
        || fresh.fallback != config.fallback
        || fresh.private_key.public_key() != config.private_key.public_key()
    {
        tracing::warn!("reload applies [[clients]] only: other changes need a restart");
    }
    // A removed (or re-added) peer takes its traffic counters with it: keep them for the
    // metrics, whose totals must never go back.
    let before: HashMap<_, _> = plane
        .gateway
        .peers()
        .map(|p| (p.public_key, p.traffic))
        .collect();
    let changes = plane
        .clients
        .apply(&mut plane.gateway, book, assigner, &fresh.clients);
    let after: HashMap<_, _> = plane
        .gateway
        .peers()
        .map(|p| (p.public_key, p.traffic))
        .collect();
    for (key, old) in &before {
        let kept = after.get(key).is_some_and(|new| {
            new.rx_packets >= old.rx_packets && new.tx_packets >= old.tx_packets
        });
        if !kept {
            metrics::add_traffic(&mut plane.retired_traffic, old);
        }
    }
    for change in &changes {
        match change {
            Change::Failed { .. } => tracing::error!("{change}"),
            Change::Removed { id, .. } => {
                plane.connected.remove(id);
                tracing::info!("{change}");
            }
            _ => tracing::info!("{change}"),
        }
    }
    tracing::info!(
        "reloaded {}: {} changes, {} clients",
        path.display(),
        changes.len(),
        plane.clients.len()
    );
    if book.is_dirty() {
        if let Err(e) = book.save(&config.state_file) {
            tracing::error!("{e:#}");
        }
    }
}
