//! Configuration errors name the file and line and say what to do.

use super::*;

/// A fixed valid key pair for tests (the RFC 7748 test secret's public half is irrelevant).
const SECRET: &str = "d3lE0LZ+uYXxrcyTQ7eSG0jk8kTxj3cmDyI5VWLAz2Y=";
const KEY_A: &str = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=";
const KEY_B: &str = "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/grelay/gateway.toml"), text)
}

fn with_key(rest: &str) -> String {
    format!("private_key = \"{SECRET}\"\n{rest}")
}

fn err(text: &str) -> ConfigError {
    parse(text).expect_err("config should be refused")
}

#[test]
fn minimal_config_gets_the_defaults() {
    let c = parse(&with_key("")).unwrap();
    assert_eq!(c.listen, "0.0.0.0:4747".parse().unwrap());
    assert_eq!(c.interface, "grelay-gw");
    assert_eq!(c.mtu, 1420);
    assert_eq!(c.ipv4_pool.unwrap().prefix().to_string(), "10.77.0.0/16");
    assert_eq!(c.ipv6_pool.unwrap().prefix().to_string(), "fd77::/64");
    assert_eq!(c.egress, EgressMode::Nat);
    assert_eq!(c.state_file, PathBuf::from(DEFAULT_STATE_FILE));
    assert!(c.clients.is_empty());
    // The printed effective config parses back to the same thing (keys aside).
    let printed = c
        .to_string()
        .replace("\"(hidden)\"", &format!("\"{SECRET}\""));
    let again = parse(&printed).unwrap();
    assert_eq!(again.to_string(), c.to_string());
}

#[test]
fn full_config_parses() {
    let c = parse(&with_key(&format!(
        r#"listen = "[::]:5000"
state_file = "state.json"
[tunnel]
interface = "gw0"
mtu = 1380
ipv4_pool = "10.1.0.0/24"
ipv6_pool = ""
[egress]
mode = "route"
out_interface = "eth1"
[[clients]]
name = "alice"
public_key = "{KEY_A}"
psk = "{KEY_B}"
[[clients]]
public_key = "{KEY_B}"
"#
    )))
    .unwrap();
    assert_eq!(c.listen, "[::]:5000".parse().unwrap());
    assert_eq!(c.state_file, PathBuf::from("/etc/grelay/state.json"));
    assert_eq!((c.interface.as_str(), c.mtu), ("gw0", 1380));
    assert!(c.ipv6_pool.is_none());
    assert_eq!(c.egress, EgressMode::Route);
    assert_eq!(c.out_interface.as_deref(), Some("eth1"));
    assert_eq!(c.clients.len(), 2);
    assert_eq!(c.clients[0].name, "alice");
    assert!(c.clients[0].psk.is_some());
    assert_eq!(c.clients[1].name, &KEY_B[..8]);
    // Listen without port takes the default one.
    let c = parse(&with_key("listen = \"198.18.1.2\"")).unwrap();
    assert_eq!(c.listen, "198.18.1.2:4747".parse().unwrap());
}

#[test]
fn bad_public_key_names_file_line_and_fix() {
    let e = err(&with_key(
        "\n[tunnel]\nmtu = 1420\n\n[[clients]]\nname = \"alice\"\npublic_key = \"abc\"\n",
    ));
    assert_eq!(e.line, Some(8));
    assert_eq!(
        e.to_string(),
        "/etc/grelay/gateway.toml:8: public_key is not a valid key: expected 44 characters of \
         base64 (make one with grelay-gateway genkey | grelay-gateway pubkey)"
    );
}

#[test]
fn syntax_errors_and_unknown_keys_have_lines() {
    let e = err(&with_key("listen = \n"));
    assert_eq!(e.line, Some(2), "{e}");
    let e = err(&with_key("\n[tunnel]\nmtuu = 1400\n"));
    assert_eq!(e.line, Some(4), "{e}");
    assert!(e.message.contains("mtuu"), "{e}");
    let e = err(&with_key("[egress]\nmode = \"masquerade\"\n"));
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("\"nat\", \"route\" or \"none\""), "{e}");
}

