//! `skim notify` through the binary: the outbox keeps what cannot be sent.

use crate::util::TestEnv;

#[test]
fn without_a_webhook_messages_are_queued_not_sent() {
    let env = TestEnv::new();
    let run = env.skim(&["notify", "hello", "--json"]);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["queued_id"], 1);
    assert_eq!(doc["delivery"]["sent"], 0);
    assert_eq!(doc["delivery"]["queued"], 1);
    assert_eq!(doc["delivery"]["stopped"], "DISCORD_WEBHOOK_URL is not set");
    env.skim(&[
        "notify", "--title", "Scan", "--color", "green", "--field", "BHP=5%",
    ])
    .expect_code(0);
    let flush = env.skim(&["notify", "--flush", "--json"]);
    flush.expect_code(0);
    assert_eq!(flush.json()["pending"].as_array().unwrap().len(), 2);
}

#[test]
fn an_unreachable_webhook_keeps_the_message_and_hides_the_token() {
    let mut env = TestEnv::new();
    // A loopback port with no listener: the connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = "SeCrEtToKeN_abcdefghijklmnopqrstuvwxyz0123456789";
    env.set(
        "DISCORD_WEBHOOK_URL",
        &format!("http://127.0.0.1:{port}/api/webhooks/123/{token}"),
    );
    let run = env.skim(&["notify", "hello"]);
    run.expect_code(1);
    assert!(run.stderr.contains("stay queued"), "{run:?}");
    assert!(
        !run.stdout.contains(token) && !run.stderr.contains(token),
        "{run:?}"
    );
    let again = env.skim(&["notify", "--flush", "--json", "-vv"]);
    assert!(
        !again.stdout.contains(token) && !again.stderr.contains(token),
        "{again:?}"
    );
    assert_eq!(again.json()["delivery"]["queued"], 1);
}

#[test]
fn bad_input_is_a_usage_error() {
    let env = TestEnv::new();
    env.skim(&["notify"]).expect_code(2);
    env.skim(&["notify", "--color", "mauve", "x"])
        .expect_code(2);
    env.skim(&["notify", "--field", "novalue", "x"])
        .expect_code(2);
    let mut env = env;
    env.set("DISCORD_WEBHOOK_URL", "https://example.com/hook/abc");
    let run = env.skim(&["notify", "x"]);
    run.expect_code(2);
    assert!(run.stderr.contains("DISCORD_WEBHOOK_URL"), "{run:?}");
}

#[test]
fn delivers_to_the_simulated_discord_and_retries_what_was_queued() {
    let s = crate::util::SimEnv::start();
    let mut env = s.env;
    let url = s.sim.discord_webhook_url();
    let token = url.rsplit('/').next().unwrap().to_owned();
    env.set("DISCORD_WEBHOOK_URL", &url);

    s.sim.faults(|f| f.discord.unknown_webhook = true);
    let gone = env.skim(&["notify", "first"]);
    gone.expect_code(1);
    assert!(s.sim.discord_messages().is_empty());

    s.sim.faults(|f| f.discord.unknown_webhook = false);
    s.sim.faults(|f| f.discord.rate_limited_next = 1);
    let run = env.skim(&[
        "notify",
        "--title",
        "Scan",
        "--field",
        "BHP=+5.2%",
        "second",
        "--json",
    ]);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(
        doc["delivery"]["sent"], 2,
        "the queued one went first: {doc}"
    );
    assert_eq!(doc["delivery"]["queued"], 0);
    let sent = s.sim.discord_messages();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].payload["content"], "first");
    assert_eq!(sent[1].payload["embeds"][0]["title"], "Scan");
    assert_eq!(
        sent[1].payload["allowed_mentions"]["parse"],
        serde_json::json!([])
    );
    for run in [&gone, &run] {
        assert!(
            !run.stdout.contains(&token) && !run.stderr.contains(&token),
            "{run:?}"
        );
    }
}
