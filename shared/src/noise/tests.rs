use super::*;

fn secret(b: u8) -> StaticSecret {
    StaticSecret::from_bytes([b; 32])
}

fn handshake(
    suite_i: CipherSuite,
    suite_r: CipherSuite,
    psk_i: [u8; 32],
    psk_r: [u8; 32],
) -> Result<(SessionKeys, SessionKeys), CryptoError> {
    let (client, gateway) = (secret(1), secret(2));
    let mut msg1 = [0u8; INITIATION_NOISE_LEN];
    let init = Initiator::start(
        &client,
        &gateway.public_key(),
        &psk_i,
        suite_i,
        [3; 32],
        &[4; 12],
        &mut msg1,
    )?;
    let resp = Responder::read(&gateway, suite_r, [5; 32], &msg1)?;
    assert_eq!(resp.initiator(), &client.public_key());
    assert_eq!(resp.timestamp(), &[4; 12]);
    let mut msg2 = [0u8; RESPONSE_NOISE_LEN];
    let r_keys = resp.respond(&psk_r, &mut msg2)?;
    let i_keys = init.finish(&msg2)?;
    Ok((i_keys, r_keys))
}

#[test]
fn keys_are_mirrored() {
    let (i, r) = handshake(
        CipherSuite::ChaCha20Poly1305,
        CipherSuite::ChaCha20Poly1305,
        NO_PSK,
        NO_PSK,
    )
    .unwrap();
    assert_eq!(i.send, r.recv);
    assert_eq!(i.recv, r.send);
    assert_ne!(i.send, i.recv);
}

#[test]
fn psk_mismatch_fails_at_initiator() {
    assert!(
        handshake(
            CipherSuite::Aes256Gcm,
            CipherSuite::Aes256Gcm,
            [1; 32],
            [2; 32]
        )
        .is_err()
    );
    assert!(
        handshake(
            CipherSuite::Aes256Gcm,
            CipherSuite::Aes256Gcm,
            [1; 32],
            [1; 32]
        )
        .is_ok()
    );
}

#[test]
fn suite_changed_in_flight_fails() {
    assert!(
        handshake(
            CipherSuite::Aes256Gcm,
            CipherSuite::ChaCha20Poly1305,
            NO_PSK,
            NO_PSK
        )
        .is_err()
    );
}

#[test]
fn wrong_responder_key_and_corruption_fail() {
    let mut msg1 = [0u8; INITIATION_NOISE_LEN];
    Initiator::start(
        &secret(1),
        &secret(9).public_key(),
        &NO_PSK,
        CipherSuite::ChaCha20Poly1305,
        [3; 32],
        &[4; 12],
        &mut msg1,
    )
    .unwrap();
    let suite = CipherSuite::ChaCha20Poly1305;
    assert!(Responder::read(&secret(2), suite, [5; 32], &msg1).is_err());
    assert!(Responder::read(&secret(9), suite, [5; 32], &msg1).is_ok());
    for i in [0, 40, INITIATION_NOISE_LEN - 1] {
        let mut bad = msg1;
        bad[i] ^= 0x80;
        assert!(Responder::read(&secret(9), suite, [5; 32], &bad).is_err());
    }
    assert!(Responder::read(&secret(9), suite, [5; 32], &msg1[..50]).is_err());
}

/// Cacophony vectors for our exact pattern (and plain IK), replayed through our resolver.
#[test]
fn cacophony_vectors() {
    let text = include_str!("../../tests/vectors/cacophony_ik.json");
    let doc: serde_json::Value = serde_json::from_str(text).unwrap();
    let unhex = |v: &serde_json::Value| hex::decode(v.as_str().unwrap()).unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(vectors.iter().any(|v| v["protocol_name"] == PATTERN));
    for v in vectors {
        let name = v["protocol_name"].as_str().unwrap();
        let params: snow::params::NoiseParams = name.parse().unwrap();
        let (ip, rp) = (unhex(&v["init_prologue"]), unhex(&v["resp_prologue"]));
        let (is, rs) = (unhex(&v["init_static"]), unhex(&v["resp_static"]));
        let (ie, re) = (unhex(&v["init_ephemeral"]), unhex(&v["resp_ephemeral"]));
        let irs = unhex(&v["init_remote_static"]);
        let mut ib = Builder::with_resolver(params.clone(), Box::new(SeededResolver::new([0; 32])))
            .local_private_key(&is)
            .unwrap()
            .remote_public_key(&irs)
            .unwrap()
            .prologue(&ip)
            .unwrap()
            .fixed_ephemeral_key_for_testing_only(&ie);
        let mut rb = Builder::with_resolver(params, Box::new(SeededResolver::new([0; 32])))
            .local_private_key(&rs)
            .unwrap()
            .prologue(&rp)
            .unwrap()
            .fixed_ephemeral_key_for_testing_only(&re);
        let psks: Vec<[u8; 32]> = v["init_psks"]
            .as_array()
            .map(|a| a.iter().map(|p| unhex(p).try_into().unwrap()).collect())
            .unwrap_or_default();
        for psk in &psks {
            ib = ib.psk(2, psk).unwrap();
            rb = rb.psk(2, psk).unwrap();
        }
        let mut init = ib.build_initiator().unwrap();
        let mut resp = rb.build_responder().unwrap();
        let mut buf = [0u8; 1024];
        let mut out = [0u8; 1024];
        for (i, m) in v["messages"].as_array().unwrap().iter().take(2).enumerate() {
            let payload = unhex(&m["payload"]);
            let expected = unhex(&m["ciphertext"]);
            let (w, r) = if i == 0 {
                (&mut init, &mut resp)
            } else {
                (&mut resp, &mut init)
            };
            let n = w.write_message(&payload, &mut buf).unwrap();
            assert_eq!(&buf[..n], &expected[..], "{name} message {i}");
            let p = r.read_message(&buf[..n], &mut out).unwrap();
            assert_eq!(&out[..p], &payload[..]);
        }
        assert_eq!(init.get_handshake_hash(), &unhex(&v["handshake_hash"])[..]);
    }
}
