//! `guard`: the regression guard (issue 20, item 5). In well under two minutes it prints
//! the ratios that say whether a change made the hot paths slower, each measured against
//! the signature check it is bounded by, in the same run:
//!
//! - open / verify: decode + `verify_strict` + decrypt of one envelope, one thread,
//!   against raw `verify_strict`;
//! - ingest / verify: a daemon's gossip ingest (validated, decrypted, committed) against
//!   2 × raw `verify_strict` (the machine's two cores);
//! - catch-up / batch verify: a late node's history sync against one thread of
//!   [`BatchVerifier::check`](alertmesh_protocol::batch::BatchVerifier::check).

use crate::Opts;
use crate::common::{column, print_table, series};
use crate::ingest::{guard_run, ingest_plan, presign};
use crate::verify::batch_verify_rate;
use alertmesh_protocol::{KeyPackage, SignedEnvelope};
use std::time::{Duration, Instant};

/// One run's figures.
struct GuardRun {
    verify: f64,
    open: f64,
    batch: f64,
    ingest: f64,
    catchup: f64,
}

/// `node-bench guard`.
pub fn run(opts: &Opts) -> anyhow::Result<()> {
    let started = Instant::now();
    let heading = format!(
        "node-bench guard: open/verify, ingest ({} alerts of ~{} B) and catch-up, {} run(s)",
        opts.count, opts.size, opts.runs
    );
    let runs = series(heading, opts.runs, |run| {
        let (verify, open) = open_rates(opts.size, Duration::from_secs(2))?;
        let (batch, _) = batch_verify_rate(opts.size, 1000, Duration::from_secs(2), true);
        let (ingest, catchup) = guard_run(opts, run)?;
        let r = GuardRun {
            verify,
            open,
            batch,
            ingest,
            catchup,
        };
        println!(
            "  open/verify {:.2}, ingest/(2 × verify) {:.2}, catch-up/batch verify {:.2} (verify {:.0}/s, batch {:.0}/s, ingest {:.0}/s, catch-up {:.0}/s)",
            r.open / r.verify,
            r.ingest / (2.0 * r.verify),
            r.catchup / r.batch,
            r.verify,
            r.batch,
            r.ingest,
            r.catchup
        );
        Ok(r)
    })?;
    let col = |f: &dyn Fn(&GuardRun) -> f64| column(&runs, f);
    print_table(
        "regression guard",
        runs.len(),
        vec![
            (
                "open / raw verify_strict, 1 thread",
                col(&|r| r.open / r.verify),
            ),
            (
                "ingest / (2 × raw verify_strict)",
                col(&|r| r.ingest / (2.0 * r.verify)),
            ),
            (
                "catch-up / batch verify, 1 thread",
                col(&|r| r.catchup / r.batch),
            ),
            ("raw verify_strict, 1 thread (/s)", col(&|r| r.verify)),
            ("batch verify, 1 thread (/s)", col(&|r| r.batch)),
            ("ingest (envelopes/s)", col(&|r| r.ingest)),
            ("catch-up (envelopes/s)", col(&|r| r.catchup)),
        ],
    );
    println!("guard took {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Single-thread rates of raw `verify_strict` and of opening an envelope (strict decode,
/// `verify_signature`, decrypt and decode the content), alternating so both see the
/// same machine load.
fn open_rates(size: usize, each: Duration) -> anyhow::Result<(f64, f64)> {
    let network = ingest_plan().build(&mut rand::rngs::OsRng);
    let (kp, envs) = presign(&network, 64, size)?;
    let kp = SignedEnvelope::decode(&kp, 1 << 20)?;
    let h = kp.header();
    let sink = &network.orgs[0].nodes[0];
    let key = KeyPackage::decode(kp.payload())?.open(&h.network_id, &h.author, &sink.agreement)?;
    let decoded: Vec<SignedEnvelope> = envs
        .iter()
        .map(|b| SignedEnvelope::decode(b, 1 << 20))
        .collect::<Result<_, _>>()?;
    let raw: Vec<_> = decoded
        .iter()
        .map(|e| {
            let key = ed25519_dalek::VerifyingKey::from_bytes(e.header().author.as_bytes())?;
            let msg = alertmesh_protocol::ids::tagged(
                alertmesh_protocol::ids::tags::ENVELOPE,
                e.signed_bytes(),
            );
            Ok((
                key,
                msg,
                ed25519_dalek::Signature::from_bytes(&e.signature()),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let (mut verify, mut open) = ((0usize, 0.0f64), (0usize, 0.0f64));
    let slice = each / 4;
    for _ in 0..4 {
        let t = Instant::now();
        while t.elapsed() < slice {
            for (k, m, s) in &raw {
                anyhow::ensure!(k.verify_strict(std::hint::black_box(m), s).is_ok());
            }
            verify.0 += raw.len();
        }
        verify.1 += t.elapsed().as_secs_f64();
        let t = Instant::now();
        while t.elapsed() < slice {
            for bytes in &envs {
                let env = SignedEnvelope::decode(std::hint::black_box(bytes), 1 << 20)?;
                env.verify_signature()?;
                std::hint::black_box(env.open(&key)?);
            }
            open.0 += envs.len();
        }
        open.1 += t.elapsed().as_secs_f64();
    }
    Ok((verify.0 as f64 / verify.1, open.0 as f64 / open.1))
}
