//! The other servers the simulator plays, over loopback: the ASX
//! announcements page (checked against skim's hand-written fixture), the
//! Discord webhook with its limits, and the unsigned control endpoints.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use support::{exchange, get, post_json, start_sim, sydney};

const PAGE: &str = "/asx/v2/statistics/todayAnns.do";
const UA: &str = "DiscordBot (https://example.invalid/skim, 0.1)";

/// The page's tags, in order, as `name` or `name.class`; text and other
/// attributes are left out, so two pages with the same structure and
/// different announcements compare equal row by row.
fn skeleton(html: &str) -> Vec<String> {
    let mut tags = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        if let Some(comment) = after.strip_prefix("!--") {
            tags.push("!--".to_string());
            rest = &comment[comment.find("-->").unwrap() + 3..];
            continue;
        }
        let end = after.find('>').unwrap();
        let inner = &after[..end];
        let name = inner
            .split_whitespace()
            .next()
            .unwrap()
            .to_ascii_lowercase();
        let class = inner
            .split("class=\"")
            .nth(1)
            .map(|c| c.split('"').next().unwrap().to_string());
        tags.push(match class {
            Some(class) => format!("{name}.{class}"),
            None => name,
        });
        rest = &after[end + 1..];
    }
    tags
}

/// Splits a skeleton into what precedes the rows, the rows, and the rest.
fn parts(tags: &[String]) -> (Vec<String>, Vec<Vec<String>>, Vec<String>) {
    let body = tags.iter().position(|t| t == "tbody").unwrap() + 1;
    let end = tags.iter().position(|t| t == "/tbody").unwrap();
    let mut rows = Vec::new();
    let mut row = Vec::new();
    for tag in &tags[body..end] {
        row.push(tag.clone());
        if tag == "/tr" {
            rows.push(std::mem::take(&mut row));
        }
    }
    (tags[..body].to_vec(), rows, tags[end..].to_vec())
}

