//! Crash safety and concurrent runs, against the example week (see
//! `trade.rs`).
//!
//! Each crash case starts a real `skim trade enter` or `trade manage` with
//! `SKIM_PAUSE_AT` naming a step (see `src/crashpoint.rs`), waits for skim
//! to say it paused there, and kills it with SIGKILL; or it lets the
//! simulator carry out an order request and withhold the answer, and kills
//! skim while it waits. Then it runs the command again, and `positions`,
//! and checks the broker against the plan and the journal against the
//! broker. A table's cases run a few at a time: each has its own simulator
//! and folder, and most of a run is spent waiting out IBKR's pacing.
//!
//! The concurrency tests hold one trade command at `lock-held` (its lock
//! taken) while another starts, so the overlap does not depend on timing.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use skim_sim::Simulator;
use skim_sim::broker::{OrderStatus, Side};

use crate::trade::{MON, NEXT_THU, THU, TUE, Week};
use crate::util::{Run, SimEnv};

/// Crash cases run at once: enough to overlap their pacing waits, few
/// enough not to crowd two cores shared with the other tests.
const AT_ONCE: usize = 4;

/// How long one step may take before the test gives up: a guard against a
/// hang (each skim run waits out IBKR's 5-second pacing a few times), not
/// a timing assertion.
const PATIENCE: Duration = Duration::from_secs(240);

/// A `skim` process the test started itself, its stderr read line by line.
struct Started {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Vec<String>,
    stdout: Option<JoinHandle<String>>,
}