#[test]
fn duplicate_keys_and_names_are_refused() {
    let e = err(&with_key(&format!(
        "[[clients]]\nname = \"a\"\npublic_key = \"{KEY_A}\"\n[[clients]]\nname = \"b\"\npublic_key = \"{KEY_A}\"\n"
    )));
    assert_eq!(e.line, Some(7));
    assert!(e.message.contains("same as client \"a\" (line 4)"), "{e}");
    let e = err(&with_key(&format!(
        "[[clients]]\nname = \"a\"\npublic_key = \"{KEY_A}\"\n[[clients]]\nname = \"a\"\npublic_key = \"{KEY_B}\"\n"
    )));
    assert_eq!(e.line, Some(6));
    assert!(e.message.contains("already used on line 4"), "{e}");
    let e = err(&with_key("[[clients]]\nname = \"a\"\n"));
    assert!(e.message.contains("no public_key"), "{e}");
    let e = err(&with_key(&format!(
        "[[clients]]\npublic_key = \"{KEY_A}\"\npsk = \"short\"\n"
    )));
    assert_eq!(e.line, Some(4));
    assert!(e.message.starts_with("psk is not a valid key"), "{e}");
}

#[test]
fn pools_are_checked() {
    let e = err(&with_key("[tunnel]\nipv4_pool = \"10.77.0.0/31\"\n"));
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("too small"), "{e}");
    let e = err(&with_key("[tunnel]\nipv4_pool = \"fd77::/64\"\n"));
    assert!(e.message.contains("not an IPv4 prefix"), "{e}");
    let e = err(&with_key("[tunnel]\nipv4_pool = \"10.77.0.1/16\"\n"));
    assert!(e.message.contains("did you mean 10.77.0.0/16?"), "{e}");
    let e = err(&with_key("[tunnel]\nipv6_pool = \"fd77::\"\n"));
    assert!(e.message.contains("no prefix length"), "{e}");
    let e = err(&with_key("[tunnel]\nipv4_pool = \"\"\nipv6_pool = \"\"\n"));
    assert!(e.message.contains("both pools are disabled"), "{e}");
    let e = err(&with_key("listen = \"10.77.3.4:4747\"\n"));
    assert!(e.message.contains("contains the listen address"), "{e}");
    let e = err(&with_key(&format!(
        "[tunnel]\nipv4_pool = \"10.0.0.0/30\"\n[[clients]]\npublic_key = \"{KEY_A}\"\n\
         [[clients]]\npublic_key = \"{KEY_B}\"\n"
    )));
    assert!(e.message.contains("room for 1 clients but 2"), "{e}");
}

#[test]
fn keys_and_scalars_are_checked() {
    let e = err("listen = \"0.0.0.0:1\"\n");
    assert!(e.message.contains("no private key"), "{e}");
    let e = err("private_key = \"nope\"\n");
    assert_eq!(e.line, Some(1));
    assert!(e.message.contains("genkey"), "{e}");
    let e = err(&format!(
        "private_key = \"{SECRET}\"\nprivate_key_file = \"/k\"\n"
    ));
    assert!(e.message.contains("not both"), "{e}");
    let e = err(&with_key("[tunnel]\nmtu = 70000\n"));
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("out of range"), "{e}");
    let e = err(&with_key(
        "[tunnel]\nipv6_pool = \"fd77::/64\"\nmtu = 1000\n",
    ));
    assert!(e.message.contains("1280"), "{e}");
    let e = err(&with_key("listen = \"here:4747\"\n"));
    assert!(e.message.contains("IP:PORT"), "{e}");
    let e = err(&with_key(
        "[tunnel]\ninterface = \"a very long interface name\"\n",
    ));
    assert!(e.message.contains("interface name"), "{e}");
}

#[test]
fn key_file_is_read_relative_to_the_config_and_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("gw.key");
    let secret = grelay_io::keyfile::generate().unwrap();
    grelay_io::keyfile::write(&key_path, &secret).unwrap();
    let cfg = dir.path().join("gateway.toml");
    std::fs::write(&cfg, "private_key_file = \"gw.key\"\n").unwrap();
    let c = Config::load(&cfg).unwrap();
    assert_eq!(c.private_key.as_bytes(), secret.as_bytes());
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Config::load(&cfg).unwrap_err();
    assert_eq!(e.line, Some(1));
    assert!(e.message.contains("chmod 600"), "{e}");
    let e = Config::load(&dir.path().join("missing.toml")).unwrap_err();
    assert!(e.message.contains("cannot read"), "{e}");
}

