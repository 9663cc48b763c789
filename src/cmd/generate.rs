//! `skim generate` (hidden): the man pages and shell completions, made from
//! the clap definitions so they cannot drift from the real command line.
//!
//! The output is checked in under `man/` and `completions/`, and a test
//! regenerates it and fails on any difference. The sections clap cannot
//! know (exit status, environment, files, examples) are tables here; every
//! page must have examples, so a new subcommand cannot ship without them.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Command, CommandFactory, Subcommand};
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use crate::cli::Cli;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: GenerateWhat,
}

#[derive(Debug, Subcommand)]
pub enum GenerateWhat {
    /// Write skim.1 and one page per subcommand (skim-trade-enter.1, ...) into DIR
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Write skim.bash, _skim (zsh) and skim.fish into DIR
    Completions {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let (dir, files) = match &args.what {
        GenerateWhat::Man { dir } => (dir, man_pages()?),
        GenerateWhat::Completions { dir } => (dir, completions()?),
    };
    fs::create_dir_all(dir)
        .with_context(|| format!("failed to create folder {}", dir.display()))?;
    for (name, bytes) in files {
        let path = dir.join(&name);
        fs::write(&path, bytes).with_context(|| format!("failed to write {}", path.display()))?;
        log::info!("wrote {}", path.display());
    }
    Ok(())
}

/// The contract's exit statuses, as every page lists them.
const EXIT_STATUS: &[(u8, &str)] = &[
    (
        0,
        "Success, including \"nothing to do\" and \"skipped: ASX closed today\".",
    ),
    (1, "The command failed: network, broker error, I/O."),
    (2, "Invalid usage or configuration."),
    (
        3,
        "IBKR rejected the credentials, or the live session token did not validate.",
    ),
    (
        4,
        "Refused for safety: trading halted, a live account without permission, or the \
         broker's records and skim's disagree.",
    ),
];

/// Every setting skim reads, with its default. A test checks this against
/// the names `config.rs` reads.
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "OAUTH_CONSUMER_KEY",
        "Consumer key chosen in IBKR's self-service OAuth portal. Required for IBKR calls.",
    ),
    (
        "OAUTH_ACCESS_TOKEN",
        "Access token from the portal. Required for IBKR calls.",
    ),
    (
        "OAUTH_ACCESS_TOKEN_SECRET",
        "Access token secret from the portal (base64, RSA-encrypted). Required for IBKR calls.",
    ),
    (
        "OAUTH_DH_PRIME",
        "Diffie-Hellman prime in hex, as skim keys-gen prints it. Required for IBKR calls.",
    ),
    ("OAUTH_REALM", "OAuth realm. Default: limited_poa."),
    (
        "OAUTH_KEYS_DIR",
        "Folder holding private_signature.pem and private_encryption.pem. Default: \
         ./oauth_keys.",
    ),
    (
        "IBKR_BASE_URL",
        "Web API base URL; https, or http to a loopback host. Default: \
         https://api.ibkr.com/v1/api.",
    ),
    (
        "IBKR_SIGN_QUERY",
        "true to include query parameters in the OAuth signature. Default: false.",
    ),
    (
        "ASX_ANNOUNCEMENTS_URL",
        "Page of today's ASX announcements. Default: \
         https://www.asx.com.au/asx/v2/statistics/todayAnns.do.",
    ),
    (
        "DISCORD_WEBHOOK_URL",
        "Discord webhook for notifications; a secret. Unset: notifications are queued, not \
         sent.",
    ),
    ("SKIM_DB", "SQLite database file. Default: ./data/skim.db."),
    (
        "SKIM_NOW",
        "Pretend the market clock reads this RFC 3339 instant (tests, replays, demos). \
         Default: the real clock.",
    ),
    (
        "SKIM_ALLOW_LIVE",
        "true permits trading a live (non-DU) account. Default: paper accounts only.",
    ),
    (
        "SKIM_HTTP_TIMEOUT",
        "Timeout of each HTTP request, in seconds (at most 600). Default: 30.",
    ),
    (
        "SKIM_KEY_ROTATION_DAYS",
        "auth-check warns when the key files are older than this many days. Default: 180.",
    ),
    (
        "RUST_LOG",
        "Log filter (env_logger syntax), overriding -v. Logs go to stderr.",
    ),
];

