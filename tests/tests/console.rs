//! The operator console in a real browser (Debian's `chromium`, driven by Playwright for
//! Python, `tests/python/console_check.py`) against two real daemons, org-0 and org-1:
//! login and logout, live alerts over SSE, publishing through the form, a TLP refused,
//! hostile alert content shown as text with nothing executed or fetched, CSRF and
//! session refusals, error pages. Screenshots of the main screens are written to a
//! temporary directory, or to `docs/console/` with `UPDATE_SCREENSHOTS=1`.
//!
//! Without Playwright or Chromium the test is skipped, except under `CI=true`, where it
//! fails.

use alertmesh_protocol::Tlp;
use alertmesh_protocol::bootstrap::{NetworkPlan, TopicPlan, simple_plan};
use alertmesh_protocol::ids::OrgId;
use alertmesh_tests::process::{Cluster, TestGuard};
use alertmesh_tests::python;
use anyhow::Context;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// A topic name that is HTML and a quote-breaking attribute value.
const HOSTILE_TOPIC: &str = "ops\"'><svg onload=alert('topic')>";
/// Org-1's display name: HTML with an event handler.
const HOSTILE_ORG_NAME: &str = "Org <img src=x onerror=alert('org')> \"One\"";

fn plan() -> NetworkPlan {
    let mut p = simple_plan(2, alertmesh_node::clock::now_ms() - 60_000);
    p.orgs[1].name = HOSTILE_ORG_NAME.into();
    let both = vec![OrgId("org-0".into()), OrgId("org-1".into())];
    p.topics = vec![
        TopicPlan {
            name: "all".into(),
            readers: both.clone(),
            publishers: both.clone(),
            max_tlp: Tlp::Amber,
        },
        TopicPlan {
            name: "bulletin".into(),
            readers: both.clone(),
            publishers: both.clone(),
            max_tlp: Tlp::Green,
        },
        TopicPlan {
            name: HOSTILE_TOPIC.into(),
            readers: both.clone(),
            publishers: both,
            max_tlp: Tlp::Amber,
        },
    ];
    p
}

/// An alert whose every field carries a payload: script tags, event handlers,
/// `javascript:` URLs, SVG, attribute-breaking quotes, requests to another origin, and a
/// very long unbroken string.
fn hostile_alert(other_origin: &str) -> Value {
    let long = "A".repeat(8_000);
    json!({
        "kind": "indicator",
        "title": format!("<script>alert('title')</script><img src=\"{other_origin}/t.png\" onerror=alert(1)>\"'><b>x"),
        "description": format!("</p><svg onload=alert('svg')><a href=\"javascript:alert('js')\">click</a>\
            <iframe src=\"{other_origin}/frame\"></iframe><style>body{{display:none}}</style>{long}"),
        "severity": "high",
        "confidence": 90,
        "observables": [
            {"type": "domain", "value": "\"><script>alert('domain')</script>"},
            {"type": "domain", "value": "D".repeat(2000)},
            {"type": "url", "value": "javascript:alert(document.cookie)"},
            {"type": "url", "value": format!("{other_origin}/<img src=x onerror=alert(2)>")},
            {"type": "email", "value": "x@y.example\" onmouseover=\"alert(3)"},
            {"type": "hashtag", "value": "<svg><script>alert('hashtag')</script></svg>"},
            {"type": "social-account", "value": {"platform": "<marquee>", "handle": "'onfocus=alert(4) autofocus='"}},
        ],
        "labels": ["<img src=x onerror=alert(5)>", "L".repeat(2000)],
        "references": [format!("{other_origin}/ref"), "javascript:alert('ref')"],
        "valid_from_ms": 1_600_000_000_000u64,
        "valid_until_ms": null,
        "related": [],
    })
}

fn rich_alert() -> Value {
    json!({
        "kind": "indicator",
        "title": "Phishing kit against county election offices",
        "description": "Lookalike login pages for county election staff, hosted on fresh domains.",
        "severity": "high",
        "confidence": 80,
        "observables": [
            {"type": "domain", "value": "vote-county-example.com"},
            {"type": "url", "value": "https://vote-county-example.com/login"},
            {"type": "ipv4", "value": [198, 51, 100, 7]},
            {"type": "email", "value": "elections@vote-county-example.com"},
            {"type": "file-sha256", "value": vec![0xab; 32]},
            {"type": "social-account", "value": {"platform": "Twitter", "handle": "@fake_poll_news"}},
        ],
        "labels": ["election-2020"],
        "references": ["https://example.org/case/17"],
        "valid_from_ms": 1_600_000_000_000u64,
        "valid_until_ms": null,
        "related": [],
    })
}

