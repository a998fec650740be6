"""Drives a node's TAXII 2.1 server with the real taxii2-client (2.3.0) and checks what
it serves with the OASIS stix2-validator. Run by tests/tests/taxii_misp.rs against real
daemons; argv[1] is a JSON file with the daemons' URLs and the expected values.
Exits non-zero, with a message, on the first failed check."""

import json
import sys
import time

import requests
from stix2validator import ValidationOptions, validate_instance
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

cfg = json.load(open(sys.argv[1]))
TOKEN = cfg["token"]
MT = "application/taxii+json;version=2.1"
DEADLINE_S = 30


def check(cond, msg):
    if not cond:
        print("FAIL: " + msg, file=sys.stderr)
        sys.exit(1)


def validate(obj):
    result = validate_instance(obj, ValidationOptions(version="2.1"))
    errors = [str(e) for e in result.errors]
    check(result.is_valid, f"stix2-validator rejects {obj.get('id')}: {errors}\n{json.dumps(obj)}")


def all_objects(collection, per_request, **filters):
    out = []
    pages = 0
    for envelope in as_pages(collection.get_objects, per_request=per_request, **filters):
        pages += 1
        objs = envelope.get("objects", [])
        check(len(objs) <= per_request, f"a page holds {len(objs)} > limit {per_request}")
        out.extend(objs)
        check(pages < 10_000, "paging does not end")
    return out, pages


# --- discovery and collections (node 0) ---
server = Server(cfg["node0"] + "/taxii2/", user="analyst", password=TOKEN)
check(server.title == "alertmesh node", f"discovery title {server.title!r}")
root = server.default
check(root is not None, "discovery names no default API root")
check(root.url == cfg["node0"] + "/taxii2/api/", f"API root {root.url}")
check(root.max_content_length == cfg["max_content_length"], "max_content_length")
check(MT in root.versions, f"versions {root.versions}")
cols = {c.title: c for c in root.collections}
check(set(cols) == {"all", "bulletin"}, f"collections {sorted(cols)}")
col = cols["all"]
check(col.id == cfg["collection_all"], f"collection id {col.id} != {cfg['collection_all']}")
check(col.can_read and col.can_write, "node 0 may read and write 'all'")
check(cols["bulletin"].id == cfg["collection_bulletin"], "bulletin id")

