use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::cipher::CipherChoice;
use grelay_proto::crypto::aead::CipherSuite;

const CLIENT_KEY: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
const GATEWAY_KEY: &str = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/grelay/client.toml"))
}

fn minimal(extra_interface: &str, extra: &str) -> String {
    format!(
        "[interface]\nprivate_key = \"{CLIENT_KEY}\"\n{extra_interface}\n\
         [gateway]\nendpoint = \"198.18.1.2:4747\"\npublic_key = \"{GATEWAY_KEY}\"\n{extra}"
    )
}

fn messages(err: &ConfigError) -> Vec<String> {
    err.problems().iter().map(ToString::to_string).collect()
}

#[test]
fn minimal_config_gets_defaults() {
    let config = parse(&minimal("", "")).unwrap();
    assert_eq!(config.interface.name, "grelay0");
    assert_eq!(config.interface.mtu, None);
    let v4 = "198.18.1.2:4747".parse().unwrap();
    assert_eq!(config.interface.mtu_for(v4), 1420);
    assert_eq!(
        config
            .interface
            .mtu_for("[2001:db8::2]:4747".parse().unwrap()),
        1416
    );
    assert_eq!(config.interface.cipher, CipherChoice::Auto);
    assert_eq!(config.interface.fwmark, DEFAULT_MARK);
    assert_eq!(config.interface.table, DEFAULT_MARK);
    assert!(!config.interface.write_resolv_conf);
    assert_eq!(
        config.gateway.endpoint,
        Endpoint::Addr("198.18.1.2:4747".parse().unwrap())
    );
    assert_eq!(config.gateway.public_key.to_string(), GATEWAY_KEY);
    assert!(!config.routes.full_tunnel);
    assert!(config.routes.prefixes.is_empty());
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
}

#[test]
fn full_example_with_game_files_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("games")).unwrap();
    std::fs::write(
        dir.path().join("games/example.txt"),
        "# example\n203.0.113.0/24\n\n2001:db8:42::/48 # v6\n198.18.0.0/15\n",
    )
    .unwrap();
    let key = dir.path().join("client.key");
    std::fs::write(&key, format!("{CLIENT_KEY}\n")).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!(
        "[interface]\nname = \"gr-test\"\nprivate_key_file = \"client.key\"\nmtu = 1400\n\
         dns = [\"10.77.0.1\", \"fd77::1\"]\ncipher = \"aes-256-gcm\"\nfwmark = 0x1234\n\
         table = 100\nwrite_resolv_conf = true\n\n[gateway]\nendpoint = \"gw.example.net:4747\"\n\
         public_key = \"{GATEWAY_KEY}\"\npsk = \"{CLIENT_KEY}\"\n\n[routes]\nfull_tunnel = false\n\
         games = [\"games/example.txt\"]\nprefixes = [\"203.0.113.0/24\", \"192.0.2.0/24\"]\n\
         exclude = [\"192.0.2.128/25\"]\n"
    );
    let file = dir.path().join("client.toml");
    std::fs::write(&file, text).unwrap();
    let config = Config::load(&file).unwrap();
    let i = &config.interface;
    assert_eq!(
        (i.name.as_str(), i.mtu, i.fwmark, i.table),
        ("gr-test", Some(1400), 0x1234, 100)
    );
    assert_eq!(i.dns.len(), 2);
    assert_eq!(i.cipher, CipherChoice::Fixed(CipherSuite::Aes256Gcm));
    assert!(i.write_resolv_conf);
    assert_eq!(
        config.gateway.endpoint,
        Endpoint::Name {
            host: "gw.example.net".into(),
            port: 4747
        }
    );
    assert!(config.gateway.psk.is_some());
    let routed: Vec<(String, String)> = config
        .routes
        .prefixes
        .iter()
        .map(|p| (p.prefix.to_string(), p.origin.clone()))
        .collect();
    let game = dir.path().join("games/example.txt").display().to_string();
    let toml = file.display().to_string();
    // Sorted, duplicates keep their first origin.
    assert_eq!(
        routed,
        [
            ("192.0.2.0/24".to_owned(), format!("{toml}:19")),
            ("198.18.0.0/15".to_owned(), format!("{game}:5")),
            ("203.0.113.0/24".to_owned(), format!("{game}:2")),
            ("2001:db8:42::/48".to_owned(), format!("{game}:4")),
        ]
    );
    assert_eq!(config.routes.exclude.len(), 1);
    // dns without full tunnel is reported.
    assert!(
        config.warnings.iter().any(|w| w.contains("dns")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn game_file_errors_carry_the_game_files_own_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("games")).unwrap();
    let game = dir.path().join("games/valorant.txt");
    let mut text = "203.0.113.0/24\n".repeat(11);
    text.push_str("10.0.0.0/33\n");
    std::fs::write(&game, text).unwrap();
    let file = dir.path().join("client.toml");
    std::fs::write(
        &file,
        minimal(
            "",
            "[routes]\ngames = [\"games/valorant.txt\", \"games/missing.txt\"]\n",
        ),
    )
    .unwrap();
    let err = Config::load(&file).unwrap_err();
    let shown = messages(&err);
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert_eq!(
        shown[0],
        format!(
            "{}:12: \"10.0.0.0/33\" is not a prefix: the length must be 0–32 for IPv4",
            game.display()
        )
    );
    assert!(
        shown[1].starts_with(&format!(
            "{}:8: game list \"games/missing.txt\"",
            file.display()
        )),
        "{}",
        shown[1]
    );
    assert!(shown[1].contains("cannot open"), "{}", shown[1]);
}