#[test]
fn console_in_a_real_browser() -> anyhow::Result<()> {
    if !python::available(
        "Playwright for Python or Debian's chromium",
        "import playwright.sync_api, os\nassert os.access('/usr/bin/chromium', os.X_OK)",
        "apt-get install chromium; python3 -m pip install playwright",
    )? {
        return Ok(());
    }
    let _guard = TestGuard::new("console_in_a_real_browser", Duration::from_secs(300));
    let mut cluster = Cluster::with_plan(&plan(), 1818)?;
    cluster.start_all(&[0, 1])?;
    cluster.wait_mesh(&[0, 1])?;
    let url = |i: usize| format!("http://{}", cluster.daemons[i].api_addr());
    // The other origin the payloads point at: org-1's API (a request there would be seen).
    let other_origin = url(1);
    let c1 = cluster.daemons[1].client();
    let publish = |topic: &str, tlp: &str, content: Value| -> anyhow::Result<String> {
        let mut body = content;
        body["topic"] = json!(topic);
        body["tlp"] = json!(tlp);
        let r: Value = c1.post("/v1/alerts", &body)?;
        Ok(r["id"].as_str().context("receipt without id")?.to_string())
    };
    let rich = publish("all", "AMBER", json!({ "alert": rich_alert() }))?;
    let hostile = publish(
        HOSTILE_TOPIC,
        "GREEN",
        json!({ "alert": hostile_alert(&other_origin) }),
    )?;
    // Both arrived on org-0 before the browser looks.
    let c0 = cluster.daemons[0].client();
    alertmesh_tests::process::wait_until("org-1's alerts on org-0", || {
        c0.get::<Value>("/v1/alerts?limit=1000")
            .map(|v| {
                let ids: Vec<&str> = v["alerts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a["id"].as_str())
                    .collect();
                ids.contains(&rich.as_str()) && ids.contains(&hostile.as_str())
            })
            .unwrap_or(false)
    })?;
    let dir = tempfile::tempdir()?;
    let shots = if std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/console")
    } else {
        dir.path().join("screenshots")
    };
    std::fs::create_dir_all(&shots)?;
    let cfg = json!({
        "node0": url(0),
        "node1": url(1),
        "token": alertmesh_sim::files::TOKEN,
        "rich_id": rich,
        "hostile_id": hostile,
        "hostile_title": hostile_alert(&other_origin)["title"],
        "hostile_topic": HOSTILE_TOPIC,
        "hostile_org_name": HOSTILE_ORG_NAME,
        "screenshots": shots,
    });
    python::run("console_check.py", &cfg, dir.path())?;
    cluster.check_clean(&[0, 1])?;
    Ok(())
}

/// The console's HTTP contract without a browser (runs everywhere): the API keeps its
/// token and answers, the console's cookies, headers, CSRF and error pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sessions_csrf_and_error_pages() -> anyhow::Result<()> {
    let net = alertmesh_sim::harness::Builder::from_plan(plan())
        .seed(18)
        .start()
        .await?;
    let base = format!("http://{}", net.node("org-0")?.api_addr);
    let result = tokio::task::spawn_blocking(move || http_contract(&base)).await;
    net.shutdown().await;
    result?
}