/// The files skim reads and writes, relative to its working folder.
const FILES: &[(&str, &str)] = &[
    (
        ".env",
        "Settings, read from the working folder (or --env-file); real environment variables \
         win. Refused unless mode 0600.",
    ),
    (
        "oauth_keys/",
        "private_signature.pem and private_encryption.pem (mode 0600, never shared), the \
         public_*.pem and dhparam.pem files uploaded to IBKR's portal.",
    ),
    (
        "data/skim.db",
        "The SQLite database (SKIM_DB): candidates, orders, the notification outbox, the run \
         log, the trading halt.",
    ),
    (
        "data/skim.lock",
        "Held while a command trades, so two skim processes never trade at once.",
    ),
    (
        "data/ibkr_session.json",
        "The cached live session token (mode 0600), reused until it expires.",
    ),
    (
        "data/ibkr_pacing.json, data/ibkr_pause.json",
        "Request pacing across runs, and the pause after IBKR answers 429.",
    ),
    (
        "data/contracts.json, data/scanner_params.json",
        "Caches of IBKR contract ids and scanner parameters.",
    ),
];

/// A few real invocations per page: what it does, then the command line.
fn examples(page: &str) -> &'static [(&'static str, &'static str)] {
    match page {
        "skim" => &[
            (
                "Check that skim can sign in to IBKR, then look for today's candidates:",
                "skim auth-check && skim scan",
            ),
            (
                "Which scheduled commands ran last, and how they ended:",
                "skim positions --json | jq '.runs'",
            ),
            (
                "Use another database and show debug logs on stderr:",
                "SKIM_DB=/var/lib/skim/data/skim.db skim -vv positions",
            ),
        ],
        "skim-keys-gen" => &[
            (
                "Make the key files in ./oauth_keys and print the OAUTH_DH_PRIME line for .env:",
                "skim keys-gen",
            ),
            (
                "Use RFC 7919's published group instead of searching for a fresh prime:",
                "skim keys-gen --dh-group ffdhe2048 --dir /var/lib/skim/oauth_keys",
            ),
            (
                "Print the prime of an existing dhparam.pem as JSON:",
                "skim keys-gen --prime-from oauth_keys/dhparam.pem --json | jq -r \
                 .oauth_dh_prime",
            ),
        ],
        "skim-auth-check" => &[
            ("Check every step of signing in:", "skim auth-check"),
            (
                "Make a new live session token instead of reusing the cached one:",
                "skim auth-check --fresh",
            ),
            (
                "Show only the steps that failed, with their hints:",
                "skim auth-check --json | jq '.steps[] | select(.ok | not)'",
            ),
        ],
        "skim-scan" => &[
            (
                "Scan, store the candidates and notify Discord:",
                "skim scan",
            ),
            (
                "Try a larger minimum gap without storing or sending anything:",
                "skim scan --dry-run --min-gap 5",
            ),
            (
                "Print the tickers found:",
                "skim scan --json | jq -r '.candidates[].ticker'",
            ),
            (
                "Replay a morning against a simulator:",
                "SKIM_NOW=2026-03-02T10:15:00+11:00 skim scan --no-notify",
            ),
        ],
        "skim-trade" => &[
            (
                "See what entries would be placed now:",
                "skim trade enter --dry-run",
            ),
            (
                "Stop new entries until resumed:",
                "skim trade halt --reason 'broker maintenance'",
            ),
            (
                "Run the exits as the schedule does and keep the JSON:",
                "skim trade manage --json | jq . > manage.json",
            ),
        ],
        "skim-trade-enter" => &[
            (
                "Place today's entries, as the schedule does at 10:12 Sydney time:",
                "skim trade enter",
            ),
            (
                "Preview smaller positions without sending or storing anything:",
                "skim trade enter --dry-run --max-positions 3 --position-value 2500",
            ),
            (
                "Send stop-limit entries capped 1 % above the stop price, and keep the JSON:",
                "skim trade enter --limit-cap 1 --json | jq .",
            ),
        ],
        "skim-trade-manage" => &[
            (
                "Reconcile, cancel stale entries and run the exits:",
                "skim trade manage",
            ),
            (
                "Preview with an earlier cutoff for unfilled entries:",
                "skim trade manage --dry-run --cutoff 10:45",
            ),
            ("Keep the JSON report:", "skim trade manage --json | jq ."),
        ],
        "skim-trade-halt" => &[
            (
                "Block new entries, saying why:",
                "skim trade halt --reason 'unusual market'",
            ),
            (
                "Also cancel working orders and sell every position skim holds:",
                "skim trade halt --flatten --reason 'closing everything'",
            ),
        ],
        "skim-trade-resume" => &[
            (
                "Allow entries again and see where things stand:",
                "skim trade resume && skim positions",
            ),
            ("The same, for a script:", "skim trade resume --json | jq ."),
        ],
        "skim-positions" => &[
            ("Positions, working orders and P&L:", "skim positions"),
            ("Include closed trades:", "skim positions --all"),
            (
                "Post the after-close summary to Discord, as the schedule does at 16:20:",
                "skim positions --notify",
            ),
            (
                "List scheduled commands whose last run failed:",
                "skim positions --json | jq '.runs[] | select(.exit_code != 0)'",
            ),
        ],
        "skim-notify" => &[
            ("Send a line of text:", "skim notify 'backup finished'"),
            (
                "Send a yellow embed with a field:",
                "skim notify --title 'Disk space' --color yellow --field 'free=2 GB' 'running low'",
            ),
            (
                "Deliver what is queued and list what is left:",
                "skim notify --flush --json | jq '.pending'",
            ),
        ],
        _ => &[],
    }
}

