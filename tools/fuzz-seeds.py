#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus (fuzz/corpus/<target>/seed-*) from the recorded
Meilisearch 1.50 request/response pairs and a few hand-written inputs. docs/fuzzing.md
describes each target's input framing: two leading bytes, then NUL-separated sections.

    python3 tools/fuzz-seeds.py [FIXTURES_DIR]   (default /work/shared/fixtures/meilisearch-1.50)
"""
import glob
import hashlib
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus")
FIXTURES = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/fixtures/meilisearch-1.50"


def enc(value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, separators=(",", ":")).encode()


def write(target, lead, sections):
    rest = b"\0".join(enc(s) for s in sections)
    assert rest.count(b"\0") == len(sections) - 1, "a section holds a NUL byte"
    data = bytes(lead) + rest
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data)


fixtures = {}
for path in sorted(glob.glob(os.path.join(FIXTURES, "*.json"))):
    with open(path) as f:
        fx = json.load(f)
    fixtures[fx["name"]] = fx


def body_of(fx, side):
    body = fx[side].get("body")
    if body is None:
        return b""
    return enc(body)


def reply(status, match, body):
    return f"{status} {match}\n".encode() + enc(body)


index = fixtures.get("index-get", {}).get("response", {}).get("body", {"uid": "movies", "primaryKey": "id"})
task = {"taskUid": 3, "indexUid": "movies", "status": "enqueued", "type": "documentAdditionOrUpdate",
        "enqueuedAt": "2026-11-21T23:37:55.784783806Z"}
settings = fixtures.get("settings-get", {}).get("response", {}).get("body", {})
common = [
    reply(200, "=GET /indexes/movies", index),
    reply(200, "/settings", settings),
    reply(201, "/_miroir/internal/tasks", {"taskUid": 42}),
    reply(200, "/_miroir/internal/uid-leases", {"first": 100, "last": 199}),
    reply(202, "/documents", task),
]

# request: every recorded request, its recorded answer for the matching node call.
for i, (name, fx) in enumerate(sorted(fixtures.items())):
    req, resp = fx["request"], fx["response"]
    headers = "\n".join(f"{k}: {v}" for k, v in req.get("headers", {}).items())
    path = req["path"].split("?")[0]
    own = reply(resp["status"], path, resp.get("body") if resp.get("body") is not None else "")
    write("request", [i % 5, i % 8], [f"{req['method']} {req['path']}", headers, body_of(fx, "request"), own] + common)
write("request", [2, 1], ["POST /indexes/movies/documents?primaryKey=id", "content-type: text/csv",
                          "id:number,title\n1,\"a, b\"\n2,\"x\"\"y\"\n", "!"] + common)
write("request", [3, 6], ["GET /indexes/movies/search?q=a&limit=3&facets=genre&sort=year:asc", "", ""] + common)
write("request", [4, 0], ["POST /indexes/movies/similar", "content-type: application/json",
                          {"id": 1, "embedder": "default", "limit": 2}, reply(200, "", {"hits": []})] + common)
write("request", [1, 2], ["POST /indexes/movies/documents/delete-batch", "content-type: application/json",
                          [1, "2", "three"]] + common)

# documents: content type, csvDelimiter, primaryKey, body.
for i, name in enumerate(n for n in sorted(fixtures) if n.startswith("documents-add") or n == "documents-update-put"):
    req = fixtures[name]["request"]
    ct = {k.lower(): v for k, v in req.get("headers", {}).items()}.get("content-type", "")
    write("documents", [i % 5, i % 2], [ct, "", "", body_of(fixtures[name], "request")])
for lead, sections in [
    ([1, 1], ["text/csv", ";", "", 'id;title;price:number\n1;"semi;colon";3.5\n"2";"quote""d";-1\n']),
    ([3, 0], ["text/csv; charset=utf-8", "", "sku", "sku,name:string,ok:boolean\nA-1,x,true\nB_2,,false\n"]),
    ([4, 1], ["application/x-ndjson", "", "", '{"id":1}\n\n{"id":"x","n":{"a":[1,2,{"b":null}]}}\r\n{}\n']),
    ([2, 1], ["application/json", "", "", '{"id": 7, "title": "one object"}']),
    ([0, 0], ["application/json", "", "uid", '[{"uid": 1e3}, {"uid": -4, "x": "\\ud83d\\ude00"}, {"uid": "a"}]']),
]:
    write("documents", lead, sections)

# merge: which merge, topology; client body, settings, node answers.
def search_seed(name, which):
    fx = fixtures[name]
    body = fx["response"].get("body") or {}
    faceting = {"maxValuesPerFacet": 2, "sortFacetValuesBy": {"*": "count"}}
    write("merge", [which, 1], [body_of(fx, "request") or "{}", faceting, body, body])

for name in sorted(fixtures):
    if name.startswith("search-"):
        search_seed(name, 0)
if "facet-search" in fixtures:
    search_seed("facet-search", 1)
if "multi-search-federated" in fixtures:
    fx = fixtures["multi-search-federated"]
    write("merge", [2, 1], [body_of(fx, "request"), {"movies": settings}, fx["response"]["body"], fx["response"]["body"]])
for name in ("documents-list", "documents-fetch-filter", "documents-fetch-sort"):
    if name in fixtures:
        fx = fixtures[name]
        write("merge", [4, 1], [body_of(fx, "request") or "{}", "null", fx["response"]["body"], fx["response"]["body"]])
for name, which in (("index-stats", 5), ("stats", 13)):
    if name in fixtures:
        body = fixtures[name]["response"]["body"]
        write("merge", [which, 3], ["{}", "null", body, body, body, body, body])
record = {"indexUid": "movies", "kind": "documentAdditionOrUpdate", "details": {"receivedDocuments": 2},
          "copies": 1, "nodeTasks": [{"node": "n0", "group": "g", "taskUid": 3}]}
for name in sorted(fixtures):
    if name.startswith("task-") and fixtures[name]["response"]["status"] == 200:
        body = fixtures[name]["response"]["body"]
        write("merge", [6, 1], ["{}", record, body, body, body])
write("merge", [3, 1], [{"id": 1, "embedder": "default", "limit": 2, "showRankingScore": True},
                        {"_vectors": {"default": [0.1, 0.2]}, "embedding": [0.1, 0.2], "maxTotalHits": 5},
                        {"hits": [{"id": 2, "_rankingScore": 0.9}], "estimatedTotalHits": 1, "processingTimeMs": 1},
                        {"hits": [{"id": 3, "_rankingScore": 0.5}], "estimatedTotalHits": 1, "processingTimeMs": 2}])
for name in sorted(fixtures):
    if fixtures[name]["response"]["status"] >= 400:
        write("merge", [7, 0], ["{}", "null", fixtures[name]["response"]["body"]])

# control_plane: which input, topology; then per kind (see the target).
tasks = [fixtures[n]["response"]["body"] for n in sorted(fixtures) if n.startswith("task-") and fixtures[n]["response"]["status"] == 200]
for query in ["statuses=succeeded,failed&types=documentAdditionOrUpdate",
              "uids=1,2,3&indexUids=movies&afterEnqueuedAt=2026-11-21T23:37:55Z",
              "beforeFinishedAt=2026-11-22&canceledBy=4", "limit=2&from=3&reverse=true&statuses=*"]:
    write("control_plane", [0, 0], [query] + tasks)
    write("control_plane", [1, 0], [query] + tasks)
write("control_plane", [2, 0], ["content-type: application/json", {"url": "https://example.com/x", "headers": {"Authorization": "Bearer abcdefghijklmnopqrstuvwxyz", "X-Old": None}},
                                {"url": "https://example.com/hook", "headers": {"X-Old": "1"}}])
write("control_plane", [2, 0], ["", {"url": None}, ""])
config = {"topology": {"epoch": 3, "shards": 8, "replicationFactor": 2, "nodes": [
    {"id": f"n{i}", "address": f"10.0.0.{i}:7700", "group": "a" if i < 3 else "b", "state": "active"} for i in range(6)]},
    "nodeTimeoutMs": 5000, "controlPlane": {"cluster": "miroir-control-plane", "authority": "cp:7701", "token": "t", "timeoutMs": 2000}}
write("control_plane", [3, 0], ["", config])
write("control_plane", [4, 1], ["", {"id": "n9", "address": "10.0.0.9:7700", "group": "g"}])
write("control_plane", [12, 3], ["", {"id": "b0"}])
for text in ["2026-11-21T23:37:55.784783806Z", "2026-11-21", "2026-02-31T23:59:60+14:00", "0000-01-01T00:00:00-23:59"]:
    write("control_plane", [5, 0], ["", text])