fn http_contract(base: &str) -> anyhow::Result<()> {
    use anyhow::ensure;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let token = alertmesh_sim::files::TOKEN;
    let bearer = format!("Bearer {token}");
    let header = |r: &ureq::http::Response<ureq::Body>, name: &str| -> String {
        r.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let csrf_in = |html: &str| -> anyhow::Result<String> {
        let start = html
            .find("name=\"csrf\" value=\"")
            .context("no CSRF field")?
            + 19;
        Ok(html[start..start + 64].to_string())
    };

    // The API is unchanged: the token, 401 without it, JSON 404 with it; the console's
    // cookie opens no API route.
    let r = agent.get(format!("{base}/v1/status")).call()?;
    ensure!(r.status() == 401, "API without token: {}", r.status());
    let r = agent.get(format!("{base}/no/such")).call()?;
    ensure!(
        r.status() == 401,
        "unknown route without token: {}",
        r.status()
    );
    let mut r = agent
        .get(format!("{base}/no/such"))
        .header("Authorization", &bearer)
        .call()?;
    ensure!(
        r.status() == 404,
        "unknown route with token: {}",
        r.status()
    );
    ensure!(r.body_mut().read_json::<Value>()?["error"].is_string());
    // A browser gets the console's error page.
    let mut r = agent
        .get(format!("{base}/no/such"))
        .header("Accept", "text/html")
        .call()?;
    ensure!(
        r.status() == 404 && header(&r, "content-security-policy").contains("script-src 'self'")
    );
    ensure!(r.body_mut().read_to_string()?.contains("no such page"));

    // Pages need a session; forms need one too.
    let r = agent.get(format!("{base}/alerts")).call()?;
    ensure!(
        r.status() == 303 && header(&r, "location") == "/login",
        "no session: {}",
        r.status()
    );
    let r = agent
        .post(format!("{base}/publish"))
        .content_type("application/x-www-form-urlencoded")
        .send("title=x")?;
    ensure!(r.status() == 401, "form without session: {}", r.status());

    // Login: the form's CSRF token must match its cookie, then the token must be right.
    let mut r = agent.get(format!("{base}/login")).call()?;
    let set = header(&r, "set-cookie");
    ensure!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "login cookie {set}"
    );
    let csrf = csrf_in(&r.body_mut().read_to_string()?)?;
    let login = |cookie: &str, csrf: &str, token: &str| {
        agent
            .post(format!("{base}/login"))
            .header("Cookie", cookie)
            .content_type("application/x-www-form-urlencoded")
            .send(format!("csrf={csrf}&token={token}"))
    };
    let r = login("alertmesh_login=other", &csrf, token)?;
    ensure!(r.status() == 403, "login CSRF mismatch: {}", r.status());
    let r = login(&format!("alertmesh_login={csrf}"), &csrf, "wrong")?;
    ensure!(r.status() == 401, "wrong token: {}", r.status());
    let r = login(&format!("alertmesh_login={csrf}"), &csrf, token)?;
    ensure!(r.status() == 303, "login: {}", r.status());
    let set = header(&r, "set-cookie");
    let session = set
        .lines()
        .find_map(|c| c.strip_prefix("alertmesh_session="))
        .and_then(|c| c.split(';').next())
        .context("no session cookie")?
        .to_string();
    ensure!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Max-Age="),
        "session cookie {set}"
    );
    let cookie = format!("alertmesh_session={session}");

    // Every page has the security headers.
    let mut r = agent
        .get(format!("{base}/publish"))
        .header("Cookie", &cookie)
        .call()?;
    ensure!(r.status() == 200, "publish page: {}", r.status());
    ensure!(header(&r, "content-security-policy").contains("frame-ancestors 'none'"));
    ensure!(header(&r, "x-content-type-options") == "nosniff");
    ensure!(header(&r, "x-frame-options") == "DENY");
    ensure!(header(&r, "referrer-policy") == "no-referrer");
    let form_csrf = csrf_in(&r.body_mut().read_to_string()?)?;
    let r = agent
        .get(format!("{base}/v1/status"))
        .header("Cookie", &cookie)
        .call()?;
    ensure!(
        r.status() == 401,
        "the session cookie opened the API: {}",
        r.status()
    );

    // CSRF: missing, then a valid one used twice.
    let post = |body: String| {
        agent
            .post(format!("{base}/publish"))
            .header("Cookie", &cookie)
            .content_type("application/x-www-form-urlencoded")
            .send(body)
    };
    let r =
        post("topic=all&tlp=TLP:GREEN&kind=indicator&severity=low&confidence=5&title=x".into())?;
    ensure!(r.status() == 403, "no CSRF token: {}", r.status());
    let refused = format!(
        "csrf={form_csrf}&topic=bulletin&tlp=TLP:AMBER&kind=indicator&severity=low&confidence=5&title=x"
    );
    let mut r = post(refused.clone())?;
    ensure!(r.status() == 422, "TLP above the maximum: {}", r.status());
    ensure!(r.body_mut().read_to_string()?.contains("above the maximum"));
    let r = post(refused)?;
    ensure!(r.status() == 403, "replayed CSRF token: {}", r.status());

    // Logout ends the session, and with it a live stream the session had open (the
    // agent's 10 s timeout fails the read of a stream that does not end).
    let mut r = agent
        .get(format!("{base}/alerts"))
        .header("Cookie", &cookie)
        .call()?;
    let logout_csrf = csrf_in(&r.body_mut().read_to_string()?)?;
    let stream = agent
        .get(format!("{base}/alerts/events"))
        .header("Cookie", &cookie)
        .header("Accept", "text/event-stream")
        .call()?;
    ensure!(stream.status() == 200, "live stream: {}", stream.status());
    let r = agent
        .post(format!("{base}/logout"))
        .header("Cookie", &cookie)
        .content_type("application/x-www-form-urlencoded")
        .send(format!("csrf={logout_csrf}"))?;
    ensure!(r.status() == 303, "logout: {}", r.status());
    stream
        .into_body()
        .read_to_string()
        .context("the live stream outlived its session")?;
    let r = agent
        .get(format!("{base}/alerts"))
        .header("Cookie", &cookie)
        .call()?;
    ensure!(r.status() == 401, "ended session: {}", r.status());

    // A forged session cookie.
    let r = agent
        .get(format!("{base}/alerts"))
        .header("Cookie", format!("alertmesh_session={}", "0".repeat(64)))
        .call()?;
    ensure!(r.status() == 401, "forged session: {}", r.status());
    Ok(())
}