# --- every object, small pages; validator ---
objs, pages = all_objects(col, 2)
ids = [o["id"] for o in objs]
check(len(objs) == cfg["native_objects"], f"{len(objs)} objects, expected {cfg['native_objects']}")
check(len(set(ids)) == len(ids), "an object appears twice in the last-version listing")
check(pages >= len(objs) // 2, f"{pages} pages for {len(objs)} objects with limit 2")
for o in objs:
    validate(o)
    check(o["created_by_ref"] == cfg["identity0"], f"created_by_ref of {o['id']}")
revoked = [o for o in objs if o.get("revoked")]
check(len(revoked) == 1, f"{len(revoked)} revoked objects, expected the retracted one")

# --- manifest, added_after resume, date headers ---
manifest = []
for env in as_pages(col.get_manifest, per_request=3):
    manifest.extend(env.get("objects", []))
check([m["id"] for m in manifest] == ids, "manifest order differs from objects order")
dates = [m["date_added"] for m in manifest]
check(dates == sorted(dates) and len(set(dates)) == len(dates), "date_added not strictly increasing")
k = len(manifest) // 2
rest, _ = all_objects(col, 2, added_after=manifest[k - 1]["date_added"])
check([o["id"] for o in rest] == ids[k:], "added_after did not resume after the k-th object")
auth = ("analyst", TOKEN)
r = requests.get(col.url + "objects/", params={"limit": 2}, headers={"Accept": MT}, auth=auth)
check(r.status_code == 200, f"objects: {r.status_code}")
check(r.headers.get("X-TAXII-Date-Added-First") == dates[0], "X-TAXII-Date-Added-First")
check(r.headers.get("X-TAXII-Date-Added-Last") == dates[1], "X-TAXII-Date-Added-Last")
check(r.json()["more"] is True and r.json()["next"], "more/next on a first page")
r = requests.get(col.url + "objects/", params={"match[type]": "campaign"}, headers={"Accept": MT}, auth=auth)
check(all(o["type"] == "campaign" for o in r.json()["objects"]) and r.json()["objects"], "match[type]")
r = requests.get(col.url + "objects/", params={"match[id]": ids[0], "match[version]": "all"}, headers={"Accept": MT}, auth=auth)
check(all(o["id"] == ids[0] for o in r.json()["objects"]), "match[id]")
r = requests.get(col.url + "objects/", params={"match[spec_version]": "2.0"}, headers={"Accept": MT}, auth=auth)
check("objects" not in r.json(), "match[spec_version]=2.0 must match nothing")

# --- add objects on node 0 ---
GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
T0 = "2020-10-01T12:00:00.000Z"
ind = {"type": "indicator", "spec_version": "2.1", "id": "indicator--6b8c3e5a-1c1f-4f7e-9a43-0b2b7e1d5a01",
       "created": T0, "modified": T0, "name": "Fake polling-place domain",
       "description": "Lookalike of a county election site", "indicator_types": ["malicious-activity"],
       "pattern": "[domain-name:value = 'vote-county-example.com'] OR [ipv4-addr:value = '198.51.100.7']",
       "pattern_type": "stix", "valid_from": T0, "object_marking_refs": [GREEN],
       "created_by_ref": "identity--0f0f0f0f-1c1f-4f7e-9a43-0b2b7e1d5a01", "labels": ["election-2020"]}
camp = {"type": "campaign", "spec_version": "2.1", "id": "campaign--6b8c3e5a-1c1f-4f7e-9a43-0b2b7e1d5a02",
        "created": T0, "modified": T0, "name": "Operation Lookalike", "first_seen": T0}
rel = {"type": "relationship", "spec_version": "2.1", "id": "relationship--6b8c3e5a-1c1f-4f7e-9a43-0b2b7e1d5a03",
       "created": T0, "modified": T0, "relationship_type": "indicates",
       "source_ref": ind["id"], "target_ref": camp["id"]}
sig = {"type": "sighting", "spec_version": "2.1", "id": "sighting--6b8c3e5a-1c1f-4f7e-9a43-0b2b7e1d5a04",
       "created": T0, "modified": T0, "sighting_of_ref": ind["id"], "count": 3,
       "first_seen": T0, "last_seen": "2020-10-02T12:00:00.000Z"}
note = {"type": "note", "spec_version": "2.1", "id": "note--6b8c3e5a-1c1f-4f7e-9a43-0b2b7e1d5a05",
        "created": T0, "modified": T0, "abstract": "Takedown requested",
        "content": "Registrar notified on 2020-10-01.", "object_refs": [ind["id"]]}
good = [ind, camp, rel, sig, note]
bad = [
    ({"type": "malware", "spec_version": "2.1", "id": "malware--6b8c3e5a-1c1f-4f7e-9a43-0b2b7e1d5a06",
      "created": T0, "modified": T0, "name": "x", "is_family": False}, "not accepted"),
    ({k: v for k, v in ind.items() if k != "pattern"} | {"id": "indicator--6b8c3e5a-1c1f-4f7e-9a43-0b2b7e1d5a07"}, "pattern"),
    (ind | {"id": "indicator--6b8c3e5a-1c1f-4f7e-9a43-0b2b7e1d5a08", "object_marking_refs": [RED]}, "above the maximum"),
    (ind | {"id": "indicator--6b8c3e5a-1c1f-4f7e-9a43-0b2b7e1d5a09", "modified": "2019-01-01T00:00:00.000Z"}, "before created"),
]
status = col.add_objects({"objects": good + [b for b, _ in bad]})
check(status.status == "complete", f"status {status.status}")
check(status.success_count == len(good), f"successes {status.successes} failures {status.failures}")
check(status.failure_count == len(bad), f"failures {status.failures}")
for (obj, reason), failure in zip(bad, status.failures):
    check(failure["id"] == obj["id"] and reason in failure["message"], f"failure {failure} (wanted {reason})")
status.refresh()  # GET status/{id}
check(status.success_count == len(good), "the status resource is kept")

# --- the same objects, served by node 1 ---
server1 = Server(cfg["node1"] + "/taxii2/", user="analyst", password=TOKEN)
cols1 = {c.title: c for c in server1.default.collections}
col1 = cols1["all"]
check(col1.id == col.id, "collection ids differ between nodes")
want = {o["id"] for o in good}
deadline = time.monotonic() + DEADLINE_S
while True:
    got1 = {o["id"]: o for o in all_objects(col1, 50)[0]}
    if want <= set(got1):
        break
    check(time.monotonic() < deadline, f"node 1 does not serve {sorted(want - set(got1))}")
    time.sleep(0.2)
got0 = {o["id"]: o for o in all_objects(col, 50)[0]}
for o in good:
    a, b = got0[o["id"]], got1[o["id"]]
    check(a == b, f"node 0 and node 1 serve {o['id']} differently:\n{a}\n{b}")
    check(b["created_by_ref"] == cfg["identity0"], f"created_by_ref of {o['id']}")
    for k, v in o.items():
        if k not in ("created_by_ref", "object_marking_refs"):
            check(b.get(k) == v, f"{o['id']}: {k} changed: {b.get(k)!r} != {v!r}")
    validate(b)
check(got1[ind["id"]]["object_marking_refs"] == [GREEN], "markings of the indicator kept")
check(GREEN not in got1[camp["id"]]["object_marking_refs"] and got1[camp["id"]]["object_marking_refs"],
      "an unmarked object gets the topic's TLP marking")
check(not any(b["id"] in got1 for b, _ in bad), "a refused object reached node 1")

# --- a new version of an object, seen on node 1 ---
ind2 = ind | {"modified": "2020-10-03T12:00:00.000Z", "name": "Fake polling-place domain (confirmed)"}
status = col.add_objects({"objects": [ind2, ind2 | {"modified": T0}]})
check(status.success_count == 1 and status.failure_count == 1, f"update: {status.successes} {status.failures}")
deadline = time.monotonic() + DEADLINE_S
while True:
    r = col1.object_versions(ind["id"])
    if len(r.get("versions", [])) == 2:
        break
    check(time.monotonic() < deadline, f"node 1 versions of the indicator: {r}")
    time.sleep(0.2)
check(r["versions"] == [T0, ind2["modified"]], f"versions {r['versions']}")
latest = col1.get_object(ind["id"])["objects"]
check(len(latest) == 1 and latest[0]["name"] == ind2["name"], f"last version {latest}")
first = col1.get_object(ind["id"], version="first")["objects"]
check(first[0]["modified"] == T0, "match[version]=first")

# --- bad requests: clear TAXII errors ---
def error(resp, code, what):
    check(resp.status_code == code, f"{what}: {resp.status_code} (wanted {code}) {resp.text}")
    body = resp.json()
    check(body.get("http_status") == str(code) and body.get("title") and body.get("description"),
          f"{what}: not a TAXII error body: {resp.text}")
    check(resp.headers["Content-Type"] == MT, f"{what}: content type {resp.headers['Content-Type']}")

objects_url = col.url + "objects/"
error(requests.get(root.url + "collections/", headers={"Accept": "application/json"}, auth=auth), 406, "wrong Accept")
error(requests.post(objects_url, data=json.dumps({"objects": [ind]}),
                    headers={"Accept": MT, "Content-Type": "application/json"}, auth=auth), 415, "wrong Content-Type")
error(requests.post(objects_url, data=b"{" + b" " * cfg["max_content_length"],
                    headers={"Accept": MT, "Content-Type": MT}, auth=auth), 413, "over max_content_length")
error(requests.post(objects_url, data=b"{\"objects\": [", headers={"Accept": MT, "Content-Type": MT}, auth=auth), 400, "malformed JSON")
error(requests.get(objects_url, params={"next": "nonsense"}, headers={"Accept": MT}, auth=auth), 400, "invalid next")
error(requests.get(objects_url, params={"added_after": "last tuesday"}, headers={"Accept": MT}, auth=auth), 400, "invalid added_after")
bulletin1 = cols1["bulletin"]
check(bulletin1.can_read and not bulletin1.can_write, "node 1 may read but not write 'bulletin'")
error(requests.post(bulletin1.url + "objects/", data=json.dumps({"objects": [ind]}),
                    headers={"Accept": MT, "Content-Type": MT}, auth=auth), 403, "write to a read-only collection")
r = requests.get(root.url, headers={"Accept": MT})
check(r.status_code == 401, f"no credentials: {r.status_code}")
r = requests.get(root.url, headers={"Accept": MT, "Authorization": "Bearer " + TOKEN})
check(r.status_code == 200, f"Bearer: {r.status_code}")
r = requests.get(root.url, headers={"Accept": MT}, auth=("analyst", "wrong-token-wrong-token"))
check(r.status_code == 401, f"wrong Basic password: {r.status_code}")

# Nothing refused reached node 0's collection either.
final0 = {o["id"] for o in all_objects(col, 100)[0]}
check(final0 == set(ids) | want, f"node 0 holds {len(final0)} objects")
print(f"taxii: ok ({len(ids)} native objects in {pages} pages, {len(good)} added and served by node 1)")
