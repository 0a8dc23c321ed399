//! Message building, and a round trip against the kernel in a private namespace.

use super::*;

fn prefix(s: &str) -> IpPrefix {
    s.parse().unwrap()
}

#[test]
fn route_messages_are_built_or_refused() {
    let r = Route::to(prefix("10.1.0.0/16"))
        .dev(3)
        .metric(7)
        .table(1000);
    let m = r.message().unwrap();
    assert_eq!(m.header.destination_prefix_length, 16);
    assert_eq!(m.header.scope, RouteScope::Link);
    let r = Route::to(prefix("fd00::/8")).via("fd00::1".parse().unwrap());
    assert_eq!(r.message().unwrap().header.scope, RouteScope::Universe);
    let bad = Route::to(prefix("10.0.0.0/8")).via("fd00::1".parse().unwrap());
    assert!(matches!(bad.message(), Err(Error::Invalid(_))));
    assert_eq!(
        describe(
            &Route::to(prefix("0.0.0.0/0"))
                .via("10.0.0.1".parse().unwrap())
                .dev(2)
        ),
        "0.0.0.0/0 via 10.0.0.1 dev #2"
    );
}

#[test]
fn rule_messages() {
    let rule = Rule {
        ipv6: false,
        priority: Some(100),
        fwmark: Some(0x4747),
        destination: None,
        invert: true,
        suppress_prefix_len: None,
        table: 51820,
    };
    let m = rule.message().unwrap();
    assert!(m.header.flags.contains(RuleFlags::Invert));
    assert!(m.attributes.contains(&RuleAttribute::Table(51820)));
    let bad = Rule {
        ipv6: true,
        destination: Some(prefix("10.0.0.0/8")),
        ..rule
    };
    assert!(bad.message().is_err());
}

/// Needs root: runs in a private network namespace made by `unshare`, so the machine's
/// own interfaces are untouched.
#[test]
fn loopback_index_and_address_round_trip_in_a_private_namespace() {
    crate::test_netns::in_private_netns(|| async {
        let nl = Netlink::new().unwrap();
        let lo = nl.link_index("lo").await.unwrap();
        assert!(matches!(
            nl.link_index("nope0").await,
            Err(Error::NoSuchInterface(_))
        ));
        nl.set_link_up(lo).await.unwrap();
        let a: IpAddr = "10.55.0.1".parse().unwrap();
        nl.add_address(lo, a, 24).await.unwrap();
        assert!(
            nl.add_address(lo, a, 24)
                .await
                .unwrap_err()
                .is_already_exists()
        );
        let r = Route::to(prefix("10.66.0.0/16")).dev(lo).metric(5);
        nl.add_route(&r).await.unwrap();
        assert!(nl.add_route(&r).await.unwrap_err().is_already_exists());
        nl.del_route(&r).await.unwrap();
        assert!(nl.del_route(&r).await.unwrap_err().is_not_found());
        let r6 = Route::to(prefix("fd66::/64")).dev(lo).table(100);
        nl.add_route(&r6).await.unwrap();
        nl.del_route(&r6).await.unwrap();
        let rule = Rule {
            ipv6: false,
            priority: Some(1234),
            fwmark: Some(7),
            destination: None,
            invert: true,
            suppress_prefix_len: None,
            table: 100,
        };
        nl.add_rule(&rule).await.unwrap();
        nl.del_rule(&rule).await.unwrap();
        nl.del_address(lo, a, 24).await.unwrap();
        assert!(nl.del_address(lo, a, 24).await.unwrap_err().is_not_found());
    });
}
