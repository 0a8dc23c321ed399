//! [`Scenario`]: a whole test network with grelay in it, built in a few calls.
//!
//! ```text
//!   clients ─┬─ NAT (endpoint-independent / symmetric) ─┐
//!            └─ directly on the internet ───────────────┴─ internet ─ gateway ─ b1 ─ game
//! ```
//!
//! [`Scenario::new`] makes the internet, the gateway host (configured, not started) and the game
//! server behind it (running); [`Scenario::add_nat`] and [`Scenario::add_client`] add sites
//! and laptops, each client authorized in the gateway's configuration under its name;
//! [`Scenario::start_all`] starts the gateway and brings every client up.
//! [`Scenario::home_setup`] is the common case: one laptop behind a home router.
//!
//! Clients get split-tunnel configurations that route the game server's IPv4 network; change
//! [`ClientNode::config_mut`] before `up` for more (the pool for client-to-client traffic, the
//! game's IPv6 network, full tunnel).
//!
//! Fields drop in order: clients (their processes and namespaces) first, the scratch
//! directory last, so logs stay readable to the end and are kept when a test fails.

use std::time::Duration;

use super::bins::Binaries;
use super::client::{CLIENT_START, ClientNode};
use super::config::{ClientConfig, GatewayConfig};
use super::game::GameServer;
use super::gateway::GatewayNode;
use super::keys::{GATEWAY_KEY, test_key};
use crate::netns::{Error, Nat, NatKind, Result, Scratch, World};

/// Where a new client's laptop sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Directly on the internet, with a public address of its own.
    Public,
    /// On the LAN of the scenario's NAT with this index (from [`Scenario::add_nat`]).
    Nat(usize),
}

/// A test network with a gateway, a game server and clients; see the module doc.
#[derive(Debug)]
pub struct Scenario {
    /// The clients, in the order they were added.
    pub clients: Vec<ClientNode>,
    /// The gateway (198.18.1.2).
    pub gateway: GatewayNode,
    /// The game server behind the gateway (10.99.1.2), reachable only through the tunnel.
    pub game: GameServer,
    /// The NAT routers, by index.
    pub nats: Vec<Nat>,
    /// The internet; kept alive for the hosts.
    pub world: World,
    /// Logs, configurations, captures; kept when a test fails.
    pub scratch: Scratch,
    next_key: u8,
}

impl Scenario {
    /// The internet, the gateway host with its configuration (not started) and the running
    /// game server; `label` names the scratch directory. Finds or builds the binaries first,
    /// so that no build happens inside a test's timed part.
    pub fn new(label: &str) -> Result<Scenario> {
        Binaries::get()?;
        let scratch = Scratch::new(label)?;
        let mut world = World::new()?;
        let gateway_host = world.add_public_host("gateway")?;
        let game_host = world.add_private_link(&gateway_host, "game")?;
        let game = GameServer::start(game_host, scratch.path())?;
        let config = GatewayConfig::new(test_key(GATEWAY_KEY));
        let gateway = GatewayNode::new(gateway_host, &scratch.file("gateway"), config)?;
        Ok(Scenario {
            clients: Vec::new(),
            gateway,
            game,
            nats: Vec::new(),
            world,
            scratch,
            next_key: 10,
        })
    }

    /// [`Scenario::new`] plus a home router (endpoint-independent NAT) with one laptop behind
    /// it, the client `laptop`. Nothing of grelay runs yet: [`start_all`](Self::start_all).
    pub fn home_setup(label: &str) -> Result<Scenario> {
        let mut s = Scenario::new(label)?;
        let home = s.add_nat(NatKind::EndpointIndependent)?;
        s.add_client("laptop", Placement::Nat(home))?;
        Ok(s)
    }

    /// Adds a NAT router of `kind` on its own internet site; returns its index.
    pub fn add_nat(&mut self, kind: NatKind) -> Result<usize> {
        self.nats.push(self.world.add_nat(kind)?);
        Ok(self.nats.len() - 1)
    }

    /// Adds a laptop at `placement` with a client `name`, authorized in the gateway's
    /// configuration (effective at the gateway's next start or reload); returns its index.
    pub fn add_client(&mut self, name: &str, placement: Placement) -> Result<usize> {
        let index = self.add_node(name, placement)?;
        let key = self.clients[index].public_key();
        self.gateway.config_mut().add_client(name, key);
        Ok(index)
    }

    /// Like [`add_client`](Self::add_client), but the gateway does not know its key: every
    /// initiation it sends is refused.
    pub fn add_stranger(&mut self, name: &str, placement: Placement) -> Result<usize> {
        self.add_node(name, placement)
    }

    fn add_node(&mut self, name: &str, placement: Placement) -> Result<usize> {
        if self.clients.iter().any(|c| c.name() == name) {
            return Err(Error::Invalid(format!("a client {name} exists already")));
        }
        let host = match placement {
            Placement::Public => self.world.add_public_host(name)?,
            Placement::Nat(i) => self
                .nats
                .get_mut(i)
                .ok_or_else(|| Error::Invalid(format!("no NAT {i}")))?
                .add_host(name)?,
        };
        let key = test_key(self.next_key);
        self.next_key = self
            .next_key
            .checked_add(1)
            .ok_or_else(|| Error::Invalid("out of test keys".into()))?;
        let config = ClientConfig::new(key, self.gateway.endpoint(), self.gateway.public_key())
            .prefix(&self.game.v4_prefix());
        let dir = self.scratch.file(name);
        self.clients
            .push(ClientNode::new(name, host, &dir, config)?);
        Ok(self.clients.len() - 1)
    }

    /// The client called `name`.
    ///
    /// # Panics
    /// If there is none (a typo in a test).
    pub fn client(&self, name: &str) -> &ClientNode {
        self.clients
            .iter()
            .find(|c| c.name() == name)
            .unwrap_or_else(|| panic!("no client {name}"))
    }

    /// The client called `name`, to change or bring up.
    ///
    /// # Panics
    /// If there is none (a typo in a test).
    pub fn client_mut(&mut self, name: &str) -> &mut ClientNode {
        self.clients
            .iter_mut()
            .find(|c| c.name() == name)
            .unwrap_or_else(|| panic!("no client {name}"))
    }

    /// Starts every authorized client that is not running, all at once, and waits until each
    /// is configured (strangers are left alone: they would never be).
    pub fn up_all(&mut self) -> Result<()> {
        let known: Vec<_> = self
            .gateway
            .config()
            .clients
            .iter()
            .map(|c| c.public_key)
            .collect();
        let mut started = Vec::new();
        for (i, c) in self.clients.iter_mut().enumerate() {
            if known.contains(&c.public_key()) && !c.is_running() {
                c.start()?;
                started.push(i);
            }
        }
        // They come up in parallel, so one generous bound covers them all.
        let bound = CLIENT_START + Duration::from_millis(250) * started.len() as u32;
        for i in started {
            self.clients[i].wait_configured(bound)?;
        }
        Ok(())
    }

    /// Starts the gateway (unless it runs) and brings every client up.
    pub fn start_all(&mut self) -> Result<()> {
        if !self.gateway.is_running() {
            self.gateway.start()?;
        }
        self.up_all()
    }
}
