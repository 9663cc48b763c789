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