/// Renders `skim.1` and one page per visible subcommand, nested ones
/// included, as (file name, roff) pairs. Fails naming a page that has no
/// examples.
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    add_pages(&cmd, None, &mut pages)?;
    Ok(pages)
}

fn add_pages(
    cmd: &Command,
    parent: Option<&str>,
    pages: &mut Vec<(String, Vec<u8>)>,
) -> Result<()> {
    // After build(), clap names nested commands "skim-trade-enter".
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_owned();
    pages.push((format!("{name}.1"), render_page(cmd, &name, parent)?));
    for sub in cmd.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        add_pages(sub, Some(&name), pages)?;
    }
    Ok(())
}

fn render_page(cmd: &Command, name: &str, parent: Option<&str>) -> Result<Vec<u8>> {
    let examples = examples(name);
    if examples.is_empty() {
        bail!("man page {name} has no examples; add them in src/cmd/generate.rs");
    }
    let mut generated = Vec::new();
    Man::new(cmd.clone())
        .source(format!("skim {}", env!("CARGO_PKG_VERSION")))
        .manual("skim manual")
        .render(&mut generated)
        .with_context(|| format!("failed to render man page {name}"))?;
    let generated = String::from_utf8(generated).context("clap_mangen wrote non-UTF-8")?;

    let mut extra = Roff::new();
    extra.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in EXIT_STATUS {
        extra.control("TP", []);
        extra.text([bold(code.to_string())]);
        extra.text([roman(*meaning)]);
    }
    extra.control("SH", ["ENVIRONMENT"]);
    extra.text([roman(
        "Settings come from the process environment, then from .env in the working folder. \
         A malformed value is a usage error (exit 2) naming the variable.",
    )]);
    for (var, meaning) in ENVIRONMENT {
        extra.control("TP", []);
        extra.text([bold(*var)]);
        extra.text([roman(*meaning)]);
    }
    extra.control("SH", ["FILES"]);
    for (file, meaning) in FILES {
        extra.control("TP", []);
        extra.text([italic(*file)]);
        extra.text([roman(*meaning)]);
    }
    extra.control("SH", ["EXAMPLES"]);
    for (what, line) in examples {
        extra.control("PP", []);
        extra.text([roman(*what)]);
        extra.control("RS", ["4"]);
        extra.control("nf", []);
        extra.text([bold(format!("$ {line}"))]);
        extra.control("fi", []);
        extra.control("RE", []);
    }
    extra.control("SH", ["SEE ALSO"]);
    let mut see_also = vec!["skim(1)".to_owned()];
    if let Some(parent) = parent.filter(|p| *p != "skim") {
        see_also.push(format!("{parent}(1)"));
    }
    if name == "skim" {
        see_also = vec![
            "systemd.timer(5)".into(),
            "crontab(5)".into(),
            "jq(1)".into(),
        ];
    }
    extra.text([roman(see_also.join(", "))]);

    // Both renders start with the same preamble; keep one, and put the
    // extra sections before clap's VERSION, which closes the page.
    let preamble = Roff::new().render();
    let extra = extra.render();
    let extra = extra.strip_prefix(&preamble).unwrap_or(&extra);
    let at = generated
        .find("\n.SH VERSION\n")
        .map_or(generated.len(), |at| at + 1);
    let mut page = generated[..at].to_owned();
    page.push_str(extra);
    page.push_str(&generated[at..]);
    Ok(page.into_bytes())
}

