"""Drives org-0's operator console in Debian's Chromium with Playwright for Python. Run
by tests/tests/console.rs against two real daemons; argv[1] is a JSON file with the
daemons' URLs, the API token, the ids of alerts org-1 published (one rich, one hostile)
and where to write screenshots. Exits non-zero, with a message, on the first failed check.

Only the standard library and Playwright: org-1's API is called with urllib."""

import json
import re
import sys
import time
import urllib.request
import uuid

from playwright.sync_api import sync_playwright

cfg = json.load(open(sys.argv[1]))
ORIGIN = cfg["node0"]
NODE1 = cfg["node1"]
TOKEN = cfg["token"]
SHOTS = cfg["screenshots"]
LIVE_DEADLINE_S = 15
ARRIVAL_DEADLINE_S = 30


def check(cond, msg):
    if not cond:
        print("FAIL: " + msg, file=sys.stderr)
        sys.exit(1)


def api(base, method, path, body=None):
    """A call to a node's bearer-token API (not through the browser)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + TOKEN)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def titles_on(base):
    alerts = api(base, "GET", "/v1/alerts?limit=1000")["alerts"]
    return [((a.get("content") or {}).get("alert") or {}).get("title") for a in alerts]


def wait_until(what, deadline_s, cond):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.2)
    check(False, f"timed out after {deadline_s}s waiting for {what}")


def shot(page, name):
    page.screenshot(path=f"{SHOTS}/{name}.png", full_page=False)


def alert(title, kind="indicator"):
    return {
        "kind": kind, "title": title, "description": "test data", "severity": "medium",
        "confidence": 50, "observables": [{"type": "domain", "value": "live.example"}],
        "labels": [], "references": [], "valid_from_ms": int(time.time() * 1000),
        "valid_until_ms": None, "related": [],
    }


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    requests_seen = []
    context.on("request", lambda r: requests_seen.append(r.url))
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    # --- Login: a page needs a session; a wrong token is refused; the right one works.
    page.goto(ORIGIN + "/alerts")
    check(page.url == ORIGIN + "/login", f"not sent to the login page: {page.url}")
    shot(page, "login")
    page.fill("#token", "not-the-token")
    with page.expect_navigation() as nav:
        page.click("#login")
    check(nav.value.status == 401, f"wrong token answered {nav.value.status}")
    check("Wrong token" in page.content(), "no reason shown for a wrong token")
    page.fill("#token", TOKEN)
    page.click("#login")
    page.wait_for_url(ORIGIN + "/alerts")
    session = [c for c in context.cookies() if c["name"] == "alertmesh_session"]
    check(len(session) == 1, f"no session cookie: {context.cookies()}")
    session = session[0]
    check(session["httpOnly"], "session cookie is not HttpOnly")
    check(session["sameSite"] == "Strict", f"session cookie SameSite={session['sameSite']}")
    check(session["expires"] > time.time(), "session cookie does not expire")
    response = page.goto(ORIGIN + "/alerts")
    h = response.headers
    csp = h.get("content-security-policy", "")
    for part in ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"]:
        check(part in csp, f"CSP lacks {part!r}: {csp!r}")
    check("unsafe-inline" not in csp, "CSP allows inline code")
    check(h.get("x-content-type-options") == "nosniff", "no X-Content-Type-Options")
    check(h.get("referrer-policy") == "no-referrer", "no Referrer-Policy")
    check(h.get("x-frame-options") == "DENY", "no frame denial")

    # --- Live: an alert published on org-1 appears on org-0's list within seconds.
    page.wait_for_function("document.getElementById('live-status').textContent === 'connected'")
    live_title = f"Live alert {uuid.uuid4()}"
    started = time.monotonic()
    api(NODE1, "POST", "/v1/alerts", {"topic": "all", "tlp": "GREEN", "alert": alert(live_title)})
    page.locator("#alerts tbody tr", has_text=live_title).wait_for(timeout=LIVE_DEADLINE_S * 1000)
    print(f"live alert shown after {time.monotonic() - started:.2f}s")
    row = page.locator("#alerts tbody tr", has_text=live_title)
    check(row.locator(".tlp-green").count() == 1, "live row has no TLP:GREEN badge")
    shot(page, "alerts")

    # --- Publish through the form: arrives on org-1.
    page.goto(ORIGIN + "/publish")
    topics = page.eval_on_selector_all("#topic option", "os => os.map(o => o.value)")
    check(set(topics) == {"all", "bulletin", cfg["hostile_topic"]}, f"topics offered: {topics}")
    tlps = page.eval_on_selector_all("#tlp option", "os => os.map(o => o.value)")
    check(tlps == ["TLP:CLEAR", "TLP:GREEN", "TLP:AMBER"], f"TLPs offered: {tlps}")
    form_title = f"Published from the console {uuid.uuid4()}"
    page.select_option("#topic", "all")
    page.select_option("#tlp", "TLP:AMBER")
    page.fill("#title", form_title)
    page.fill("#description", "Seen in our mail gateway.")
    page.fill("#obs-domain", "console.example\nsecond.example")
    page.fill("#obs-ipv4", "203.0.113.9")
    shot(page, "publish")
    page.click("#publish")
    page.wait_for_url(re.compile(r".*/alerts/[0-9a-f]{64}$"))
    check(page.inner_text("#alert-title") == form_title, "the new alert's page shows another title")
    check("203.0.113.9" in page.inner_text("#observables"), "the IPv4 observable is missing")
    wait_until("the form's alert on org-1", ARRIVAL_DEADLINE_S, lambda: form_title in titles_on(NODE1))

    # --- A TLP above the topic's maximum is refused, with the reason.
    page.goto(ORIGIN + "/publish")
    refused_title = f"Too secret {uuid.uuid4()}"
    page.select_option("#topic", "bulletin")
    page.select_option("#tlp", "TLP:AMBER")
    page.fill("#title", refused_title)
    with page.expect_navigation() as nav:
        page.click("#publish")
    check(nav.value.status == 422, f"TLP above the maximum answered {nav.value.status}")
    check("above the maximum" in page.inner_text("main"), f"no reason shown: {page.inner_text('main')}")
    check(refused_title not in titles_on(ORIGIN), "the refused alert was published")

    # --- The rich alert from org-1: detail, exports, a sighting.
    page.goto(ORIGIN + "/alerts/" + cfg["rich_id"])
    check("org-1" in page.inner_text("#author-org"), "author org missing")
    check("verified" in page.inner_text("#signature"), "signature not shown as verified")
    with page.expect_download() as dl:
        page.click("#export-stix")
    bundle = json.load(open(dl.value.path()))
    check(bundle.get("type") == "bundle" and bundle.get("objects"), "STIX export is not a bundle")
    with page.expect_download() as dl:
        page.click("#export-misp")
    event = json.load(open(dl.value.path()))
    check("Event" in event, "MISP export is not an event")
    with page.expect_download() as dl:
        page.click("#export-taxii")
    envelope = json.load(open(dl.value.path()))
    objects = envelope.get("objects") or []
    check(len(objects) >= 1 and all(o.get("id", "").startswith(("indicator--", "report--", "campaign--", "note--")) for o in objects),
          f"TAXII export holds no object of the alert: {envelope}")
    page.select_option("#s-topic", "all")
    page.select_option("#s-tlp", "TLP:GREEN")
    page.click("#record-sighting")
    page.wait_for_url(re.compile(r".*/alerts/[0-9a-f]{64}$"))
    page.goto(ORIGIN + "/alerts/" + cfg["rich_id"])
    check("org-0" in page.inner_text("#sightings"), "our sighting is not listed")
    shot(page, "alert-detail")

    # --- Hostile content: shown as text, nothing runs, nothing is fetched elsewhere.
    errors.clear()
    dialogs.clear()
    page.goto(ORIGIN + "/alerts/" + cfg["hostile_id"])
    check(page.inner_text("#alert-title") == cfg["hostile_title"], "hostile title not shown as text")
    injected = page.eval_on_selector_all(
        "main script, main img, main svg, main iframe, main style, main marquee, main a[href^='javascript']",
        "els => els.length")
    check(injected == 0, f"{injected} element(s) injected by alert content")
    check(page.evaluate("document.scripts.length") == 1, "a script other than the console's is in the page")
    check(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"),
          "a long string breaks the layout (horizontal overflow)")
    page.hover("#observables")
    page.keyboard.press("Tab")
    shot(page, "hostile-alert")
    page.goto(ORIGIN + "/alerts")
    check(page.locator("#alerts tbody tr", has_text=cfg["hostile_title"]).count() >= 1,
          "hostile alert not listed")
    page.goto(ORIGIN + "/governance")
    check(cfg["hostile_org_name"] in page.inner_text("#members"), "hostile org name not shown as text")
    check(cfg["hostile_topic"] in page.inner_text("#topics"), "hostile topic name not shown as text")
    shot(page, "governance")
    check(not dialogs, f"a dialog opened: {dialogs}")
    check(not errors, f"console errors: {errors}")

    # --- Network and audit screens.
    page.goto(ORIGIN + "/network")
    check("org-1" in page.inner_text("#peers"), "org-1's node not among the peers")
    check("admitted" in page.inner_text("#peers"), "admission state missing")
    shot(page, "network")
    page.goto(ORIGIN + "/audit")
    page.click("#run-verify")
    page.wait_for_url(ORIGIN + "/audit")
    check("PASSED" in page.inner_text("#verify-result"), f"audit verify: {page.inner_text('main')}")
    with page.expect_download() as dl:
        page.click("#download-export")
    check(len(open(dl.value.path(), "rb").read()) > 100, "the signed export is empty")
    shot(page, "audit")
    check(not errors, f"console errors: {errors}")

    # --- CSRF: missing, replayed; oversized fields; unknown routes.
    r = page.request.post(ORIGIN + "/publish", form={"topic": "all", "tlp": "TLP:GREEN", "title": "no csrf"},
                          max_redirects=0)
    check(r.status == 403 and "CSRF" in r.text(), f"a form without CSRF token answered {r.status}")
    page.goto(ORIGIN + "/governance")
    token = page.get_attribute("form.charter input[name=csrf]", "value")
    r = page.request.post(ORIGIN + "/governance/charter", form={"csrf": token, "charter": "zz"}, max_redirects=0)
    check(r.status == 422 and "hexadecimal" in r.text(), f"a bad charter answered {r.status}")
    r = page.request.post(ORIGIN + "/governance/charter", form={"csrf": token, "charter": "zz"}, max_redirects=0)
    check(r.status == 403 and "already used" in r.text(), f"a replayed CSRF token answered {r.status}")
    page.goto(ORIGIN + "/publish")
    token = page.get_attribute("form.publish input[name=csrf]", "value")
    r = page.request.post(ORIGIN + "/publish", form={"csrf": token, "topic": "all", "tlp": "TLP:GREEN",
                          "kind": "indicator", "severity": "low", "confidence": "5", "title": "T" * 300},
                          max_redirects=0)
    check(r.status == 413 and "at most 256" in r.text(), f"an oversized field answered {r.status}")
    r = page.request.post(ORIGIN + "/publish", form={"csrf": token, "title": "x" * 100_000}, max_redirects=0)
    check(r.status == 413, f"an oversized form answered {r.status}")
    check("T" * 300 not in titles_on(ORIGIN), "an oversized alert was published")
    r = page.goto(ORIGIN + "/no/such/page")
    check(r.status == 404 and "no such page" in page.inner_text("main"), f"unknown route answered {r.status}")

    # --- Logout ends the session; the old cookie is refused; a forged one too.
    page.goto(ORIGIN + "/alerts")
    page.click("#logout")
    page.wait_for_url(ORIGIN + "/login?bye=1")
    check("logged out" in page.inner_text("main"), "no logout message")
    page.goto(ORIGIN + "/alerts")
    check(page.url == ORIGIN + "/login", "a page is shown after logout")
    for value in [session["value"], "f" * 64]:
        context.add_cookies([{"name": "alertmesh_session", "value": value, "url": ORIGIN}])
        r = page.goto(ORIGIN + "/alerts")
        check(r.status == 401 and "not valid" in page.inner_text("main"),
              f"an ended or forged session answered {r.status}")

    # Nothing the console did went to another origin.
    foreign = [u for u in requests_seen if not u.startswith(ORIGIN + "/")]
    check(not foreign, f"requests to other origins: {foreign}")
    check(not dialogs, f"a dialog opened: {dialogs}")
    browser.close()

print("console check passed")
