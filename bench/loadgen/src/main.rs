//! `grelay-loadgen`: the benchmark harness's load generator (see `bench/README.md`).
//!
//! It drives the protocol core (`grelay-proto`) directly, with no TUN and no shell:
//!
//! * `keys`: prints `[[clients]]` tables for `--count` deterministic client keys, for the
//!   gateway's configuration;
//! * `handshakes`: in-process, single-threaded (the harness pins it to one core with
//!   `taskset`): how many handshake initiations one `Gateway` answers per second, and the
//!   client-side costs, with no network in between;
//! * `sessions`: brings up `--count` client sessions (keys from `keys`) against a real gateway
//!   over UDP, paced at `--rate` handshakes per second, waits until every one has its
//!   address assignment, prints a `ready` line and then keeps them idle for `--hold` seconds
//!   (the harness reads the gateway's memory meanwhile). `--idle silent` (default) stops
//!   running a session's timers once it has its addresses, so it sends nothing more;
//!   `--idle protocol` lets the state machine run (probes every second for 30 s after a
//!   handshake, keepalives every 25 s), as a real client would;
//! * `flood`: replays handshake initiations of keys the gateway does not know (mac1 valid, so
//!   they get past the cheapest check) from several source addresses, as fast as possible or
//!   at `--rate`, for `--seconds`, and counts what comes back (cookie replies).
//!
//! Every command prints one JSON object per line on stdout; progress goes to stderr. Every
//! loop is bounded in time. Traffic goes only to the `--gateway` address given.

use std::collections::HashMap;
use std::io::{ErrorKind, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use grelay_proto::crypto::keys::{PublicKey, StaticSecret};
use grelay_proto::tunnel::client::{Client, ClientConfig, ClientEvent};
use grelay_proto::tunnel::gateway::{Gateway, GatewayConfig, PeerConfig};
use grelay_proto::wire::control::AddressAssignment;
use grelay_proto::wire::outer::{self, CookieReply, Data, Initiation, MessageKind, Response};

type Result<T> = std::result::Result<T, String>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first().cloned() else {
        usage();
    };
    let opts = match Opts::parse(&args[1..]) {
        Ok(o) => o,
        Err(e) => fail(&e),
    };
    let result = match command.as_str() {
        "keys" => keys(&opts),
        "handshakes" => handshakes(&opts),
        "sessions" => sessions(&opts),
        "flood" => flood(&opts),
        _ => usage(),
    };
    if let Err(e) = result {
        fail(&e);
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: grelay-loadgen COMMAND [--option value]...\n\
         \n\
         keys       --count N [--seed S]             [[clients]] tables for the gateway config\n\
         handshakes [--count N] [--reps R]           in-process handshakes/s (pin it with taskset)\n\
         sessions   --gateway IP:PORT --gateway-key B64 --count N [--seed S] [--rate R]\n\
         \x20          [--hold SECS] [--timeout SECS] [--bind IP] [--idle silent|protocol]\n\
         flood      --gateway IP:PORT --gateway-key B64 --seconds S [--rate R (0 = max)]\n\
         \x20          [--sources IP,IP,...] [--distinct K]"
    );
    std::process::exit(2)
}

fn fail(message: &str) -> ! {
    eprintln!("grelay-loadgen: {message}");
    std::process::exit(1)
}

/// `--name value` pairs.
struct Opts(HashMap<String, String>);

impl Opts {
    fn parse(args: &[String]) -> Result<Opts> {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(name) = it.next() {
            let Some(key) = name.strip_prefix("--") else {
                return Err(format!("unexpected argument {name:?}"));
            };
            let value = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
            map.insert(key.to_owned(), value.clone());
        }
        Ok(Opts(map))
    }

    fn get<T: std::str::FromStr>(&self, name: &str, default: Option<T>) -> Result<T> {
        match self.0.get(name) {
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name} {v:?} is not a valid value")),
            None => default.ok_or_else(|| format!("--{name} is required")),
        }
    }

    fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// splitmix64: a fixed, well-mixed expansion of (seed, index) into key bytes. The keys are
/// for benchmarks only; they need to be distinct and reproducible, not secret.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn bytes32(seed: u64, index: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let word = mix(seed ^ mix(index.wrapping_mul(4).wrapping_add(i as u64)));
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    out
}