/// Renders the bash, zsh and fish completions as (file name, script) pairs.
pub fn completions() -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for (shell, file) in [
        (Shell::Bash, "skim.bash"),
        (Shell::Zsh, "_skim"),
        (Shell::Fish, "skim.fish"),
    ] {
        let mut cmd = Cli::command();
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd, "skim", &mut script);
        files.push((file.to_owned(), script));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skim_asx::error::ExitKind;

    fn file_names(files: &[(String, Vec<u8>)]) -> Vec<&str> {
        files.iter().map(|(name, _)| name.as_str()).collect()
    }

    fn page(files: &[(String, Vec<u8>)], name: &str) -> String {
        let (_, bytes) = files
            .iter()
            .find(|(file, _)| file == name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", file_names(files)));
        String::from_utf8(bytes.clone()).unwrap()
    }

    #[test]
    fn one_page_per_visible_command_nested_ones_included() {
        let pages = man_pages().unwrap();
        let names = file_names(&pages);
        for expected in [
            "skim.1",
            "skim-keys-gen.1",
            "skim-auth-check.1",
            "skim-scan.1",
            "skim-trade.1",
            "skim-trade-enter.1",
            "skim-trade-manage.1",
            "skim-trade-halt.1",
            "skim-trade-resume.1",
            "skim-positions.1",
            "skim-notify.1",
        ] {
            assert!(names.contains(&expected), "{expected} missing: {names:?}");
        }
        assert!(
            !names
                .iter()
                .any(|n| n.contains("generate") || n.contains("help")),
            "hidden and help commands get no page: {names:?}"
        );
    }

    #[test]
    fn every_page_has_the_contract_sections_in_order() {
        for (name, bytes) in man_pages().unwrap() {
            let text = String::from_utf8(bytes).unwrap();
            let mut last = 0;
            for heading in [
                ".SH NAME",
                ".SH SYNOPSIS",
                ".SH \"EXIT STATUS\"",
                ".SH ENVIRONMENT",
                ".SH FILES",
                ".SH EXAMPLES",
                ".SH \"SEE ALSO\"",
            ] {
                let at = text[last..]
                    .find(heading)
                    .unwrap_or_else(|| panic!("{name}: {heading} missing or out of order"));
                last += at + heading.len();
            }
            let rest = &text[last..];
            assert!(
                !rest.contains(".SH") || rest.contains(".SH VERSION"),
                "{name}: SEE ALSO is followed only by VERSION"
            );
            assert_eq!(
                text.matches(".ie \\n(.g").count(),
                1,
                "{name}: one preamble"
            );
        }
    }

    #[test]
    fn nested_pages_name_the_whole_command() {
        let pages = man_pages().unwrap();
        let enter = page(&pages, "skim-trade-enter.1");
        assert!(enter.contains("\n.TH skim-trade-enter 1 "), "{enter}");
        assert!(enter.contains("skim trade enter"), "{enter}");
        assert!(enter.contains("\\-\\-max\\-positions"), "{enter}");
        assert!(
            enter.contains("skim\\-trade(1)"),
            "parent in SEE ALSO: {enter}"
        );
        let top = page(&pages, "skim.1");
        assert!(
            top.contains("skim\\-positions(1)"),
            "subcommands listed: {top}"
        );
    }

    #[test]
    fn exit_status_matches_the_exit_kinds() {
        let codes: Vec<u8> = EXIT_STATUS.iter().map(|(code, _)| *code).collect();
        let kinds = [
            ExitKind::Failure,
            ExitKind::Usage,
            ExitKind::Auth,
            ExitKind::Refused,
        ];
        let mut expected = vec![0];
        expected.extend(kinds.iter().map(|kind| kind.code()));
        assert_eq!(codes, expected);
    }

    /// A setting read in config.rs but missing from ENVIRONMENT would be
    /// undocumented; one listed but never read would be a lie.
    #[test]
    fn environment_lists_exactly_the_settings_config_reads() {
        let source = include_str!("../config.rs");
        let code = source.split("#[cfg(test)]").next().unwrap();
        // Setting names appear in the code as whole string literals.
        let mut read: Vec<&str> = code
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|literal| {
                literal.len() > 3
                    && literal.contains('_')
                    && literal
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            })
            .collect();
        read.push("RUST_LOG");
        read.sort_unstable();
        read.dedup();
        let mut listed: Vec<&str> = ENVIRONMENT.iter().map(|(name, _)| *name).collect();
        listed.sort_unstable();
        assert_eq!(read, listed);
        assert!(
            read.len() > 10,
            "the scan of config.rs found too little: {read:?}"
        );
    }

    #[test]
    fn completions_cover_the_three_shells_and_the_subcommands() {
        let files = completions().unwrap();
        assert_eq!(file_names(&files), ["skim.bash", "_skim", "skim.fish"]);
        for (name, bytes) in &files {
            let text = String::from_utf8(bytes.clone()).unwrap();
            for word in ["auth-check", "positions", "manage", "min-gap"] {
                assert!(text.contains(word), "{name} lacks {word}");
            }
        }
    }

    #[test]
    fn writes_the_files_into_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("man");
        run(GenerateArgs {
            what: GenerateWhat::Man {
                dir: target.clone(),
            },
        })
        .unwrap();
        let written = fs::read(target.join("skim-scan.1")).unwrap();
        assert_eq!(
            written,
            page(&man_pages().unwrap(), "skim-scan.1").into_bytes()
        );
    }
}
