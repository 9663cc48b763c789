//! Times 2048-bit safe prime generation against `openssl dhparam 2048`.
//!
//! `cargo bench --bench dh` runs each side `SKIM_BENCH_RUNS` times (default
//! 5), skim with every core, and prints runs, median, min and max per side.
//! Safe prime search times are spread wide (each run is a random walk to the
//! next safe prime), so compare medians over several runs, not single runs.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use skim_asx::dh;

const DEFAULT_RUNS: usize = 5;
const BITS: u64 = 2048;

fn main() {
    let runs = match std::env::var("SKIM_BENCH_RUNS") {
        Ok(text) => match text.parse::<usize>() {
            Ok(runs) if runs > 0 => runs,
            _ => {
                eprintln!("SKIM_BENCH_RUNS={text:?} is not a positive whole number");
                std::process::exit(2);
            }
        },
        Err(_) => DEFAULT_RUNS,
    };
    let threads = dh::default_threads();

    let mut skim_times = Vec::with_capacity(runs);
    for run in 1..=runs {
        let tested = AtomicU64::new(0);
        let start = Instant::now();
        let prime = dh::generate_safe_prime(BITS, threads, &|count| {
            tested.fetch_max(count, Ordering::Relaxed);
        })
        .expect("safe prime generation failed");
        let elapsed = start.elapsed();
        assert_eq!(prime.bits(), BITS);
        let tested = tested.into_inner();
        eprintln!(
            "skim run {run}/{runs}: {:.2} s, {tested} candidates tested ({:.0}/s)",
            elapsed.as_secs_f64(),
            tested as f64 / elapsed.as_secs_f64()
        );
        skim_times.push(elapsed);
    }

    let mut rows = vec![(format!("skim ({threads} threads)"), skim_times)];
    if openssl_present() {
        let mut openssl_times = Vec::with_capacity(runs);
        for run in 1..=runs {
            let start = Instant::now();
            let status = Command::new("openssl")
                .args(["dhparam", "-out", "/dev/null", &BITS.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("failed to run openssl");
            let elapsed = start.elapsed();
            assert!(status.success(), "openssl dhparam failed: {status}");
            eprintln!("openssl run {run}/{runs}: {:.2} s", elapsed.as_secs_f64());
            openssl_times.push(elapsed);
        }
        rows.push(("openssl dhparam".to_string(), openssl_times));
    } else {
        eprintln!("openssl not found; timing skim only");
    }

    println!("{BITS}-bit safe prime, generator 2");
    println!(
        "{:<20} {:>5} {:>10} {:>10} {:>10}",
        "generator", "runs", "median", "min", "max"
    );
    for (name, mut times) in rows {
        times.sort();
        let median = if times.len() % 2 == 1 {
            times[times.len() / 2]
        } else {
            (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2
        };
        println!(
            "{:<20} {:>5} {:>10} {:>10} {:>10}",
            name,
            times.len(),
            seconds(median),
            seconds(times[0]),
            seconds(times[times.len() - 1])
        );
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

fn openssl_present() -> bool {
    Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
