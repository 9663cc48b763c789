//! `skim keys-gen`: the key files IBKR's self-service OAuth portal asks for,
//! and what to copy back into `.env`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde::Serialize;
use skim_asx::keys::{self, DhSource, KeySetOptions, Progress};
use skim_asx::progress::StatusLine;
use skim_asx::{Ctx, dh, output};

#[derive(Debug, Args)]
pub struct KeysGenArgs {
    /// Folder for the key files [env: OAUTH_KEYS_DIR] [default: ./oauth_keys]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Replace existing key files
    #[arg(long)]
    pub force: bool,

    /// Size of the fresh Diffie-Hellman prime
    #[arg(
        long,
        value_name = "N",
        default_value_t = 2048,
        conflicts_with = "dh_group"
    )]
    pub dh_bits: u64,

    /// Use a published group instead of searching for a fresh prime
    #[arg(long, value_name = "GROUP")]
    pub dh_group: Option<DhGroup>,

    /// Only print the OAUTH_DH_PRIME line of an existing dhparam.pem (e.g. one made by openssl)
    #[arg(long, value_name = "PEM", conflicts_with_all = ["force", "dh_group"])]
    pub prime_from: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DhGroup {
    /// RFC 7919's 2048-bit group
    Ffdhe2048,
}

#[derive(Serialize)]
struct Report {
    dir: Option<PathBuf>,
    files: Vec<PathBuf>,
    dh_bits: u64,
    oauth_dh_prime: String,
    ms: Option<u64>,
    next_steps: Vec<String>,
}

pub fn run(ctx: &Ctx, args: KeysGenArgs) -> Result<()> {
    if let Some(pem) = &args.prime_from {
        return print_prime(ctx, pem);
    }
    let dh = match args.dh_group {
        Some(DhGroup::Ffdhe2048) => DhSource::Ffdhe2048,
        None => DhSource::Generate {
            bits: args.dh_bits,
            threads: dh::default_threads(),
        },
    };
    let options = KeySetOptions {
        dir: ctx.config.keys_dir.clone(),
        force: args.force,
        dh,
    };
    let status = StatusLine::stderr();
    let tried = AtomicU64::new(0);
    let progress = |event: Progress| {
        let line = match event {
            Progress::RsaKeys => "generating two 2048-bit RSA key pairs".to_owned(),
            Progress::DhCandidates(n) => {
                // Workers report concurrently; only ever move forward.
                if !status.is_shown() || tried.fetch_max(n, Ordering::Relaxed) > n {
                    return;
                }
                format!("searching for a safe prime: {n} candidates tested")
            }
            Progress::Writing => "writing the key files".to_owned(),
        };
        status.show(&line);
    };
    let result = keys::write_key_set(&options, &progress);
    status.clear();
    let made = result?;
    let report = Report {
        dir: Some(made.dir.clone()),
        files: made.files.clone(),
        dh_bits: made.dh_bits,
        oauth_dh_prime: made.dh_prime_hex.clone(),
        ms: Some(made.total_time.as_millis() as u64),
        next_steps: next_steps(&made.dir),
    };
    if ctx.json {
        return output::print_json(&report);
    }
    let mut text = format!("Wrote to {}:\n", made.dir.display());
    for file in &made.files {
        text.push_str(&format!("  {}\n", file.display()));
    }
    text.push_str(&format!(
        "\nDH prime: {} bits, found in {:.1} s\n\nOAUTH_DH_PRIME={}\n\nNext steps:\n",
        made.dh_bits,
        made.dh_time.as_secs_f64(),
        made.dh_prime_hex
    ));
    for (n, step) in report.next_steps.iter().enumerate() {
        text.push_str(&format!("  {}. {step}\n", n + 1));
    }
    output::print_text(&text)
}

fn print_prime(ctx: &Ctx, pem: &Path) -> Result<()> {
    let params = dh::read_params(pem)?;
    if ctx.json {
        return output::print_json(&Report {
            dir: None,
            files: Vec::new(),
            dh_bits: params.bits(),
            oauth_dh_prime: params.oauth_prime_hex(),
            ms: None,
            next_steps: Vec::new(),
        });
    }
    output::print_text(&format!("OAUTH_DH_PRIME={}", params.oauth_prime_hex()))
}

fn next_steps(dir: &Path) -> Vec<String> {
    let d = dir.display();
    vec![
        "Log in to IBKR's self-service OAuth portal \
         (https://ndcdyn.interactivebrokers.com/sso/Login?action=OAUTH&RL=1) with the username \
         whose paper account skim will trade."
            .to_owned(),
        "Choose a consumer key (9 letters A-Z) and put it in .env as OAUTH_CONSUMER_KEY."
            .to_owned(),
        format!(
            "Upload {d}/public_signature.pem as the signature key, {d}/public_encryption.pem as \
             the encryption key, and {d}/dhparam.pem as the Diffie-Hellman parameters."
        ),
        "Generate the access token; copy it to OAUTH_ACCESS_TOKEN and the access token secret \
         to OAUTH_ACCESS_TOKEN_SECRET in .env."
            .to_owned(),
        "Add the OAUTH_DH_PRIME line above to .env, then `chmod 600 .env`.".to_owned(),
        "Run `skim auth-check`. A new consumer key works only after IBKR's next weekend \
         restart; until then auth-check says \"invalid consumer\"."
            .to_owned(),
        format!("Keep the private_*.pem files in {d} (mode 0600); never share or commit them."),
    ]
}