impl Started {
    /// Starts `skim args`, pausing at `point` if given.
    fn new(w: &Week, args: &[&str], point: Option<&str>) -> Started {
        let mut command = w.s.env.command(args);
        if let Some(point) = point {
            command.env("SKIM_PAUSE_AT", point);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("skim starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdout = child.stdout.take().expect("piped stdout");
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        Started {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: Vec::new(),
            stdout: Some(stdout),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for `skim: paused at <point>`; fails if skim ends first.
    fn wait_for_pause(&mut self, point: &str) {
        let wanted = format!("skim: paused at {point}");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line == wanted;
                    self.stderr.push(line);
                    if found {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("skim did not pause at {point}: {:?}", self.stderr)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().expect("wait for skim");
                    panic!(
                        "skim ended ({status}) before pausing at {point}: {:?}",
                        self.stderr
                    )
                }
            }
        }
    }

    /// Waits until `arrived` holds for the simulator, skim still running.
    fn wait_for_broker(&mut self, sim: &Simulator, what: &str, arrived: fn(&Simulator) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !arrived(sim) {
            if let Some(status) = self.child.try_wait().expect("poll skim") {
                self.stderr.extend(self.lines.try_iter());
                panic!("skim ended ({status}) before {what}: {:?}", self.stderr);
            }
            assert!(Instant::now() < deadline, "{what} never happened");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Lets a paused skim go on.
    fn resume(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(b"go\n").expect("write to skim");
        stdin.flush().expect("flush to skim");
    }

    /// SIGKILL, and proof that it was the signal that ended skim.
    fn kill(mut self) {
        self.child.kill().expect("kill skim");
        let status = self.child.wait().expect("wait for skim");
        assert_eq!(status.signal(), Some(9), "skim was not killed: {status}");
    }

    /// Waits for skim to end by itself.
    fn finish(mut self) -> Run {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for skim");
        let stdout = self.stdout.take().expect("stdout reader").join().unwrap();
        self.stderr.extend(self.lines.iter());
        Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr: self.stderr.join("\n"),
        }
    }
}

/// Where a case kills skim.
#[derive(Clone, Copy)]
enum Crash {
    /// At this `SKIM_PAUSE_AT` point.
    At(&'static str),
    /// After the broker carried out the next order request (place or
    /// modify) whose answer the simulator withholds, while skim waits.
    /// `arm_at` is a pause point at which the fault is switched on (so
    /// that earlier requests are answered), `None` for from the start;
    /// `arrived` says when the broker holds the result.
    Sent {
        arm_at: Option<&'static str>,
        arrived: fn(&Simulator) -> bool,
    },
}

impl Crash {
    fn name(&self) -> String {
        match self {
            Crash::At(point) => format!("at {point}"),
            Crash::Sent { arm_at: None, .. } => "sent, answer withheld".into(),
            Crash::Sent {
                arm_at: Some(point),
                ..
            } => format!("sent after {point}, answer withheld"),
        }
    }
}

/// Runs `skim args` and kills it as `crash` says.
fn crash_run(w: &Week, args: &[&str], crash: Crash) {
    match crash {
        Crash::At(point) => {
            let mut run = Started::new(w, args, Some(point));
            run.wait_for_pause(point);
            run.kill();
        }
        Crash::Sent { arm_at, arrived } => {
            // Without an answer skim would wait out its HTTP timeout; the
            // kill comes first.
            let arm = |sim: &Simulator| sim.faults(|f| f.drop_after_order = 1);
            let mut run = Started::new(w, args, arm_at);
            match arm_at {
                Some(point) => {
                    run.wait_for_pause(point);
                    arm(&w.s.sim);
                    run.resume();
                }
                None => arm(&w.s.sim),
            }
            run.wait_for_broker(&w.s.sim, "the order reached the broker", arrived);
            run.kill();
        }
    }
}

/// The simulator's pacing of the slow endpoints at 4 s instead of IBKR's 5
/// (its docs allow tests to shorten it). skim still spaces them 5.25 s
/// apart; the wider margin is for the load of several cases running at
/// once on two cores, under which a request can reach the simulator
/// more than skim's 5% margin after skim timed it. These tests are about
/// crashes, not pacing, which `ibkr::pacing` and the fault tests cover.
fn relaxed_pacing(config: &mut skim_sim::Config) {
    config.slow_endpoint_interval = Duration::from_secs(4);
}

/// Runs `cases`, [`AT_ONCE`] at a time, each in its own week set up by `setup`
/// (which returns the command to crash), then `rerun`, then [`consistent`]
/// and `expect`.
fn crash_table(
    cases: &[Crash],
    setup: fn(&mut Week) -> Vec<&'static str>,
    rerun: fn(&mut Week),
    expect: fn(&Week, &str),
) {
    let mut failed = Vec::new();
    for batch in cases.chunks(AT_ONCE) {
        failed.extend(crash_batch(batch, setup, rerun, expect));
    }
    assert!(
        failed.is_empty(),
        "{} of {} crash cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n---\n")
    );
}

/// Runs `cases` at once; returns the failures' messages.
fn crash_batch(
    cases: &[Crash],
    setup: fn(&mut Week) -> Vec<&'static str>,
    rerun: fn(&mut Week),
    expect: fn(&Week, &str),
) -> Vec<String> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .iter()
            .map(|&crash| {
                scope.spawn(move || {
                    let name = crash.name();
                    let mut w = Week::on(SimEnv::start_shared(relaxed_pacing));
                    w.s.env.set("SKIM_HTTP_TIMEOUT", "300");
                    let args = setup(&mut w);
                    crash_run(&w, &args, crash);
                    rerun(&mut w);
                    consistent(&w, &name);
                    expect(&w, &name);
                    name
                })
            })
            .collect();
        let mut failed = Vec::new();
        for handle in handles {
            if let Err(panic) = handle.join() {
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failed.push(text);
            }
        }
        failed
    })
}

/// The `cOID`s of every order POST skim made, one entry per request.
fn posted_coids(sim: &Simulator) -> Vec<String> {
    sim.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/orders"))
        .flat_map(|r| {
            let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            body["orders"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|o| o["cOID"].as_str().map(str::to_owned))
        })
        .collect()
}