#[test]
fn every_problem_is_reported_with_its_line_and_fix() {
    let text = String::from(
        "[interface]\nname = \"bad name\"\nmtu = 100\ndns = [\"ten\"]\ncipher = \"rot13\"\n\
         fwmark = 0\ntable = 254\nprivate_key = \"short\"\n\n[gateway]\nendpoint = \"198.18.1.2\"\n\
         public_key = \"nope\"\n\n[routes]\nprefixes = [\"10.0.0.0/33\", \"10.1.2.3/8\"]\n",
    );
    let err = parse(&text).unwrap_err();
    let shown = messages(&err);
    let expect = [
        (2, "\"bad name\" is not a usable interface name"),
        (8, "private_key is not a valid private key"),
        (3, "mtu = 100 is out of range: use 1280–9000"),
        (4, "dns server \"ten\" is not an IP address"),
        (5, "cipher \"rot13\" is not known"),
        (6, "fwmark = 0 is out of range"),
        (7, "table = 254 is out of range"),
        (11, "\"198.18.1.2\" is not an endpoint: write address:port"),
        (12, "public_key is not a key"),
        (
            15,
            "\"10.0.0.0/33\" is not a prefix: the length must be 0–32 for IPv4",
        ),
        (
            15,
            "\"10.1.2.3/8\" has bits set after the first 8: write \"10.0.0.0/8\"",
        ),
    ];
    assert_eq!(shown.len(), expect.len(), "{shown:#?}");
    for (got, (line, text)) in shown.iter().zip(expect) {
        let prefix = format!("/etc/grelay/client.toml:{line}: {text}");
        assert!(got.starts_with(&prefix), "{got}\n  expected {prefix}");
    }
}

#[test]
fn toml_errors_become_file_line_messages() {
    let cases = [
        (
            "[interface]\nnmae = \"x\"\n",
            2,
            "unknown field `nmae`, expected one of",
        ),
        ("[interface\n", 1, "invalid table header"),
        (
            "[interface]\nmtu = \"big\"\n",
            2,
            "invalid type: string \"big\", expected i64",
        ),
        (
            "[interface]\nprivate_key = \"k\"\n[gateway]\n",
            3,
            "missing field `endpoint`",
        ),
        ("", 1, "missing field `interface`"),
    ];
    for (text, line, message) in cases {
        let shown = messages(&parse(text).unwrap_err());
        let prefix = format!("/etc/grelay/client.toml:{line}: {message}");
        assert!(
            shown[0].starts_with(&prefix),
            "{shown:?}\n  expected {prefix}"
        );
    }
}

#[test]
fn keys_are_required_once() {
    let text = format!(
        "[interface]\nname = \"g\"\n[gateway]\nendpoint = \"198.18.1.2:1\"\npublic_key = \"{GATEWAY_KEY}\"\n"
    );
    let shown = messages(&parse(&text).unwrap_err());
    assert!(shown[0].starts_with("/etc/grelay/client.toml:1: [interface] needs a private key"));
    assert!(shown[0].contains("grelay genkey"));
    let both = minimal("private_key_file = \"/x\"", "");
    let shown = messages(&parse(&both).unwrap_err());
    assert!(
        shown[0].ends_with("set private_key or private_key_file, not both"),
        "{shown:?}"
    );
}

#[test]
fn key_file_permissions_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    std::fs::write(&key, CLIENT_KEY).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = format!(
        "[interface]\nprivate_key_file = \"k\"\n[gateway]\nendpoint = \"198.18.1.2:1\"\n\
         public_key = \"{GATEWAY_KEY}\"\n"
    );
    let err = Config::parse(&text, &dir.path().join("c.toml")).unwrap_err();
    let shown = messages(&err);
    assert!(
        shown[0].contains(":2: cannot use private_key_file"),
        "{shown:?}"
    );
    assert!(shown[0].contains("chmod 600"), "{shown:?}");
}

#[test]
fn endpoints() {
    let ok = [
        ("198.18.1.2:4747", "198.18.1.2:4747"),
        ("[2001:db8::2]:4747", "[2001:db8::2]:4747"),
        ("gw-1.example.net:443", "gw-1.example.net:443"),
    ];
    for (text, shown) in ok {
        assert_eq!(Endpoint::parse(text).unwrap().to_string(), shown);
    }
    for (bad, hint) in [
        ("2001:db8::2", "[2001:db8::2]:4747"),
        ("198.18.1.2:0", "198.18.1.2:4747"),
        ("0.0.0.0:4747", "gateway's address"),
        ("gw:port", "1–65535"),
        ("gw:+5", "1–65535"),
        ("a b:5", "address:port"),
        (":5", "address:port"),
        ("", "address:port"),
    ] {
        let err = Endpoint::parse(bad).unwrap_err();
        assert!(err.contains(hint), "{bad}: {err}");
    }
}

#[test]
fn full_tunnel_without_games_has_no_warnings() {
    let config = parse(&minimal(
        "dns = [\"10.77.0.1\"]",
        "[routes]\nfull_tunnel = true\n",
    ))
    .unwrap();
    assert!(config.routes.full_tunnel);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}