#[test]
fn shipped_example_is_valid() {
    let text = include_str!("../../../deploy/gateway.example.toml").replace(
        "private_key_file = \"/etc/grelay/gateway.key\"",
        &format!("private_key = \"{SECRET}\""),
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.clients.len(), 1);
    assert_eq!(c.clients[0].name, "alice");
    assert_eq!(c.egress, EgressMode::Nat);
}

fn with_env(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let options = LoadOptions {
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        generate_key: false,
    };
    Config::parse_with(Path::new("/etc/grelay/gateway.toml"), text, &options)
}

#[test]
fn metrics_endpoint_defaults_to_loopback_and_can_be_moved_or_turned_off() {
    let c = parse(&with_key("")).unwrap();
    assert_eq!(c.metrics_listen, Some("127.0.0.1:9477".parse().unwrap()));
    let c = parse(&with_key("[metrics]\nlisten = \"0.0.0.0:9100\"\n")).unwrap();
    assert_eq!(c.metrics_listen, Some("0.0.0.0:9100".parse().unwrap()));
    let c = parse(&with_key("[metrics]\nlisten = \"\"\n")).unwrap();
    assert_eq!(c.metrics_listen, None);
    assert!(c.to_string().contains("[metrics]\nlisten = \"\"\n"));
    let e = err(&with_key("[metrics]\nlisten = \"localhost\"\n"));
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("is not an address"), "{e}");
}

#[test]
fn environment_overrides_single_keys_and_names_itself_in_errors() {
    let text = with_key("listen = \"0.0.0.0:4747\"\n[tunnel]\nmtu = 1420\n");
    let c = with_env(
        &text,
        &[
            ("GRELAY_LISTEN", "0.0.0.0:5000"),
            ("GRELAY_TUNNEL_MTU", "1380"),
            ("GRELAY_TUNNEL_IPV6_POOL", ""),
            ("GRELAY_EGRESS_MODE", "none"),
            ("GRELAY_METRICS_LISTEN", "0.0.0.0:9477"),
            ("GRELAY_STATE_FILE", "/data/state.json"),
        ],
    )
    .unwrap();
    assert_eq!(c.listen.port(), 5000);
    assert_eq!(c.mtu, 1380);
    assert!(c.ipv6_pool.is_none());
    assert_eq!(c.egress, EgressMode::None);
    assert_eq!(c.metrics_listen, Some("0.0.0.0:9477".parse().unwrap()));
    assert_eq!(c.state_file, PathBuf::from("/data/state.json"));

    let e = with_env(&text, &[("GRELAY_TUNNEL_MTU", "big")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "$GRELAY_TUNNEL_MTU (environment): mtu \"big\" is not a number (e.g. 1420)"
    );
    let e = with_env(&text, &[("GRELAY_TUNNEL_MTU", "100")]).unwrap_err();
    assert_eq!(
        (e.file.as_str(), e.line),
        ("$GRELAY_TUNNEL_MTU (environment)", None)
    );
    assert!(e.message.contains("out of range"), "{e}");
    let e = with_env(
        &text,
        &[("GRELAY_LISTEN", "x"), ("GRELAY_EGRESS_MODE", "nat")],
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("$GRELAY_LISTEN (environment): listen \"x\""),
        "{e}"
    );
}

#[test]
fn a_missing_key_file_is_generated_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let text = "private_key_file = \"keys/gw.key\"\n";
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let e = Config::parse(&path, text).unwrap_err();
    assert!(e.message.contains("private_key_file"), "{e}");
    let options = LoadOptions {
        env: Vec::new(),
        generate_key: true,
    };
    let first = Config::parse_with(&path, text, &options).unwrap();
    let key_file = dir.path().join("keys/gw.key");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&key_file).unwrap().mode() & 0o777, 0o600);
    // The second start reads the same key.
    let again = Config::parse_with(&path, text, &options).unwrap();
    assert_eq!(
        first.private_key.public_key(),
        again.private_key.public_key()
    );
}
