//! The payload cipher, measured: the age crate's own stream (what mvault
//! used before) against `mvault::crypto::stream` (ring's ChaCha20-Poly1305
//! inside the same age v1 file), sealing and opening the same bytes in
//! memory, one thread. bench/core.sh runs it first; see bench/README.md, "Why
//! ring for the payload".
//!
//! `cargo run --release --example payload_cipher [MIB]` (default 256).

use std::io::{Read, Write};
use std::time::Instant;

use mvault::crypto::stream::{open, Sealer};

/// Best of `runs` timings of `f`, in seconds.
fn best(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("MIB is a whole number"))
        .unwrap_or(256);
    let n = mib << 20;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let plain: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let id = age::x25519::Identity::generate();
    let recipient = id.to_public();
    let runs = 3;
    // Output buffers are made once and reused, so that page faults of a
    // fresh buffer are measured for neither.
    let mut sealed = Vec::with_capacity(n + n / 1024 + 4096);
    let mut opened = Vec::with_capacity(n);

    let age_seal = best(runs, || {
        sealed.clear();
        let enc =
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .expect("one recipient");
        let mut w = enc.wrap_output(&mut sealed).expect("age header");
        w.write_all(&plain).expect("in memory");
        w.finish().expect("in memory");
    });
    let age_ct = sealed.clone();
    let age_open = best(runs, || {
        opened.clear();
        age::Decryptor::new(&age_ct[..])
            .expect("age header")
            .decrypt(std::iter::once(&id as &dyn age::Identity))
            .expect("our key")
            .read_to_end(&mut opened)
            .expect("authentic");
    });
    assert_eq!(opened, plain);

    let mut scratch = Vec::new();
    let ring_seal = best(runs, || {
        sealed.clear();
        Sealer::new(&recipient)
            .expect("age header")
            .seal(&plain, &mut scratch, |c| {
                sealed.extend_from_slice(c);
                Ok(())
            })
            .expect("in memory");
    });
    let ring_open = best(runs, || {
        opened.clear();
        open(&id, &mut &sealed[..], n as u64, &mut opened).expect("authentic");
    });
    assert_eq!(opened, plain);

    let rate = |s: f64| n as f64 / s / 1e6;
    println!("payload cipher, {mib} MiB in memory, one thread, best of {runs}:");
    println!(
        "  seal: age crate {:7.0} MB/s   mvault::crypto::stream (ring) {:7.0} MB/s   ({:.2}x)",
        rate(age_seal),
        rate(ring_seal),
        age_seal / ring_seal
    );
    println!(
        "  open: age crate {:7.0} MB/s   mvault::crypto::stream (ring) {:7.0} MB/s   ({:.2}x)",
        rate(age_open),
        rate(ring_open),
        age_open / ring_open
    );
}
