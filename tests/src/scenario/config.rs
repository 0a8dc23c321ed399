//! Configuration files for the gateway and the client, as builders with the scenarios'
//! defaults. Each renders the TOML that `docs/gateway.md` and `docs/client.md` describe and
//! writes it, with its key file (mode 0600) and any game lists, into a node's directory;
//! relative paths in the files are relative to that directory, as both programs read them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use grelay_proto::crypto::keys::{PublicKey, StaticSecret};

use super::keys::write_key;
use crate::netns::{Error, Result};

/// The gateway's UDP port in every scenario (the project's default).
pub const PORT: u16 = 4747;
/// The client's TUN name (the client's default).
pub const CLIENT_TUN: &str = "grelay0";
/// The gateway's TUN name (the gateway's default).
pub const GATEWAY_TUN: &str = "grelay-gw";
/// The gateway's IPv4 pool (the default): the gateway is `10.77.0.1`, clients from `.2` on.
pub const POOL_V4: &str = "10.77.0.0/16";
/// The gateway's IPv6 pool (the default): the gateway is `fd77::1`.
pub const POOL_V6: &str = "fd77::/64";

/// One `[[clients]]` entry of the gateway.
#[derive(Clone, Debug)]
pub struct ClientEntry {
    /// Name in the gateway's logs.
    pub name: String,
    /// The client's static public key.
    pub public_key: PublicKey,
}

/// `gateway.toml`. Defaults: listen on `0.0.0.0:4747`, TUN `grelay-gw`, both default pools,
/// NAT egress, the address book in `state.json` beside the file, no clients.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// The gateway's private key (written to `gateway.key`).
    pub key: StaticSecret,
    /// `listen`.
    pub listen: SocketAddr,
    /// `[tunnel] interface`.
    pub interface: String,
    /// `[tunnel] mtu`; `None` leaves the gateway's default (1420).
    pub mtu: Option<u16>,
    /// `[tunnel] ipv4_pool`; `None` leaves the default, `Some("")` disables IPv4.
    pub ipv4_pool: Option<String>,
    /// `[tunnel] ipv6_pool`; `None` leaves the default, `Some("")` disables IPv6.
    pub ipv6_pool: Option<String>,
    /// `[egress] mode`: `nat`, `route` or `none`.
    pub egress: String,
    /// `state_file`, relative to the node's directory.
    pub state_file: String,
    /// `[[clients]]`, in this order.
    pub clients: Vec<ClientEntry>,
    /// TOML appended verbatim (e.g. `[[backends]]` tables).
    pub extra: String,
}

impl GatewayConfig {
    /// The defaults above with `key`.
    pub fn new(key: StaticSecret) -> GatewayConfig {
        GatewayConfig {
            key,
            listen: SocketAddr::from(([0, 0, 0, 0], PORT)),
            interface: GATEWAY_TUN.to_owned(),
            mtu: None,
            ipv4_pool: None,
            ipv6_pool: None,
            egress: "nat".to_owned(),
            state_file: "state.json".to_owned(),
            clients: Vec::new(),
            extra: String::new(),
        }
    }

    /// Adds a `[[clients]]` entry.
    pub fn client(mut self, name: &str, public_key: PublicKey) -> GatewayConfig {
        self.add_client(name, public_key);
        self
    }

    /// Adds a `[[clients]]` entry in place.
    pub fn add_client(&mut self, name: &str, public_key: PublicKey) {
        self.clients.push(ClientEntry {
            name: name.to_owned(),
            public_key,
        });
    }

    /// Turns the IPv6 pool off (`ipv6_pool = ""`) or back to the default.
    pub fn ipv6(mut self, on: bool) -> GatewayConfig {
        self.ipv6_pool = if on { None } else { Some(String::new()) };
        self
    }

    /// The gateway's public key.
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// The file's text; the key is read from `gateway.key`.
    pub fn render(&self) -> String {
        let mut t = format!(
            "listen = {}\nprivate_key_file = \"gateway.key\"\nstate_file = {}\n\n[tunnel]\ninterface = {}\n",
            quote(&self.listen.to_string()),
            quote(&self.state_file),
            quote(&self.interface)
        );
        if let Some(mtu) = self.mtu {
            t += &format!("mtu = {mtu}\n");
        }
        if let Some(pool) = &self.ipv4_pool {
            t += &format!("ipv4_pool = {}\n", quote(pool));
        }
        if let Some(pool) = &self.ipv6_pool {
            t += &format!("ipv6_pool = {}\n", quote(pool));
        }
        t += &format!("\n[egress]\nmode = {}\n", quote(&self.egress));
        for c in &self.clients {
            t += &format!(
                "\n[[clients]]\nname = {}\npublic_key = \"{}\"\n",
                quote(&c.name),
                c.public_key
            );
        }
        if !self.extra.is_empty() {
            t += "\n";
            t += &self.extra;
        }
        t
    }

    /// Writes `gateway.key` and `gateway.toml` into `dir`; returns the configuration's path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        write_key(&dir.join("gateway.key"), &self.key)?;
        write_file(&dir.join("gateway.toml"), &self.render())
    }
}