fn fixture(name: &str) -> String {
    let path = format!("{}/../fixtures/asx/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn the_page_has_the_fixture_shape_and_lists_released_announcements_newest_first() {
    let sim = start_sim("asx-page");
    sim.set_now(sydney("13:00:00"));
    let page = get(sim.addr(), PAGE);
    assert_eq!(page.status, 200);
    assert!(
        page.header("Content-Type")
            .unwrap()
            .starts_with("text/html")
    );
    // Kept for a look by eye beside tests/fixtures/asx/today_normal.html.
    let copy = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("sim-todayAnns.html");
    std::fs::write(&copy, &page.body).unwrap();

    let (head, rows, tail) = parts(&skeleton(&page.body));
    let (fixture_head, fixture_rows, fixture_tail) =
        parts(&skeleton(&fixture("today_normal.html")));
    assert_eq!(head, fixture_head);
    assert_eq!(tail, fixture_tail);
    let shapes: HashSet<&Vec<String>> = fixture_rows.iter().collect();
    assert_eq!(shapes.len(), 2, "the fixture has sensitive and plain rows");
    assert_eq!(rows.len(), 6);
    for row in &rows {
        assert!(
            shapes.contains(row),
            "row shape not in the fixture: {row:?}"
        );
    }
    assert_eq!(rows.iter().collect::<HashSet<_>>().len(), 2);

    let body = &page.body;
    assert!(body.contains("<span>2 March 2026</span>"));
    assert!(body.contains("Binding Offtake Agreement &amp; Capital Raising"));
    assert!(body.contains("Appendix 3Y &lt;Director&gt; &quot;Interest&quot;"));
    assert!(body.contains("<td>&nbsp;</td>"));
    assert!(body.contains("02/03/2026<br>"));
    assert!(body.contains("idsId=03061177\">"));
    assert!(
        body.contains("\t\t\t\t\t\t\t1\n\t\t\t\t\t\t\tpage\n"),
        "singular page"
    );
    let order: Vec<usize> = [
        "12:30 pm", "9:05 am", "8:50 am", "8:31 am", "8:12 am", "7:45 am",
    ]
    .iter()
    .map(|t| body.find(&format!(">{t}<")).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "newest first");
    assert_eq!(body.matches("class=\"pricesens\"").count(), 4);
}

#[test]
fn the_page_is_empty_before_the_first_release_and_grows_with_the_clock() {
    let sim = start_sim("asx-morning");
    sim.set_now(sydney("07:44:59"));
    let morning = get(sim.addr(), PAGE).body;
    assert!(!morning.contains("<table"));
    assert!(morning.contains("<title>Today's announcements - ASX</title>"));
    assert_eq!(
        skeleton(&morning),
        skeleton(&fixture("today_empty_morning.html"))
    );

    sim.set_now(sydney("08:31:00"));
    let page = get(sim.addr(), PAGE).body;
    assert_eq!(page.matches("<tr>").count(), 4, "header and 3 released");
    assert!(!page.contains("CBA"));
}

#[test]
fn page_faults_give_500_and_a_changed_layout() {
    let sim = start_sim("asx-faults");
    sim.set_now(sydney("10:00:00"));
    sim.faults(|f| f.asx.server_error_next = 1);
    assert_eq!(get(sim.addr(), PAGE).status, 500);
    assert_eq!(get(sim.addr(), PAGE).status, 200);
    sim.faults(|f| f.asx.changed_layout = true);
    let changed = get(sim.addr(), PAGE);
    assert_eq!(changed.status, 200);
    assert!(!changed.body.contains("<table") && !changed.body.contains("Today's announcements"));
    sim.faults(|f| f.asx.changed_layout = false);
    assert!(get(sim.addr(), PAGE).body.contains("<table>"));
}

/// The webhook's path and query from its URL.
fn webhook_target(sim: &skim_sim::Simulator, query: &str) -> String {
    let url = sim.discord_webhook_url();
    let path = url.split_once(&sim.addr().to_string()).unwrap().1;
    format!("{path}{query}")
}

#[test]
fn the_webhook_accepts_messages_like_discord() {
    let sim = start_sim("discord-ok");
    let embed = json!({
        "embeds": [{
            "title": "Scan",
            "color": 65280,
            "fields": [{ "name": "BHP", "value": "Gap 3.6%" }],
        }],
        "allowed_mentions": { "parse": [] },
    });
    let waited = post_json(
        sim.addr(),
        &webhook_target(&sim, "?wait=true"),
        UA,
        &embed.to_string(),
    );
    assert_eq!(waited.status, 200, "{}", waited.body);
    let message = waited.json();
    assert!(message["id"].as_str().unwrap().parse::<u64>().is_ok());
    assert_eq!(message["embeds"][0]["title"], "Scan");
    assert_eq!(waited.header("X-RateLimit-Limit"), Some("5"));
    assert_eq!(waited.header("X-RateLimit-Remaining"), Some("4"));
    assert!(waited.header("X-RateLimit-Reset-After").is_some());
    assert!(waited.header("X-RateLimit-Bucket").is_some());

    let versioned = webhook_target(&sim, "").replace("/api/", "/api/v10/");
    let quiet = post_json(sim.addr(), &versioned, UA, r#"{"content":"hello"}"#);
    assert_eq!((quiet.status, quiet.body.as_str()), (204, ""));

    let kept = sim.discord_messages();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0].id, message["id"]);
    assert_eq!(kept[1].payload["content"], "hello");
}