fn journal_orders(w: &Week) -> Vec<(String, Option<String>, String)> {
    let db = rusqlite::Connection::open(w.s.env.path("data/skim.db")).unwrap();
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let mut stmt = db
        .prepare("SELECT coid, order_id, state FROM orders ORDER BY coid")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// What every case must leave, whatever the plan: `positions` agrees with
/// the broker; no `cOID` was sent or held twice; nothing sold that was not
/// bought; every share held is under one working stop; the journal and
/// the broker name the same orders in the same states; the database is
/// intact, and the data folder holds no secret outside the token cache.
fn consistent(w: &Week, case: &str) {
    let run = w.skim(&["positions", "--json"]);
    assert_eq!(run.code, 0, "{case}: positions: {run:?}");
    let doc = run.json();
    assert_eq!(doc["problems"], Value::Array(vec![]), "{case}: {doc}");

    let sim = &w.s.sim;
    let mut posts: BTreeMap<String, usize> = BTreeMap::new();
    for coid in posted_coids(sim) {
        *posts.entry(coid).or_default() += 1;
    }
    assert!(
        posts.values().all(|&n| n == 1),
        "{case}: POSTs per cOID {posts:?}"
    );
    let book = sim.orders();
    for coid in book.iter().filter_map(|o| o.coid.as_deref()) {
        assert_eq!(sim.count_orders_with_coid(coid), 1, "{case}: {coid} twice");
    }

    let mut bought: BTreeMap<String, u64> = BTreeMap::new();
    let mut sold: BTreeMap<String, u64> = BTreeMap::new();
    for e in sim.executions() {
        let sums = if e.side == Side::Buy {
            &mut bought
        } else {
            &mut sold
        };
        *sums.entry(e.symbol.clone()).or_default() += e.quantity;
    }
    for (symbol, sold) in &sold {
        let bought = bought.get(symbol).copied().unwrap_or(0);
        assert!(*sold <= bought, "{case}: {symbol} sold {sold} of {bought}");
    }
    for p in sim.positions().iter().filter(|p| p.quantity != 0) {
        let stops: Vec<_> = book
            .iter()
            .filter(|o| o.conid == p.conid && o.side == Side::Sell && o.status.is_live())
            .collect();
        assert_eq!(stops.len(), 1, "{case}: {} stops {stops:?}", p.symbol);
        assert_eq!(
            stops[0].quantity as i64, p.quantity,
            "{case}: {} stop size",
            p.symbol
        );
        assert_eq!(
            stops[0].status,
            OrderStatus::Submitted,
            "{case}: {}",
            p.symbol
        );
    }

    // A kill mid-transaction leaves SQLite's journal files behind: they,
    // like the database, hold no secret (the 0600 token cache may).
    let data = w.s.env.path("data");
    let leaks =
        w.s.secrets()
            .find_in_files(&data, &[data.join("ibkr_session.json")]);
    assert!(leaks.is_empty(), "{case}: {leaks:?}");

    let journal = journal_orders(w);
    for (coid, order_id, state) in &journal {
        let Some(id) = order_id else {
            assert!(
                matches!(state.as_str(), "lost" | "rejected" | "refused"),
                "{case}: {coid} is {state} without an order id"
            );
            assert_eq!(sim.count_orders_with_coid(coid), 0, "{case}: {coid}");
            continue;
        };
        let at_broker = book
            .iter()
            .find(|o| o.order_id.to_string() == *id)
            .unwrap_or_else(|| panic!("{case}: {coid} ({id}) is not at the broker"));
        let expected = match at_broker.status {
            OrderStatus::PreSubmitted | OrderStatus::Submitted => "working",
            OrderStatus::Filled => "filled",
            OrderStatus::Cancelled => "cancelled",
        };
        assert_eq!(state, expected, "{case}: {coid} ({id})");
    }
    for o in &book {
        let id = o.order_id.to_string();
        assert!(
            journal
                .iter()
                .any(|(_, j, _)| j.as_deref() == Some(id.as_str())),
            "{case}: broker order {id} ({:?}) is not in the journal",
            o.coid
        );
    }
}

fn has_orders(sim: &Simulator) -> bool {
    !sim.orders().is_empty()
}

#[test]
fn killed_entries_recover_on_the_next_run() {
    let cases = [
        Crash::At("order-journaled"),
        Crash::Sent {
            arm_at: None,
            arrived: has_orders,
        },
        Crash::At("order-answered"),
        Crash::At("order-commit"),
    ];
    crash_table(
        &cases,
        |w| {
            w.at(MON, 10, 5);
            w.json(&["scan"]);
            w.at(MON, 10, 12);
            vec!["trade", "enter"]
        },
        |w| {
            w.at(MON, 10, 13);
            let doc = w.json(&["trade", "enter"]);
            assert_eq!(doc["status"], "ok", "{doc}");
            w.at(MON, 10, 20);
            w.json(&["trade", "manage"]);
        },
        |w, case| {
            for ticker in ["14D", "LTR", "BHP"] {
                let coid = format!("skim-20260302-{ticker}-entry");
                assert_eq!(w.s.sim.count_orders_with_coid(&coid), 1, "{case}: {coid}");
            }
            assert_eq!(w.s.sim.orders().len(), 6, "{case}: three brackets");
            assert_eq!(w.held("14D"), 83333, "{case}");
            assert_eq!(w.held("LTR"), 4566, "{case}");
        },
    );
}

/// Entered on Monday, 14D and LTR filled by 10:20.
fn filled_monday(w: &mut Week) {
    w.entered();
    w.at(MON, 10, 20);
    w.json(&["trade", "manage"]);
}

#[test]
fn a_killed_cutoff_cancel_recovers_on_the_next_run() {
    crash_table(
        &[Crash::At("cancel-answered")],
        |w| {
            filled_monday(w);
            w.at(MON, 11, 0);
            vec!["trade", "manage"]
        },
        |w| {
            w.at(MON, 11, 1);
            w.json(&["trade", "manage"]);
        },
        |w, case| {
            let entry =
                w.s.sim
                    .orders()
                    .into_iter()
                    .find(|o| o.coid.as_deref() == Some("skim-20260302-BHP-entry"))
                    .unwrap();
            assert_eq!(entry.status, OrderStatus::Cancelled, "{case}");
            assert_eq!(w.held("14D"), 83333, "{case}");
        },
    );
}

/// The week up to Thursday 10:15, before the half exit.
fn before_half_exit(w: &mut Week) -> Vec<&'static str> {
    filled_monday(w);
    w.at(MON, 11, 0);
    w.json(&["trade", "manage"]);
    w.at(TUE, 11, 35);
    w.json(&["trade", "manage"]);
    w.at(THU, 10, 15);
    vec!["trade", "manage"]
}