/// `client.toml`. Defaults: TUN `grelay0`, split tunnel with no prefixes, no DNS, the
/// client's default MTU, cipher, mark and table.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The client's private key (written to `client.key`).
    pub key: StaticSecret,
    /// `[gateway] endpoint`.
    pub endpoint: SocketAddr,
    /// `[gateway] public_key`.
    pub gateway_key: PublicKey,
    /// `[interface] name`.
    pub interface: String,
    /// `[interface] mtu`; `None` leaves the client's default.
    pub mtu: Option<u16>,
    /// `[interface] dns`.
    pub dns: Vec<String>,
    /// `[routes] full_tunnel`.
    pub full_tunnel: bool,
    /// `[routes] prefixes`.
    pub prefixes: Vec<String>,
    /// `[routes] games`: each `(name, prefixes)` is written to `games/<name>.txt`.
    pub games: Vec<(String, Vec<String>)>,
    /// `[routes] exclude`.
    pub exclude: Vec<String>,
}

impl ClientConfig {
    /// The defaults above, for a client with `key` using the gateway at `endpoint`.
    pub fn new(key: StaticSecret, endpoint: SocketAddr, gateway_key: PublicKey) -> ClientConfig {
        ClientConfig {
            key,
            endpoint,
            gateway_key,
            interface: CLIENT_TUN.to_owned(),
            mtu: None,
            dns: Vec::new(),
            full_tunnel: false,
            prefixes: Vec::new(),
            games: Vec::new(),
            exclude: Vec::new(),
        }
    }

    /// Routes `prefix` into the tunnel.
    pub fn prefix(mut self, prefix: &str) -> ClientConfig {
        self.prefixes.push(prefix.to_owned());
        self
    }

    /// Adds a game list `games/<name>.txt` holding `prefixes`.
    pub fn game(mut self, name: &str, prefixes: &[&str]) -> ClientConfig {
        let prefixes = prefixes.iter().map(|p| (*p).to_owned()).collect();
        self.games.push((name.to_owned(), prefixes));
        self
    }

    /// Full-tunnel mode: everything into the tunnel, with leak protection.
    pub fn full_tunnel(mut self) -> ClientConfig {
        self.full_tunnel = true;
        self
    }

    /// The client's public key, for the gateway's `[[clients]]`.
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// The file's text; the key is read from `client.key`, game lists from `games/`.
    pub fn render(&self) -> String {
        let mut t = format!(
            "[interface]\nname = {}\nprivate_key_file = \"client.key\"\n",
            quote(&self.interface)
        );
        if let Some(mtu) = self.mtu {
            t += &format!("mtu = {mtu}\n");
        }
        if !self.dns.is_empty() {
            t += &format!("dns = {}\n", list(&self.dns));
        }
        t += &format!(
            "\n[gateway]\nendpoint = {}\npublic_key = \"{}\"\n\n[routes]\nfull_tunnel = {}\n",
            quote(&self.endpoint.to_string()),
            self.gateway_key,
            self.full_tunnel
        );
        let games: Vec<String> = self
            .games
            .iter()
            .map(|(name, _)| format!("games/{name}.txt"))
            .collect();
        for (key, values) in [
            ("games", &games),
            ("prefixes", &self.prefixes),
            ("exclude", &self.exclude),
        ] {
            if !values.is_empty() {
                t += &format!("{key} = {}\n", list(values));
            }
        }
        t
    }

    /// Writes `client.key`, the game lists and `client.toml` into `dir`; returns the
    /// configuration's path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        write_key(&dir.join("client.key"), &self.key)?;
        if !self.games.is_empty() {
            let games = dir.join("games");
            std::fs::create_dir_all(&games)
                .map_err(|e| Error::io(format!("creating {}", games.display()), e))?;
            for (name, prefixes) in &self.games {
                let text = format!("# {name}\n{}\n", prefixes.join("\n"));
                write_file(&games.join(format!("{name}.txt")), &text)?;
            }
        }
        write_file(&dir.join("client.toml"), &self.render())
    }
}

fn write_file(path: &Path, text: &str) -> Result<PathBuf> {
    std::fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(path.to_owned())
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A TOML array of strings.
fn list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::keys::test_key;

    #[test]
    fn gateway_config_renders_every_setting() {
        let mut config = GatewayConfig::new(test_key(1))
            .client("alice", test_key(2).public_key())
            .ipv6(false);
        config.mtu = Some(1300);
        let text = config.render();
        for expected in [
            "listen = \"0.0.0.0:4747\"",
            "state_file = \"state.json\"",
            "interface = \"grelay-gw\"",
            "mtu = 1300",
            "ipv6_pool = \"\"",
            "mode = \"nat\"",
            "name = \"alice\"",
            &format!("public_key = \"{}\"", test_key(2).public_key()),
        ] {
            assert!(text.contains(expected), "no {expected:?} in\n{text}");
        }
        assert!(!text.contains("ipv4_pool"), "{text}");
    }

    #[test]
    fn client_config_renders_routes_and_game_lists() {
        let endpoint = "198.18.1.2:4747".parse().unwrap();
        let config = ClientConfig::new(test_key(2), endpoint, test_key(1).public_key())
            .prefix("10.99.1.0/24")
            .game("arena", &["203.0.113.0/24"]);
        let text = config.render();
        for expected in [
            "name = \"grelay0\"",
            "endpoint = \"198.18.1.2:4747\"",
            "full_tunnel = false",
            "prefixes = [\"10.99.1.0/24\"]",
            "games = [\"games/arena.txt\"]",
        ] {
            assert!(text.contains(expected), "no {expected:?} in\n{text}");
        }
        assert!(!text.contains("dns"), "{text}");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