fn client_key(seed: u64, index: u64) -> StaticSecret {
    StaticSecret::from_bytes(bytes32(seed, index))
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn parse_key(b64: &str) -> Result<PublicKey> {
    b64.parse()
        .map_err(|_| format!("{b64:?} is not a public key (44 characters of base64)"))
}

fn json_f(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "null".into()
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

// ---------------------------------------------------------------------------------------
// keys

fn keys(opts: &Opts) -> Result<()> {
    let count: u64 = opts.get("count", None)?;
    let seed: u64 = opts.get("seed", Some(1))?;
    let mut out = String::new();
    for i in 0..count {
        out += &format!(
            "[[clients]]\nname = \"lg{i}\"\npublic_key = \"{}\"\n\n",
            client_key(seed, i).public_key()
        );
    }
    std::io::stdout()
        .write_all(out.as_bytes())
        .map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------
// handshakes (in-process)

fn assignment(i: u64) -> AddressAssignment {
    // 10.77.0.0/16: .0.1 is the gateway's, clients from .0.2 on.
    let host = (i + 2) as u32;
    AddressAssignment {
        ipv4: Some((Ipv4Addr::from(0x0a4d_0000 | host), 16)),
        ipv6: None,
        mtu: 1420,
    }
}

fn handshakes(opts: &Opts) -> Result<()> {
    let count: u64 = opts.get("count", Some(2000))?;
    let reps: usize = opts.get("reps", Some(3))?;
    let seed: u64 = opts.get("seed", Some(7))?;
    if count == 0 || count > 60_000 || reps == 0 || reps > 20 {
        return Err("--count must be 1..60000 and --reps 1..20".into());
    }
    let gateway_secret = client_key(0x6a7e_3a7e, 0);
    let gateway_key = gateway_secret.public_key();
    let mut config = GatewayConfig::new(gateway_secret);
    // Measure the handshake itself, not the flood defence (cookies above 1000/s).
    config.load_threshold = u32::MAX;
    let endpoint: SocketAddr = "198.18.0.2:4747".parse().expect("literal");
    let from: SocketAddr = "198.18.0.1:40000".parse().expect("literal");
    let peers: Vec<PeerConfig> = (0..count)
        .map(|i| PeerConfig {
            public_key: client_key(seed, i).public_key(),
            psk: None,
            name: None,
            assignment: assignment(i),
        })
        .collect();
    let unix = unix_now();
    let now0 = Instant::now();

    // Client side, part 1: making the initiation (ephemeral key, two DH, timestamp).
    let started = Instant::now();
    let mut clients: Vec<Client> = (0..count)
        .map(|i| {
            let config = ClientConfig::new(client_key(seed, i), gateway_key, endpoint, unix);
            Client::new(config, now0, bytes32(seed ^ 0xc11e, i))
        })
        .collect();
    let t_initiate = started.elapsed().as_secs_f64();
    let initiations: Vec<Vec<u8>> = clients
        .iter_mut()
        .map(|c| c.poll_transmit().map(|t| t.contents).unwrap_or_default())
        .collect();

    // Gateway side: a fresh gateway per repetition (so the same initiations are new to it).
    let mut gateway_rates = Vec::new();
    let mut responses: Vec<Vec<u8>> = Vec::new();
    let mut answered = 0usize;
    for rep in 0..reps {
        let mut gateway = Gateway::new(config.clone(), now0, bytes32(0x6a7e, rep as u64));
        for p in &peers {
            gateway.add_peer(p.clone());
        }
        let mut bufs = initiations.clone();
        let mut out = Vec::with_capacity(bufs.len());
        let started = Instant::now();
        for buf in bufs.iter_mut() {
            let _ = gateway.handle_datagram(Instant::now(), from, buf);
            while let Some(t) = gateway.poll_transmit() {
                out.push(t.contents);
            }
            while gateway.poll_event().is_some() {}
        }
        let elapsed = started.elapsed().as_secs_f64();
        gateway_rates.push(count as f64 / elapsed);
        answered = out.len();
        if rep == 0 {
            responses = out;
        }
        eprintln!(
            "handshakes: repetition {}: gateway answered {answered} of {count} in {elapsed:.3}s",
            rep + 1
        );
    }

    // Client side, part 2: reading the response (two DH, key split).
    let mut completed = 0u64;
    let started = Instant::now();
    for (client, mut response) in clients.iter_mut().zip(responses) {
        let _ = client.handle_datagram(Instant::now(), endpoint, &mut response);
        while client.poll_transmit().is_some() {}
        while let Some(e) = client.poll_event() {
            if matches!(e, ClientEvent::HandshakeCompleted { .. }) {
                completed += 1;
            }
        }
    }
    let t_finish = started.elapsed().as_secs_f64();
    let gw_median = median(&mut gateway_rates.clone());
    let n = count as f64;
    let full = n / (t_initiate + n / gw_median + t_finish);
    let rates: Vec<String> = gateway_rates.iter().map(|r| json_f(*r)).collect();
    print_line(&format!(
        "{{\"count\":{count},\"reps\":{reps},\"gateway_handshakes_per_s\":[{}],\
         \"gateway_handshakes_per_s_median\":{},\"answered\":{answered},\
         \"client_initiations_per_s\":{},\"client_responses_per_s\":{},\"completed\":{completed},\
         \"full_handshakes_per_s\":{}}}",
        rates.join(","),
        json_f(gw_median),
        json_f(n / t_initiate),
        json_f(n / t_finish),
        json_f(full)
    ));
    if answered as u64 != count || completed != count {
        return Err(format!(
            "only {answered} initiations answered and {completed} handshakes completed of {count}"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// sockets

fn set_buffers(socket: &UdpSocket, bytes: i32) {
    let fd = socket.as_raw_fd();
    for (opt, force) in [
        (libc::SO_RCVBUF, libc::SO_RCVBUFFORCE),
        (libc::SO_SNDBUF, libc::SO_SNDBUFFORCE),
    ] {
        let v: libc::c_int = bytes;
        let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let p = (&v as *const libc::c_int).cast::<libc::c_void>();
        // SAFETY: a valid fd and a pointer to a c_int of the given length.
        let r = unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, force, p, len) };
        if r != 0 {
            // SAFETY: as above.
            unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, opt, p, len) };
        }
    }
}

fn bind(ip: IpAddr) -> Result<UdpSocket> {
    let socket =
        UdpSocket::bind(SocketAddr::new(ip, 0)).map_err(|e| format!("binding {ip}: {e}"))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| format!("non-blocking: {e}"))?;
    set_buffers(&socket, 8 << 20);
    Ok(socket)
}

/// The session id a datagram for a client names (the client's own id), by message kind.
fn receiver_of(buf: &[u8]) -> Option<(MessageKind, u32)> {
    match outer::classify(buf).ok()? {
        MessageKind::Response => Some((
            MessageKind::Response,
            Response::new_checked(buf).ok()?.receiver(),
        )),
        MessageKind::CookieReply => Some((
            MessageKind::CookieReply,
            CookieReply::new_checked(buf).ok()?.receiver(),
        )),
        MessageKind::Data => Some((MessageKind::Data, Data::new_checked(buf).ok()?.receiver())),
        MessageKind::Initiation => None,
    }
}

// ---------------------------------------------------------------------------------------
// sessions

#[derive(Default)]
struct Tally {
    established: u64,
    configured: u64,
    cookies: u64,
    sent: u64,
    send_errors: u64,
    received: u64,
    unmatched: u64,
    drops: u64,
}

struct Fleet {
    socket: UdpSocket,
    clients: Vec<Client>,
    configured: Vec<bool>,
    by_id: HashMap<u32, usize>,
    tally: Tally,
}

impl Fleet {
    /// Sends what client `i` queued and books its events.
    fn drain(&mut self, i: usize) {
        while let Some(t) = self.clients[i].poll_transmit() {
            if let Ok(init) = Initiation::new_checked(&t.contents[..]) {
                self.by_id.insert(init.sender(), i);
            }
            match self.socket.send_to(&t.contents, t.destination) {
                Ok(_) => self.tally.sent += 1,
                Err(_) => self.tally.send_errors += 1,
            }
        }
        while let Some(e) = self.clients[i].poll_event() {
            match e {
                ClientEvent::HandshakeCompleted { first: true, .. } => self.tally.established += 1,
                ClientEvent::Configured(_) if !self.configured[i] => {
                    self.configured[i] = true;
                    self.tally.configured += 1;
                }
                ClientEvent::CookieReceived => self.tally.cookies += 1,
                _ => {}
            }
        }
    }

    /// Reads everything waiting on the socket; returns how many datagrams.
    fn receive(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        // Bounded: at most 4096 datagrams per call, then the caller's loop goes on.
        while n < 4096 {
            let (len, from) = match self.socket.recv_from(buf) {
                Ok(x) => x,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => break,
            };
            n += 1;
            self.tally.received += 1;
            let Some(i) = receiver_of(&buf[..len]).and_then(|(_, id)| self.by_id.get(&id).copied())
            else {
                self.tally.unmatched += 1;
                continue;
            };
            if self.clients[i]
                .handle_datagram(Instant::now(), from, &mut buf[..len])
                .is_err()
            {
                self.tally.drops += 1;
            }
            self.drain(i);
        }
        n
    }
}

fn sessions(opts: &Opts) -> Result<()> {
    let gateway: SocketAddr = opts.get("gateway", None)?;
    let gateway_key = parse_key(opts.str("gateway-key").ok_or("--gateway-key is required")?)?;
    let count: usize = opts.get("count", None)?;
    let seed: u64 = opts.get("seed", Some(1))?;
    let rate: f64 = opts.get("rate", Some(800.0))?;
    let hold: f64 = opts.get("hold", Some(5.0))?;
    let timeout: f64 = opts.get("timeout", Some(60.0))?;
    let bind_ip: IpAddr = opts.get("bind", Some(IpAddr::from([0, 0, 0, 0])))?;
    // `silent` (default): once a session has its addresses its timers are no longer run, so
    // it sends nothing more (truly idle). `protocol`: the state machine runs as in a real
    // client: RTT probes every second for 30 s after the handshake, keepalives every 25 s.
    let silent = match opts.str("idle").unwrap_or("silent") {
        "silent" => true,
        "protocol" => false,
        other => return Err(format!("--idle {other:?}: use silent or protocol")),
    };
    if count == 0 || count > 100_000 || !(1.0..=100_000.0).contains(&rate) {
        return Err("--count must be 1..100000 and --rate 1..100000".into());
    }
    if !(0.0..=600.0).contains(&hold) || !(1.0..=600.0).contains(&timeout) {
        return Err("--hold must be 0..600 s and --timeout 1..600 s".into());
    }
    let unix = unix_now();
    let mut fleet = Fleet {
        socket: bind(bind_ip)?,
        clients: Vec::with_capacity(count),
        configured: Vec::with_capacity(count),
        by_id: HashMap::with_capacity(count * 2),
        tally: Tally::default(),
    };
    let mut buf = vec![0u8; 65536];
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(timeout);
    let mut next_create = start;
    let mut next_sweep = start;
    let mut next_report = start + Duration::from_secs(1);
    let mut ready_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let mut busy = false;
        // At most 64 new clients per turn, so that answers are read between bursts.
        let mut created_now = 0;
        while fleet.clients.len() < count && next_create <= now && created_now < 64 {
            let i = fleet.clients.len() as u64;
            let config = ClientConfig::new(client_key(seed, i), gateway_key, gateway, unix);
            fleet
                .clients
                .push(Client::new(config, now, bytes32(seed ^ 0x5e55, i)));
            fleet.configured.push(false);
            fleet.drain(i as usize);
            next_create += interval;
            created_now += 1;
            busy = true;
        }
        if fleet.receive(&mut buf) > 0 {
            busy = true;
        }
        if now >= next_sweep {
            // Timers: retries of unanswered initiations, config requests, keepalives.
            for i in 0..fleet.clients.len() {
                if silent && fleet.configured[i] {
                    continue;
                }
                if fleet.clients[i].poll_timeout().is_some_and(|t| t <= now) {
                    fleet.clients[i].handle_timeout(now);
                    fleet.drain(i);
                }
            }
            next_sweep = now + Duration::from_millis(100);
        }
        if now >= next_report {
            let t = &fleet.tally;
            eprintln!(
                "sessions: {:.0}s: {} created, {} established, {} configured, {} cookie replies",
                now.duration_since(start).as_secs_f64(),
                fleet.clients.len(),
                t.established,
                t.configured,
                t.cookies
            );
            next_report = now + Duration::from_secs(1);
        }
        match ready_at {
            None if (fleet.tally.configured as usize) >= count || now >= deadline => {
                ready_at = Some(now);
                print_line(&format!(
                    "{{\"event\":\"ready\",\"count\":{count},\"configured\":{},\"established\":{},\
                     \"seconds\":{},\"timed_out\":{}}}",
                    fleet.tally.configured,
                    fleet.tally.established,
                    json_f(now.duration_since(start).as_secs_f64()),
                    (fleet.tally.configured as usize) < count
                ));
            }
            Some(t) if now.duration_since(t).as_secs_f64() >= hold => break,
            _ => {}
        }
        if !busy {
            std::thread::sleep(Duration::from_micros(300));
        }
    }
    let t = &fleet.tally;
    let ready = ready_at.map_or(f64::NAN, |r| r.duration_since(start).as_secs_f64());
    print_line(&format!(
        "{{\"event\":\"done\",\"count\":{count},\"created\":{},\"established\":{},\"configured\":{},\
         \"establish_seconds\":{},\"handshakes_per_s\":{},\"cookie_replies\":{},\"sent\":{},\
         \"send_errors\":{},\"received\":{},\"unmatched\":{},\"dropped\":{}}}",
        fleet.clients.len(),
        t.established,
        t.configured,
        json_f(ready),
        json_f(t.established as f64 / ready),
        t.cookies,
        t.sent,
        t.send_errors,
        t.received,
        t.unmatched,
        t.drops
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// flood

fn flood(opts: &Opts) -> Result<()> {
    let gateway: SocketAddr = opts.get("gateway", None)?;
    let gateway_key = parse_key(opts.str("gateway-key").ok_or("--gateway-key is required")?)?;
    let seconds: f64 = opts.get("seconds", None)?;
    let rate: f64 = opts.get("rate", Some(0.0))?;
    let distinct: u64 = opts.get("distinct", Some(256))?;
    let seed: u64 = opts.get("seed", Some(0xf100d))?;
    if !(0.1..=120.0).contains(&seconds) || !(1..=100_000).contains(&distinct) || rate < 0.0 {
        return Err("--seconds must be 0.1..120, --distinct 1..100000, --rate >= 0".into());
    }
    let sources: Vec<IpAddr> = match opts.str("sources") {
        Some(list) => list
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| format!("{s:?} is not an IP address")))
            .collect::<Result<_>>()?,
        None => vec![IpAddr::from([0, 0, 0, 0])],
    };
    if sources.is_empty() || sources.len() > 4096 {
        return Err("--sources: 1..4096 addresses".into());
    }
    // Initiations of keys the gateway does not know: mac1 is right (it needs only the
    // gateway's public key), so each one costs the gateway more than a garbage datagram.
    let unix = unix_now();
    let now = Instant::now();
    let initiations: Vec<Vec<u8>> = (0..distinct)
        .map(|i| {
            let config = ClientConfig::new(client_key(seed, i), gateway_key, gateway, unix);
            let mut c = Client::new(config, now, bytes32(seed ^ 0xf1, i));
            c.poll_transmit().map(|t| t.contents).unwrap_or_default()
        })
        .collect();
    let sockets: Vec<UdpSocket> = sources.iter().map(|ip| bind(*ip)).collect::<Result<_>>()?;
    let mut buf = vec![0u8; 2048];
    let (mut sent, mut blocked, mut cookies, mut responses, mut other) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut k = 0usize;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if rate > 0.0 && sent as f64 >= rate * now.duration_since(start).as_secs_f64() {
            std::thread::sleep(Duration::from_micros(100));
        } else {
            for _ in 0..32 {
                let socket = &sockets[k % sockets.len()];
                let msg = &initiations[k % initiations.len()];
                match socket.send_to(msg, gateway) {
                    Ok(_) => sent += 1,
                    Err(_) => {
                        blocked += 1;
                        std::thread::sleep(Duration::from_micros(50));
                        break;
                    }
                }
                k += 1;
            }
        }
        for socket in &sockets {
            // Bounded per socket and turn.
            for _ in 0..256 {
                match socket.recv_from(&mut buf) {
                    Ok((len, _)) => match outer::classify(&buf[..len]) {
                        Ok(MessageKind::CookieReply) => cookies += 1,
                        Ok(MessageKind::Response) => responses += 1,
                        _ => other += 1,
                    },
                    Err(_) => break,
                }
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    print_line(&format!(
        "{{\"seconds\":{},\"sources\":{},\"distinct\":{distinct},\"sent\":{sent},\
         \"sent_per_s\":{},\"send_blocked\":{blocked},\"cookie_replies\":{cookies},\
         \"responses\":{responses},\"other\":{other}}}",
        json_f(elapsed),
        sockets.len(),
        json_f(sent as f64 / elapsed)
    ));
    Ok(())
}
