"""Reads a node's MISP feed with PyMISP's MISPEvent and round-trips an event through
the node's import route. Run by tests/tests/taxii_misp.rs against real daemons; argv[1]
is a JSON file with the daemon's URL and the expected values. Exits non-zero, with a
message, on the first failed check."""

import hashlib
import json
import sys
import time

import requests
from pymisp import MISPEvent

cfg = json.load(open(sys.argv[1]))
BASE = cfg["node0"]
FEED = BASE + "/misp/"
HDR = {"X-Alertmesh-Token": cfg["token"]}
DEADLINE_S = 30


def check(cond, msg):
    if not cond:
        print("FAIL: " + msg, file=sys.stderr)
        sys.exit(1)


def get(path, headers=None):
    r = requests.get(FEED + path, headers=HDR | (headers or {}))
    return r


def load_feed():
    r = get("manifest.json")
    check(r.status_code == 200, f"manifest: {r.status_code} {r.text}")
    manifest = r.json()
    events = {}
    for uuid, entry in manifest.items():
        r = get(f"{uuid}.json")
        check(r.status_code == 200, f"{uuid}.json: {r.status_code}")
        ev = MISPEvent()
        ev.load(r.json())
        check(ev.uuid == uuid, f"event uuid {ev.uuid} != {uuid}")
        check(ev.info == entry["info"], f"info of {uuid}")
        check(ev.Orgc.name == entry["Orgc"]["name"], "Orgc in the manifest")
        events[uuid] = ev
    return manifest, events


def attrs(ev):
    out = sorted((a.type, a.value) for a in ev.attributes)
    for o in ev.objects:
        out += sorted((f"{o.name}.{a.object_relation}", a.value) for a in o.attributes)
    return sorted(out)


def tags(ev):
    return sorted(t.name for t in ev.tags if not t.name.startswith("alertmesh:state"))


# --- auth, ETag, If-None-Match ---
check(requests.get(FEED + "manifest.json").status_code == 401, "the feed needs the token")
r = requests.get(FEED + "manifest.json", headers={"Authorization": "Bearer " + cfg["token"]})
check(r.status_code == 200, "Bearer works on the feed too")
etag = r.headers.get("ETag")
check(etag and etag.startswith('"'), f"ETag {etag}")
r = get("manifest.json", {"If-None-Match": etag})
check(r.status_code == 304 and not r.content, f"If-None-Match: {r.status_code}")
check(get("00000000-0000-4000-8000-000000000000.json").status_code == 404, "unknown event")

manifest, events = load_feed()
check(len(events) == cfg["events"], f"{len(events)} events, expected {cfg['events']}")
for uuid, ev in events.items():
    check(ev.Orgc.name == cfg["org0_name"], f"Orgc {ev.Orgc.name}")
    check(any(t.name.startswith("tlp:") for t in ev.tags), f"{uuid} has no tlp tag")
    for a in ev.attributes:
        check(a.type in {"domain", "url", "ip-dst", "email-src", "sha256", "phone-number", "text", "comment"},
              f"attribute type {a.type}")

rich = [ev for ev in events.values() if ev.info == cfg["rich_title"]]
check(len(rich) == 1, "the alert with every observable type")
rich = rich[0]
types = {a.type for a in rich.attributes}
check({"domain", "url", "ip-dst", "email-src", "sha256", "phone-number"} <= types, f"types {types}")
blogs = [o for o in rich.objects if o.name == "microblog"]
rels = {a.object_relation: a.value for o in blogs for a in o.attributes}
check("hashtag" in rels and "username" in rels, f"microblog objects {rels}")
check("tlp:amber" in tags(rich), f"tags {tags(rich)}")
retracted = [ev for ev in events.values() if any(t.name == 'alertmesh:state="retracted"' for t in ev.tags)]
check(len(retracted) == 1 and retracted[0].info.startswith("[RETRACTED]"), "the retraction is reflected")
check(all(not a.to_ids for a in retracted[0].attributes), "a retracted event's attributes are not for IDS")
updated = [ev for ev in events.values() if any(t.name == 'alertmesh:state="updated"' for t in ev.tags)]
check(len(updated) == 1 and updated[0].info == cfg["updated_title"], "the update is reflected")

# hashes.csv: md5 of every attribute value, with its event
r = get("hashes.csv")
check(r.status_code == 200, "hashes.csv")
lines = set(r.text.strip().splitlines())
for uuid, ev in events.items():
    for h in ev.attributes_hashes("md5"):
        check(f"{h},{uuid}" in lines, f"hashes.csv lacks {h},{uuid}")

# --- round trip: export → MISPEvent → import → export ---
body = json.loads(rich.to_json())
r = requests.post(BASE + "/v1/misp/events", params={"topic": "all"}, json=body, headers=HDR)
check(r.status_code == 201, f"import: {r.status_code} {r.text}")
check(r.json()["unmapped"] == [], f"unmapped on round trip: {r.json()['unmapped']}")
deadline = time.monotonic() + DEADLINE_S
while True:
    m = get("manifest.json").json()
    new = [u for u in m if u not in manifest and m[u]["info"] == rich.info]
    if new:
        break
    check(time.monotonic() < deadline, "the imported event does not appear in the feed")
    time.sleep(0.2)
back = MISPEvent()
back.load(get(f"{new[0]}.json").json())
check(attrs(back) == attrs(rich), f"attributes changed on the round trip:\n{attrs(rich)}\n{attrs(back)}")
check(tags(back) == tags(rich), f"tags changed on the round trip: {tags(rich)} -> {tags(back)}")
check(back.threat_level_id == rich.threat_level_id, "threat level")

# --- unmappable attributes are listed, not dropped ---
odd = MISPEvent()
odd.info = "Event with attribute types alertmesh has no observable for"
odd.add_attribute("domain", "odd.example")
odd.add_attribute("mutex", "Global\\odd")
odd.add_attribute("btc", "1BoatSLRHtKNngkdXEeobR76b53LETtpyT")
odd.add_tag("tlp:green")
r = requests.post(BASE + "/v1/misp/events", params={"topic": "all"}, data=odd.to_json(), headers=HDR)
check(r.status_code == 201, f"import: {r.status_code} {r.text}")
unmapped = sorted(u["type"] for u in r.json()["unmapped"])
check(unmapped == ["btc", "mutex"], f"unmapped {unmapped}")
check(r.json()["mapped"] == 1 and r.json()["tlp"] == "GREEN", f"answer {r.json()}")
r = requests.post(BASE + "/v1/misp/events", params={"topic": "all"}, data="{not json", headers=HDR)
check(r.status_code == 400, f"malformed event: {r.status_code}")
print(f"misp: ok ({len(events)} feed events loaded by PyMISP, round trip kept attributes and tags)")
