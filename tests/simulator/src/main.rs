//! `skim-sim`: runs the IBKR simulator for people (demos, manual testing),
//! with the ASX announcements page and a Discord webhook beside it. It
//! prints the environment a client needs, logs each request on stderr
//! and serves until killed. Flags are parsed by hand to keep the crate
//! light.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use skim_sim::{Faults, QuerySigning, Scenario, Setup, Simulator};

const USAGE: &str = "\
usage: skim-sim --keys-dir DIR [options]

Plays IBKR's Web API on 127.0.0.1 for the keys in DIR (public_signature.pem,
public_encryption.pem, dhparam.pem), with the ASX announcements page and a
Discord webhook, and prints the client's environment. The market plays a
scenario (a trading day) on a clock that stands still until moved with
POST /sim/clock {\"now\": RFC3339}; GET /sim/state dumps what was received.

options:
  --keys-dir DIR                 folder made by `skim keys-gen` (required)
  --port N                       port to listen on (default: any free port)
  --scenario FILE|day|week|busy  scenario file, or the built-in example day,
                                 example week, or the week with five entries
                                 (default: day)
  --questions IDS                ask these comma-separated message ids about every order
  --cash AMOUNT                  the account's opening cash in A$ (default 100000)
  --now RFC3339                  market clock (default: 07:00 Sydney on the day)
  --penalty-secs N               penalty box after a pacing 429 (default 600)
  --env-out FILE                 write the environment to FILE (mode 0600)
  --live                         serve a live account (U...) instead of paper
  --query-in-signature           require query pairs in signed base strings
  --init-delay-ms N              ssodh/init takes effect after N ms
  --lst-lifetime-secs N          live session token lifetime (default 86400)
  --delay-ms N                   answer every request after N ms
  --fault-wrong-token-signature  answer handshakes with a bad token signature
  --fault-invalid-consumer       refuse handshakes with \"invalid consumer\"
  --fault-401 N                  answer the next N signed requests with 401
  --fault-410 N                  answer the next N signed requests with 410
  --fault-5xx STATUS:N           answer the next N requests with STATUS
  --fault-429 SECS               the first request trips a SECS-long 429 penalty box
  -h, --help                     print this help
";

/// What the command line asked for.
struct Args {
    keys_dir: PathBuf,
    port: u16,
    env_out: Option<PathBuf>,
    live: bool,
    query_signing: QuerySigning,
    init_delay: Duration,
    lst_lifetime: Option<Duration>,
    scenario: Option<PathBuf>,
    now: Option<DateTime<Utc>>,
    penalty: Option<Duration>,
    questions: Vec<String>,
    cash: Option<f64>,
    faults: Faults,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let parsed = match parse_args(&args) {
        Ok(parsed) => parsed,
        Err(error) => {
            eprintln!("skim-sim: error: {error:#}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(parsed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("skim-sim: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let mut setup = Setup::from_keys_dir(&args.keys_dir)?;
    let config = &mut setup.config;
    config.port = args.port;
    config.query_signing = args.query_signing;
    config.init_delay = args.init_delay;
    config.log_requests = true;
    if let Some(lifetime) = args.lst_lifetime {
        config.lst_lifetime = lifetime;
    }
    if args.live {
        *config = config.clone().with_live_account();
    }
    let scenario = match &args.scenario {
        Some(path) if path.as_os_str() == "week" => Scenario::example_week(),
        Some(path) if path.as_os_str() == "busy" => Scenario::busy_week(),
        Some(path) if path.as_os_str() == "day" => Scenario::example(),
        Some(path) => Scenario::from_path(path)?,
        None => Scenario::example(),
    };
    config.order_questions = args.questions.clone();
    if let Some(cash) = args.cash {
        config.opening_cash = cash;
    }
    let sim = Simulator::start(setup.config.clone())?;
    sim.set_faults(args.faults);
    sim.set_scenario(scenario);
    if let Some(now) = args.now {
        sim.set_now(now);
    }
    if let Some(period) = args.penalty {
        sim.set_penalty_period(period);
    }

    let mut lines = setup.env_lines(&sim.base_url());
    for (key, value) in sim.service_env_pairs() {
        lines.push_str(&format!("{key}={value}\n"));
    }
    match &args.env_out {
        Some(path) => {
            write_private(path, &lines)?;
            eprintln!(
                "skim-sim: wrote the client environment to {}",
                path.display()
            );
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(lines.as_bytes())
                .context("failed to write to stdout")?;
            stdout.flush().context("failed to write to stdout")?;
        }
    }
    eprintln!("skim-sim: serving {} until killed", sim.base_url());
    loop {
        std::thread::park();
    }
}

/// Writes `text` to `path`, which holds a secret, readable by the owner
/// only, even if the file existed with wider permissions.
fn write_private(path: &PathBuf, text: &str) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("failed to set mode 0600 on {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("failed to write {}", path.display()))
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut parsed = Args {
        keys_dir: PathBuf::new(),
        port: 0,
        env_out: None,
        live: false,
        query_signing: QuerySigning::Excluded,
        init_delay: Duration::ZERO,
        lst_lifetime: None,
        scenario: None,
        now: None,
        penalty: None,
        questions: Vec::new(),
        cash: None,
        faults: Faults::default(),
    };
    let mut keys_dir = None;
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let mut value = || iter.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--keys-dir" => keys_dir = Some(PathBuf::from(value()?)),
            "--port" => parsed.port = number(flag, value()?)?,
            "--env-out" => parsed.env_out = Some(PathBuf::from(value()?)),
            "--scenario" => parsed.scenario = Some(PathBuf::from(value()?)),
            "--now" => {
                let text = value()?;
                let now = skim_sim::control::parse_now(text).map_err(anyhow::Error::msg)?;
                parsed.now = Some(now);
            }
            "--penalty-secs" => {
                parsed.penalty = Some(Duration::from_secs(number(flag, value()?)?));
            }
            "--questions" => {
                parsed.questions = value()?
                    .split(',')
                    .map(|id| id.trim().to_string())
                    .filter(|id| !id.is_empty())
                    .collect();
            }
            "--cash" => {
                let text = value()?;
                let cash: f64 = text
                    .parse()
                    .ok()
                    .filter(|c: &f64| c.is_finite() && *c >= 0.0)
                    .with_context(|| format!("--cash expects an amount in A$, got {text:?}"))?;
                parsed.cash = Some(cash);
            }
            "--live" => parsed.live = true,
            "--query-in-signature" => parsed.query_signing = QuerySigning::Included,
            "--init-delay-ms" => parsed.init_delay = Duration::from_millis(number(flag, value()?)?),
            "--lst-lifetime-secs" => {
                parsed.lst_lifetime = Some(Duration::from_secs(number(flag, value()?)?));
            }
            "--delay-ms" => parsed.faults.delay = Duration::from_millis(number(flag, value()?)?),
            "--fault-wrong-token-signature" => parsed.faults.wrong_token_signature = true,
            "--fault-invalid-consumer" => parsed.faults.invalid_consumer = true,
            "--fault-401" => parsed.faults.unauthorized_next = number(flag, value()?)?,
            "--fault-410" => parsed.faults.gone_next = number(flag, value()?)?,
            "--fault-5xx" => parsed.faults.server_error = Some(server_error(value()?)?),
            "--fault-429" => {
                parsed.faults.penalty = Some(Duration::from_secs(number(flag, value()?)?));
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    parsed.keys_dir = keys_dir.context("--keys-dir is required")?;
    Ok(parsed)
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T> {
    value
        .parse()
        .ok()
        .with_context(|| format!("{flag} expects a whole number, got {value:?}"))
}

/// Parses `STATUS:N` for `--fault-5xx`.
fn server_error(value: &str) -> Result<(u16, u32)> {
    let parsed = value.split_once(':').and_then(|(status, count)| {
        Some((status.parse::<u16>().ok()?, count.parse::<u32>().ok()?))
    });
    match parsed {
        Some((status @ 500..=599, count @ 1..)) => Ok((status, count)),
        _ => bail!("--fault-5xx expects STATUS:N with STATUS 500-599 and N >= 1, got {value:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_parse_into_faults() {
        let args = parse_args(&strings(&[
            "--keys-dir",
            "k",
            "--port",
            "8080",
            "--fault-5xx",
            "503:2",
            "--fault-401",
            "1",
            "--live",
            "--query-in-signature",
            "--now",
            "2026-03-02T10:15:00+11:00",
            "--scenario",
            "day.json",
            "--questions",
            "o163, o10152",
            "--cash",
            "25000",
        ]))
        .unwrap();
        assert_eq!(args.questions, ["o163", "o10152"]);
        assert_eq!(args.cash, Some(25_000.0));
        assert_eq!(
            args.now.map(|t| t.to_rfc3339()),
            Some("2026-03-01T23:15:00+00:00".to_string())
        );
        assert_eq!(args.scenario, Some(PathBuf::from("day.json")));
        assert_eq!(args.keys_dir, PathBuf::from("k"));
        assert_eq!(args.port, 8080);
        assert_eq!(args.faults.server_error, Some((503, 2)));
        assert_eq!(args.faults.unauthorized_next, 1);
        assert!(args.live);
        assert_eq!(args.query_signing, QuerySigning::Included);
    }

    #[test]
    fn bad_flags_are_refused_with_their_name() {
        let missing = parse_args(&strings(&["--port", "1"])).err().unwrap();
        assert!(missing.to_string().contains("--keys-dir"));
        let bad = parse_args(&strings(&["--keys-dir", "k", "--port", "x"]))
            .err()
            .unwrap();
        assert!(bad.to_string().contains("--port"));
        assert!(parse_args(&strings(&["--keys-dir", "k", "--fault-5xx", "404:1"])).is_err());
        assert!(parse_args(&strings(&["--keys-dir", "k", "--fault-5xx", "500:0"])).is_err());
        assert!(parse_args(&strings(&["--keys-dir"])).is_err());
        assert!(parse_args(&strings(&["--keys-dir", "k", "--bogus"])).is_err());
        let bad_cash = parse_args(&strings(&["--keys-dir", "k", "--cash", "-5"]))
            .err()
            .unwrap();
        assert!(bad_cash.to_string().contains("--cash"), "{bad_cash}");
        let bad_now = parse_args(&strings(&["--keys-dir", "k", "--now", "10:15"]))
            .err()
            .unwrap();
        assert!(bad_now.to_string().contains("RFC 3339"), "{bad_now}");
    }
}