const HALF: &str = "skim-20260305-14D-half";
const EXIT: &str = "skim-20260312-14D-exit";

fn stop_shrunk(sim: &Simulator) -> bool {
    sim.orders()
        .iter()
        .any(|o| o.symbol == "14D" && o.side == Side::Sell && o.quantity == 41667)
}

fn half_placed(sim: &Simulator) -> bool {
    sim.count_orders_with_coid(HALF) == 1
}

fn exit_placed(sim: &Simulator) -> bool {
    sim.count_orders_with_coid(EXIT) == 1
}

#[test]
fn a_killed_half_exit_recovers_on_the_next_run() {
    let cases = [
        Crash::At("stop-modify-answered"),
        Crash::Sent {
            arm_at: None,
            arrived: stop_shrunk,
        },
        Crash::At("stop-modify-commit"),
        Crash::At("half-marked"),
        Crash::At("order-journaled"),
        Crash::Sent {
            arm_at: Some("half-marked"),
            arrived: half_placed,
        },
        Crash::At("order-answered"),
        Crash::At("order-commit"),
    ];
    crash_table(
        &cases,
        before_half_exit,
        |w| {
            w.at(THU, 10, 16);
            w.json(&["trade", "manage"]);
            // A later run the same day sells nothing more.
            w.at(THU, 10, 25);
            w.json(&["trade", "manage"]);
        },
        |w, case| {
            assert_eq!(w.held("14D"), 41667, "{case}");
            assert_eq!(w.s.sim.count_orders_with_coid(HALF), 1, "{case}");
            let stop =
                w.s.sim
                    .orders()
                    .into_iter()
                    .find(|o| o.symbol == "14D" && o.side == Side::Sell && o.status.is_live())
                    .unwrap_or_else(|| panic!("{case}: no stop on the rest"));
            assert_eq!(stop.price, Some(0.06), "{case}: stop at the entry price");
            let doc = w.json(&["positions"]);
            let p = doc["positions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["ticker"] == "14D")
                .unwrap();
            assert_eq!(p["state"], "half exited", "{case}");
        },
    );
}

#[test]
fn a_killed_trailing_exit_recovers_on_the_next_run() {
    let cases = [
        Crash::At("cancel-answered"),
        Crash::At("exit-marked"),
        Crash::At("order-journaled"),
        Crash::Sent {
            arm_at: None,
            arrived: exit_placed,
        },
        Crash::At("order-answered"),
        Crash::At("order-commit"),
    ];
    crash_table(
        &cases,
        |w| {
            before_half_exit(w);
            w.json(&["trade", "manage"]);
            // The half's fill is recorded by the next run, within the
            // week of executions IBKR reports.
            w.at(THU, 10, 25);
            w.json(&["trade", "manage"]);
            w.at(NEXT_THU, 10, 15);
            vec!["trade", "manage"]
        },
        |w| {
            w.at(NEXT_THU, 10, 16);
            w.json(&["trade", "manage"]);
        },
        |w, case| {
            assert_eq!(w.held("14D"), 0, "{case}");
            assert_eq!(w.s.sim.count_orders_with_coid(EXIT), 1, "{case}");
            assert!(
                !w.s.sim
                    .orders()
                    .iter()
                    .any(|o| o.symbol == "14D" && o.status.is_live()),
                "{case}: an order left working on a flat position"
            );
            let doc = w.json(&["positions", "--all"]);
            let closed = doc["closed"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["ticker"] == "14D")
                .unwrap_or_else(|| panic!("{case}: 14D not closed: {doc}"));
            assert_eq!(closed["exit_reason"], "trailing exit", "{case}");
        },
    );
}

/// The refusal of a second trading process, naming the lock and the
/// process that holds it.
fn assert_refused_by(run: &Run, holder: u32) {
    run.expect_code(4);
    assert!(
        run.stderr.contains(&format!(
            "another skim trading command is running (process {holder})"
        )) && run.stderr.contains("skim.lock"),
        "{run:?}"
    );
}

#[test]
fn of_two_entries_at_once_one_proceeds_and_the_other_is_refused() {
    let mut w = Week::on(SimEnv::start_shared(|_| {}));
    w.at(MON, 10, 5);
    w.json(&["scan"]);
    w.at(MON, 10, 12);
    let mut first = Started::new(&w, &["trade", "enter", "--json"], Some("lock-held"));
    first.wait_for_pause("lock-held");
    let second = w.skim(&["trade", "enter", "--json"]);
    assert_refused_by(&second, first.pid());
    assert!(w.s.sim.orders().is_empty(), "the refused run sent orders");
    // `positions` reconciles (it records fills), so it waits its turn too,
    // and says why.
    let view = w.skim(&["positions"]);
    assert_refused_by(&view, first.pid());

    first.resume();
    let done = first.finish();
    done.expect_code(0);
    assert_eq!(done.json()["status"], "ok");
    assert_eq!(w.s.sim.orders().len(), 6);
    consistent(&w, "two entries");
}

#[test]
fn two_entries_started_together_place_each_order_once() {
    let mut w = Week::on(SimEnv::start_shared(|_| {}));
    w.at(MON, 10, 5);
    w.json(&["scan"]);
    w.at(MON, 10, 12);
    let a = Started::new(&w, &["trade", "enter", "--json"], None);
    let b = Started::new(&w, &["trade", "enter", "--json"], None);
    let (pid_a, pid_b) = (a.pid(), b.pid());
    let (a, b) = (a.finish(), b.finish());
    // Which one wins is up to the scheduler; if the loser started after
    // the winner ended, it found the orders placed and sent nothing.
    for (run, other) in [(&a, pid_b), (&b, pid_a)] {
        match run.code {
            0 => {}
            4 => assert_refused_by(run, other),
            _ => panic!("{run:?}"),
        }
    }
    assert!(a.code == 0 || b.code == 0, "{a:?}\n{b:?}");
    assert_eq!(w.s.sim.orders().len(), 6);
    consistent(&w, "entries started together");
}

#[test]
fn flatten_while_manage_runs_is_refused_and_works_after() {
    let mut w = Week::on(SimEnv::start_shared(|_| {}));
    filled_monday(&mut w);
    w.at(MON, 10, 30);
    let mut manage = Started::new(&w, &["trade", "manage"], Some("lock-held"));
    manage.wait_for_pause("lock-held");
    let flatten = w.skim(&["trade", "halt", "--flatten"]);
    assert_refused_by(&flatten, manage.pid());
    assert!(
        flatten
            .stderr
            .contains("trading is halted, but the flatten did not run"),
        "{flatten:?}"
    );
    assert!(w.held("14D") > 0, "the refused flatten sold");
    // The kill switch took effect all the same, lock or no lock.
    assert_eq!(w.json(&["trade", "resume"])["was_halted"], true);
    let halt = w.json(&["trade", "halt", "--reason", "while manage runs"]);
    assert_eq!(halt["halted"], true);
    manage.resume();
    manage.finish().expect_code(0);

    let doc = w.json(&["trade", "halt", "--flatten"]);
    assert_eq!(doc["halted"], true);
    assert_eq!(w.held("14D"), 0);
    assert_eq!(w.held("LTR"), 0);
    consistent(&w, "flatten after manage");
}
