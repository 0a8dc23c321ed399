//! Allocation, persistence and exhaustion of the address book.

use super::*;

fn key(n: u8) -> PublicKey {
    PublicKey([n; 32])
}

fn pools(v4: &str, v6: &str) -> (Option<Pool>, Option<Pool>) {
    (
        Some(Pool::new(v4.parse().unwrap()).unwrap()),
        Some(Pool::new(v6.parse().unwrap()).unwrap()),
    )
}

fn v4(s: &str) -> Option<Ipv4Addr> {
    Some(s.parse().unwrap())
}

fn v6(s: &str) -> Option<Ipv6Addr> {
    Some(s.parse().unwrap())
}

#[test]
fn lowest_free_addresses_in_order_and_stable_per_key() {
    let (p4, p6) = pools("10.77.0.0/16", "fd77::/64");
    let mut book = AddressBook::new(p4, p6);
    assert_eq!(
        book.assign(&key(1), "a").unwrap(),
        (v4("10.77.0.2"), v6("fd77::2"))
    );
    assert_eq!(
        book.assign(&key(2), "b").unwrap(),
        (v4("10.77.0.3"), v6("fd77::3"))
    );
    // Asking again changes nothing.
    book.save(&tempfile::tempdir().unwrap().path().join("s.json"))
        .unwrap();
    assert_eq!(
        book.assign(&key(1), "a").unwrap(),
        (v4("10.77.0.2"), v6("fd77::2"))
    );
    assert!(!book.is_dirty());
}

#[test]
fn removed_clients_keep_their_reservation() {
    let (p4, p6) = pools("10.77.0.0/16", "fd77::/64");
    let mut book = AddressBook::new(p4, p6);
    book.assign(&key(1), "a").unwrap();
    book.assign(&key(2), "b").unwrap();
    assert!(book.release(&key(1)));
    assert!(!book.release(&key(1)));
    assert!(book.get(&key(1)).unwrap().removed_at.is_some());
    // A new client does not get a's address…
    assert_eq!(book.assign(&key(3), "c").unwrap().0, v4("10.77.0.4"));
    // …and a comes back with its own.
    assert_eq!(book.assign(&key(1), "a").unwrap().0, v4("10.77.0.2"));
    assert_eq!(book.get(&key(1)).unwrap().removed_at, None);
}

#[test]
fn save_and_load_give_the_same_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/state.json");
    let (p4, p6) = pools("10.77.0.0/16", "fd77::/64");
    let mut book = AddressBook::new(p4, p6);
    let mut expected = Vec::new();
    for n in 1..=5 {
        expected.push(book.assign(&key(n), &format!("c{n}")).unwrap());
    }
    book.release(&key(2));
    assert!(book.is_dirty());
    book.save(&path).unwrap();
    assert!(!book.is_dirty());
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);

    let mut again = AddressBook::load(&path, p4, p6).unwrap();
    assert!(!again.is_dirty());
    // Ask in another order: every key still gets its own addresses.
    for n in (1..=5).rev() {
        assert_eq!(
            again.assign(&key(n), &format!("c{n}")).unwrap(),
            expected[usize::from(n) - 1]
        );
    }
    assert!(again.is_dirty(), "c2 became active again");
}

#[test]
fn missing_file_is_empty_and_corrupt_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (p4, p6) = pools("10.77.0.0/16", "fd77::/64");
    let book = AddressBook::load(&dir.path().join("none.json"), p4, p6).unwrap();
    assert!(book.entries.is_empty());
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{ not json").unwrap();
    let e = AddressBook::load(&bad, p4, p6).unwrap_err();
    assert!(format!("{e:#}").contains("corrupt"), "{e:#}");
    std::fs::write(&bad, r#"{"version": 9, "clients": {}}"#).unwrap();
    assert!(AddressBook::load(&bad, p4, p6).is_err());
}

#[test]
fn addresses_outside_a_changed_pool_are_dropped_and_reassigned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let (p4, p6) = pools("10.77.0.0/16", "fd77::/64");
    let mut book = AddressBook::new(p4, p6);
    book.assign(&key(1), "a").unwrap();
    book.save(&path).unwrap();
    let (q4, _) = pools("10.88.0.0/24", "fd77::/64");
    let mut moved = AddressBook::load(&path, q4, p6).unwrap();
    assert!(moved.is_dirty());
    assert_eq!(
        moved.assign(&key(1), "a").unwrap(),
        (v4("10.88.0.2"), v6("fd77::2"))
    );
    // IPv6 disabled: the entry keeps no IPv6 address.
    let mut no6 = AddressBook::load(&path, p4, None).unwrap();
    assert_eq!(no6.assign(&key(1), "a").unwrap(), (v4("10.77.0.2"), None));
}

#[test]
fn exhaustion_reclaims_the_oldest_removal_then_fails() {
    let (p4, p6) = pools("10.0.0.0/29", "fd77::/64"); // 5 client addresses: .2 … .6
    let mut book = AddressBook::new(p4, p6);
    for n in 1..=5 {
        book.assign(&key(n), "x").unwrap();
    }
    let e = book.assign(&key(9), "late").unwrap_err();
    assert!(
        e.to_string().contains("ipv4_pool 10.0.0.0/29 is full"),
        "{e}"
    );
    // The failed client holds nothing it could keep others from.
    assert!(book.get(&key(9)).unwrap().removed_at.is_some());
    book.release(&key(3));
    book.entries.get_mut(&key(3)).unwrap().removed_at = Some(100);
    book.entries.get_mut(&key(9)).unwrap().removed_at = Some(200);
    // Key 9 holds nothing (its allocation failed); key 3, removed, gives up its IPv4 one.
    assert_eq!(book.assign(&key(10), "new").unwrap().0, v4("10.0.0.4"));
    assert_eq!(book.get(&key(3)).unwrap().ipv4, None);
    // Key 3 comes back: it gets its IPv6 address, but the pool is full for IPv4.
    assert!(book.assign(&key(3), "x").is_err());
}

#[test]
fn atomic_write_replaces_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    write_atomically(&path, b"first version, long").unwrap();
    write_atomically(&path, b"second").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second");
    // A directory in the way makes the rename fail and leaves no temporary file.
    let blocked = dir.path().join("blocked");
    std::fs::create_dir_all(blocked.join("x")).unwrap();
    assert!(write_atomically(&blocked, b"data").is_err());
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp-")
        })
        .count();
    assert_eq!(leftovers, 0);
}
