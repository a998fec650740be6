//! `verify`: single-thread signature-check rates, the yardstick of `ingest`.

use crate::Opts;
use crate::common::thread_self_cpu;
use crate::ingest::{ingest_plan, presign};
use alertmesh_protocol::SignedEnvelope;
use alertmesh_protocol::batch::BatchVerifier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `node-bench verify`.
pub fn run(opts: &Opts) -> anyhow::Result<()> {
    let (raw, env) = verify_rates(opts.size, Duration::from_secs(3));
    println!(
        "verify_strict, single thread, ~{} B envelopes: raw ed25519-dalek {raw:.0}/s ({:.0} per CPU second), SignedEnvelope::verify_signature {env:.0}/s",
        opts.size,
        RAW_VERIFY_CPU_RATE.load(Ordering::Relaxed)
    );
    let raw_cpu = RAW_VERIFY_CPU_RATE.load(Ordering::Relaxed).max(1) as f64;
    for (batch, name) in [
        (true, "check (decode + batch verify)"),
        (false, "check_each (decode + verify_strict, cached keys)"),
    ] {
        let (rate, cpu) = batch_verify_rate(opts.size, 1000, Duration::from_secs(3), batch);
        println!(
            "BatchVerifier::{name}, single thread, pages of 1000: {rate:.0}/s ({cpu:.0} per CPU second, {:.2} × raw verify_strict per CPU second)",
            cpu / raw_cpu
        );
    }
    Ok(())
}

/// Single-thread verify rates on envelopes of about `size` bytes: raw ed25519-dalek
/// `verify_strict` over the exact signed message, and the protocol's envelope check.
pub fn verify_rates(size: usize, each: Duration) -> (f64, f64) {
    let Ok((_, envs)) = presign(&ingest_plan().build(&mut rand::rngs::OsRng), 64, size) else {
        return (0.0, 0.0);
    };
    let decoded: Vec<SignedEnvelope> = envs
        .iter()
        .filter_map(|b| SignedEnvelope::decode(b, 1 << 20).ok())
        .collect();
    let raw: Vec<(
        ed25519_dalek::VerifyingKey,
        Vec<u8>,
        ed25519_dalek::Signature,
    )> = decoded
        .iter()
        .filter_map(|e| {
            let key = ed25519_dalek::VerifyingKey::from_bytes(e.header().author.as_bytes()).ok()?;
            let msg = alertmesh_protocol::ids::tagged(
                alertmesh_protocol::ids::tags::ENVELOPE,
                e.signed_bytes(),
            );
            Some((
                key,
                msg,
                ed25519_dalek::Signature::from_bytes(&e.signature()),
            ))
        })
        .collect();
    let time = |f: &mut dyn FnMut(usize) -> bool| -> f64 {
        let start = Instant::now();
        let cpu0 = thread_self_cpu();
        let mut n = 0usize;
        while start.elapsed() < each {
            for _ in 0..64 {
                if !f(n) {
                    return 0.0;
                }
                n += 1;
            }
        }
        let cpu = thread_self_cpu() - cpu0;
        VERIFY_CPU_RATE.store((n as f64 / cpu.max(1e-3)) as u64, Ordering::Relaxed);
        n as f64 / start.elapsed().as_secs_f64()
    };
    let raw_rate = time(&mut |i| {
        let (k, m, s) = &raw[i % raw.len()];
        k.verify_strict(std::hint::black_box(m), s).is_ok()
    });
    RAW_VERIFY_CPU_RATE.store(VERIFY_CPU_RATE.load(Ordering::Relaxed), Ordering::Relaxed);
    let env_rate = time(&mut |i| decoded[i % decoded.len()].verify_signature().is_ok());
    (raw_rate, env_rate)
}

/// Single-thread rate of [`BatchVerifier::check`] (decode and batch-verify; with
/// `batch` false, [`BatchVerifier::check_each`]: decode and `verify_strict` with cached
/// keys) over pages of `page` envelopes of about `size` bytes, one author, as sync
/// delivers them; and its rate per CPU second.
pub fn batch_verify_rate(size: usize, page: usize, each: Duration, batch: bool) -> (f64, f64) {
    let Ok((_, envs)) = presign(&ingest_plan().build(&mut rand::rngs::OsRng), page, size) else {
        return (0.0, 0.0);
    };
    let mut verifier = BatchVerifier::new();
    let start = Instant::now();
    let cpu0 = thread_self_cpu();
    let mut n = 0usize;
    while start.elapsed() < each {
        let checked = if batch {
            verifier.check(envs.clone())
        } else {
            verifier.check_each(envs.clone())
        };
        if checked.iter().any(|c| c.signature_ok() != Some(true)) {
            return (0.0, 0.0);
        }
        n += checked.len();
    }
    let cpu = thread_self_cpu() - cpu0;
    (
        n as f64 / start.elapsed().as_secs_f64(),
        n as f64 / cpu.max(1e-3),
    )
}

/// The last verify rate per CPU second of the measuring thread (immune to the machine's
/// other load, unlike the wall-clock rate).
static VERIFY_CPU_RATE: AtomicU64 = AtomicU64::new(0);
/// The raw `verify_strict` rate per CPU second.
pub static RAW_VERIFY_CPU_RATE: AtomicU64 = AtomicU64::new(0);