#[test]
fn the_webhook_refuses_bodies_over_discord_limits() {
    let sim = start_sim("discord-limits");
    let target = webhook_target(&sim, "?wait=true");
    let text = |n: usize| "x".repeat(n);
    let field = json!({ "name": "n", "value": "v" });
    let cases = [
        (json!({ "embeds": [{ "title": text(257) }] }), "title"),
        (
            json!({ "embeds": [{ "description": text(4097) }] }),
            "description",
        ),
        (
            json!({ "embeds": [{ "fields": vec![field.clone(); 26] }] }),
            "fields",
        ),
        (
            json!({ "embeds": [{ "fields": [{ "name": "n", "value": text(1025) }] }] }),
            "value",
        ),
        (
            json!({ "embeds": [{ "footer": { "text": text(2049) } }] }),
            "footer",
        ),
        (
            json!({ "embeds": vec![json!({ "title": "t" }); 11] }),
            "embeds",
        ),
        (
            json!({ "embeds": [{ "description": text(4000) }, { "description": text(2001) }] }),
            "MAX_EMBED_SIZE_EXCEEDED",
        ),
        (json!({ "content": text(2001) }), "content"),
    ];
    for (body, named) in cases {
        // Stay inside 5 requests per 2 s: these are about the body.
        std::thread::sleep(Duration::from_millis(420));
        let answer = post_json(sim.addr(), &target, UA, &body.to_string());
        assert_eq!(answer.status, 400, "{named}: {}", answer.body);
        let error = answer.json();
        assert_eq!(error["code"], 50_035);
        assert!(
            error["errors"].to_string().contains(named),
            "{named}: {error}"
        );
    }
    std::thread::sleep(Duration::from_millis(420));
    let empty = post_json(sim.addr(), &target, UA, "{}");
    assert_eq!(
        (empty.status, empty.json()["code"].clone()),
        (400, json!(50_006))
    );
    std::thread::sleep(Duration::from_millis(420));
    let broken = post_json(sim.addr(), &target, UA, "{\"content\":");
    assert_eq!(broken.json()["code"], 50_109);
    std::thread::sleep(Duration::from_millis(420));
    let no_agent = post_json(sim.addr(), &target, "curl/8", r#"{"content":"x"}"#);
    assert_eq!(no_agent.status, 403);
    assert!(sim.discord_messages().is_empty());
}

#[test]
fn the_webhook_paces_five_per_two_seconds_with_429_bodies() {
    let sim = start_sim("discord-429");
    let target = webhook_target(&sim, "");
    let post = || post_json(sim.addr(), &target, UA, r#"{"content":"tick"}"#);
    for _ in 0..5 {
        assert_eq!(post().status, 204);
    }
    let limited = post();
    assert_eq!(limited.status, 429);
    let body = limited.json();
    assert_eq!(body["global"], false);
    assert!(body["message"].is_string());
    let retry_after = body["retry_after"].as_f64().unwrap();
    assert!(retry_after > 0.0 && retry_after <= 2.0, "{retry_after}");
    assert!(limited.header("Retry-After").is_some());
    assert_eq!(limited.header("X-RateLimit-Remaining"), Some("0"));
    std::thread::sleep(Duration::from_secs_f64(retry_after + 0.05));
    assert_eq!(post().status, 204);
    assert_eq!(sim.discord_messages().len(), 6);
}

#[test]
fn the_webhook_answers_404_for_unknown_webhooks_and_plays_faults() {
    let sim = start_sim("discord-404");
    let target = webhook_target(&sim, "");
    let (id, token) = target
        .trim_start_matches("/api/webhooks/")
        .split_once('/')
        .unwrap();
    let body = r#"{"content":"x"}"#;
    let unknown = |target: &str| {
        let answer = post_json(sim.addr(), target, UA, body);
        assert_eq!(answer.status, 404, "{target}");
        assert_eq!(
            answer.json(),
            json!({ "message": "Unknown Webhook", "code": 10015 })
        );
    };
    unknown(&format!("/api/webhooks/{id}/wrong{token}"));
    unknown(&format!("/api/webhooks/1{id}/{token}"));
    sim.faults(|f| f.discord.unknown_webhook = true);
    unknown(&target);
    sim.faults(|f| f.discord.unknown_webhook = false);

    sim.faults(|f| f.discord.rate_limited_next = 1);
    let limited = post_json(sim.addr(), &target, UA, body);
    assert_eq!(limited.status, 429);
    assert!(limited.json()["retry_after"].as_f64().unwrap() > 0.0);
    sim.faults(|f| f.discord.server_error_next = 1);
    assert_eq!(post_json(sim.addr(), &target, UA, body).status, 500);
    assert_eq!(post_json(sim.addr(), &target, UA, body).status, 204);
    assert_eq!(sim.discord_messages().len(), 1);
}

#[test]
fn control_endpoints_move_the_clock_and_dump_state_without_the_token() {
    let sim = start_sim("control");
    let addr = sim.addr();
    let moved = post_json(
        addr,
        "/sim/clock",
        "demo",
        r#"{"now":"2026-03-02T08:15:00+11:00"}"#,
    );
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(moved.json()["sydney"], "2026-03-02 08:15:00");
    assert_eq!(sim.now(), sydney("08:15:00"));
    assert_eq!(get(addr, PAGE).body.matches("<tr>").count(), 3);

    let bad = post_json(addr, "/sim/clock", "demo", r#"{"now":"8:15"}"#);
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("RFC 3339"));

    let target = webhook_target(&sim, "");
    assert_eq!(
        post_json(addr, &target, UA, r#"{"content":"hi"}"#).status,
        204
    );
    let state = exchange(addr, "GET", "/sim/state", &[], "");
    assert_eq!(state.status, 200);
    let dump: Value = state.json();
    assert_eq!(dump["requests"][format!("GET {PAGE}")], 1);
    assert_eq!(dump["discord_messages"][0]["payload"]["content"], "hi");
    let token = target.rsplit('/').next().unwrap();
    assert!(!state.body.contains(token), "the webhook token is a secret");
    assert!(state.body.contains("(redacted)"));
}
