#!/usr/bin/env python3
"""Records request/response fixtures from a real Meilisearch node.

Starts the binary (``MEILISEARCH_BIN``, default /work/shared/meilisearch/meilisearch) on a free
port with its CWD and databases in a fresh temporary directory, plays a fixed sequence of
requests, writes one JSON file per request into the output directory (default
tests/test-node/fixtures/meilisearch-1.50/) and kills the node. Standard library only.

File format (as in /work/shared/fixtures/meilisearch-1.50):
``{"name", "request": {method, path, headers, body}, "response": {status, headers, body}}``.
The master key shows as ``<master key>`` in headers. A request signed with a tenant token shows
``Bearer <tenant token>`` and carries a ``tenantToken`` object next to ``request``: the JWT
header, its claims (``exp`` as recorded) and ``expOffset``, ``exp`` minus the signing time, so
a replay can sign the same claims with a fresh expiry. The token is signed with the value of the
API key named by ``apiKeyUid`` (``signedWithKey`` when that is another key).

Usage: tools/record-fixtures.py [OUT_DIR]
"""

import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

BIN = os.environ.get("MEILISEARCH_BIN", "/work/shared/meilisearch/meilisearch")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    ROOT, "tests", "test-node", "fixtures", "meilisearch-1.50")
# The test node's test master key, so that key values (HMAC of the uid with the master key) and
# the tenant tokens signed with them are the same on the test node.
MASTER_KEY = "test-node-master-key-0123456789"
KEY_UID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
OTHER_KEY_UID = "11111111-2222-4333-8444-555555555555"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    def __init__(self, base):
        self.base = base
        self.names = set()

    def request(self, method, path, body=None, auth="master", content_type=None, token_meta=None):
        headers = {}
        shown = {}
        if auth == "master":
            headers["Authorization"] = "Bearer " + MASTER_KEY
            shown["Authorization"] = "Bearer <master key>"
        elif auth is not None:
            headers["Authorization"] = "Bearer " + auth
            shown["Authorization"] = "Bearer " + (auth if token_meta is None else "<tenant token>")
        data = None
        if body is not None:
            if isinstance(body, (bytes, str)):
                data = body.encode() if isinstance(body, str) else body
            else:
                data = json.dumps(body).encode()
            headers["Content-Type"] = content_type or "application/json"
            if content_type:
                shown["Content-Type"] = content_type
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, rheaders, raw = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, rheaders, raw = e.code, e.headers, e.read()
        resp_headers = {}
        if rheaders.get("content-type"):
            resp_headers["content-type"] = rheaders.get("content-type")
        if rheaders.get("retry-after"):
            resp_headers["retry-after"] = rheaders.get("retry-after")
        rbody = json.loads(raw) if raw.strip() else None
        return shown, status, resp_headers, rbody

    def record(self, name, method, path, body=None, auth="master", content_type=None,
               token=None, expect=None):
        assert name not in self.names, name
        self.names.add(name)
        shown, status, rheaders, rbody = self.request(method, path, body, auth, content_type, token)
        fixture = {
            "name": name,
            "request": {"method": method, "path": path, "headers": shown, "body": body},
        }
        if token is not None:
            fixture["tenantToken"] = token
        fixture["response"] = {"status": status, "headers": rheaders, "body": rbody}
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(fixture, f, indent=2, ensure_ascii=False)
            f.write("\n")
        print(f"{status} {name}")
        if expect is not None and status != expect:
            raise SystemExit(f"{name}: expected {expect}, got {status}: {rbody}")
        return rbody

    def wait(self, body):
        uid = body["taskUid"]
        for _ in range(600):
            _, _, _, task = self.request("GET", f"/tasks/{uid}")
            if task["status"] in ("succeeded", "failed", "canceled"):
                if task["status"] != "succeeded":
                    raise SystemExit(f"task {uid}: {task}")
                return task
            time.sleep(0.05)
        raise SystemExit(f"task {uid} did not finish")

    def write(self, name, method, path, body=None, **kw):
        """A write that must succeed: recorded, then waited for."""
        return self.wait(self.record(name, method, path, body, expect=202, **kw))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(claims, key_value, alg="HS256"):
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    header = {"alg": alg, "typ": "JWT"}
    signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + b64url(
        json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(key_value.encode(), signing_input.encode(), digest).digest()
    return signing_input + "." + b64url(sig), header


def token(claims, key_value, exp_offset=None, alg="HS256", signed_with=None):
    claims = dict(claims)
    if exp_offset is not None:
        claims["exp"] = int(time.time()) + exp_offset
    jwt, header = sign(claims, key_value, alg)
    meta = {"header": header, "claims": claims}
    if exp_offset is not None:
        meta["expOffset"] = exp_offset
    if signed_with is not None:
        meta["signedWithKey"] = signed_with
    return jwt, meta


VEC_DOCS = [
    {"id": 1, "title": "red apple", "genre": "fruit", "_vectors": {"default": [1.0, 0.0, 0.0]}},
    {"id": 2, "title": "green apple", "genre": "fruit", "_vectors": {"default": [0.9, 0.1, 0.0]}},
    {"id": 3, "title": "red car", "genre": "vehicle", "_vectors": {"default": [0.0, 1.0, 0.0]}},
    {"id": 4, "title": "blue car", "genre": "vehicle", "_vectors": {"default": [0.1, 0.8, 0.3]}},
    {"id": 5, "title": "blue sky", "genre": "nature", "_vectors": {"default": [0.0, 0.2, 1.0]}},
    {"id": 6, "title": "no vector", "genre": "nature", "_vectors": {"default": None}},
]

BOOKS = [
    {"id": 1, "title": "Carrie", "author": "King", "genre": "horror", "year": 1974, "tags": [1, "b"]},
    {"id": 2, "title": "It", "author": "King", "genre": "horror", "year": 1986, "tags": [2, "a"]},
    {"id": 3, "title": "Dracula", "author": "Stoker", "genre": "horror", "year": 1897, "tags": [1, "a"]},
    {"id": 4, "title": "Emma", "author": "Austen", "genre": "romance", "year": 1815, "tags": [2, "b"]},
    {"id": 5, "title": "Persuasion", "author": "Austen", "genre": "romance", "year": 1817, "tags": [3]},
    {"id": 6, "title": "Dune", "author": "Herbert", "genre": "scifi", "year": 1965, "tags": ["c"]},
    {"id": 7, "title": "Solaris", "author": "Lem", "genre": "scifi", "year": 1961, "tags": [3, "c"]},
    {"id": 8, "title": "Misery", "author": "King", "genre": "thriller", "year": 1987},
    {"id": 9, "title": "Rebecca", "author": "Du Maurier", "genre": "thriller", "year": 1938},
]


def play(r):
    # --- vectors ------------------------------------------------------------------------------
    r.write("vectors-settings", "PATCH", "/indexes/vecs/settings", {
        "embedders": {"default": {"source": "userProvided", "dimensions": 3}},
        "filterableAttributes": ["genre"],
    })
    r.write("vectors-documents-add", "POST", "/indexes/vecs/documents", VEC_DOCS)
    r.record("vectors-settings-get", "GET", "/indexes/vecs/settings/embedders")
    r.record("vectors-search-semantic", "POST", "/indexes/vecs/search", {
        "vector": [1.0, 0.0, 0.0], "hybrid": {"embedder": "default", "semanticRatio": 1.0},
        "limit": 3, "showRankingScore": True})
    r.record("vectors-search-semantic-details", "POST", "/indexes/vecs/search", {
        "vector": [0.0, 1.0, 0.0], "hybrid": {"embedder": "default", "semanticRatio": 1.0},
        "limit": 2, "showRankingScoreDetails": True})
    r.record("vectors-search-semantic-filter", "POST", "/indexes/vecs/search", {
        "vector": [1.0, 0.0, 0.0], "hybrid": {"embedder": "default"},
        "filter": "genre = vehicle"})
    r.record("vectors-search-hybrid", "POST", "/indexes/vecs/search", {
        "q": "blue", "vector": [0.0, 0.0, 1.0],
        "hybrid": {"embedder": "default", "semanticRatio": 0.5}, "showRankingScore": True})
    r.record("vectors-search-hybrid-keyword", "POST", "/indexes/vecs/search", {
        "q": "apple", "vector": [0.0, 0.0, 1.0],
        "hybrid": {"embedder": "default", "semanticRatio": 0.0}})
    r.record("vectors-search-retrieve", "POST", "/indexes/vecs/search", {
        "vector": [0.0, 0.0, 1.0], "hybrid": {"embedder": "default", "semanticRatio": 1.0},
        "limit": 2, "retrieveVectors": True})
    r.record("vectors-search-get", "GET",
             "/indexes/vecs/search?vector=1,0,0&hybridEmbedder=default&hybridSemanticRatio=1&limit=2")
    r.record("vectors-search-no-hybrid", "POST", "/indexes/vecs/search", {"vector": [1.0, 0.0, 0.0]})
    r.record("vectors-search-bad-dimensions", "POST", "/indexes/vecs/search", {
        "vector": [1.0, 0.0], "hybrid": {"embedder": "default"}})
    r.record("vectors-search-unknown-embedder", "POST", "/indexes/vecs/search", {
        "vector": [1.0, 0.0, 0.0], "hybrid": {"embedder": "nope"}})
    r.record("vectors-search-ratio-out-of-range", "POST", "/indexes/vecs/search", {
        "q": "x", "hybrid": {"embedder": "default", "semanticRatio": 1.5}})
    r.record("vectors-document-get", "GET", "/indexes/vecs/documents/1?retrieveVectors=true")
    r.record("vectors-documents-fetch", "POST", "/indexes/vecs/documents/fetch", {
        "ids": ["5", "6"], "retrieveVectors": True})
    r.record("vectors-index-stats", "GET", "/indexes/vecs/stats")

    # --- similar ------------------------------------------------------------------------------
    r.record("similar-post", "POST", "/indexes/vecs/similar", {
        "id": 1, "embedder": "default", "showRankingScore": True})
    r.record("similar-post-filter", "POST", "/indexes/vecs/similar", {
        "id": "3", "embedder": "default", "filter": "genre != fruit", "limit": 1,
        "retrieveVectors": True})
    r.record("similar-get", "GET", "/indexes/vecs/similar?id=3&embedder=default&limit=2&offset=1")
    r.record("similar-not-found-id", "POST", "/indexes/vecs/similar", {"id": 99, "embedder": "default"})
    r.record("similar-missing-embedder", "POST", "/indexes/vecs/similar", {"id": 1})
    r.record("similar-unknown-embedder", "POST", "/indexes/vecs/similar", {"id": 1, "embedder": "nope"})

    # --- books: distinct, facets in count order, facet search ---------------------------------
    r.write("books-settings", "PATCH", "/indexes/books/settings", {
        "filterableAttributes": ["author", "genre", "tags", "year"],
        "sortableAttributes": ["year"],
    })
    r.write("books-documents-add", "POST", "/indexes/books/documents", BOOKS)
    r.record("distinct-param", "POST", "/indexes/books/search", {
        "distinct": "author", "sort": ["year:asc"]})
    r.record("distinct-param-get", "GET", "/indexes/books/search?distinct=genre&sort=year:desc&limit=3")
    r.record("distinct-not-filterable", "POST", "/indexes/books/search", {"distinct": "title"})
    r.write("distinct-setting-patch", "PATCH", "/indexes/books/settings", {
        "distinctAttribute": "author"})
    r.record("distinct-setting-get", "GET", "/indexes/books/settings/distinct-attribute")
    r.record("distinct-setting-search", "POST", "/indexes/books/search", {
        "sort": ["year:desc"], "filter": "genre != scifi"})
    r.record("distinct-setting-overridden", "POST", "/indexes/books/search", {
        "distinct": "genre", "sort": ["year:desc"]})
    r.write("distinct-setting-reset", "DELETE", "/indexes/books/settings/distinct-attribute")

    r.record("facets-alpha", "POST", "/indexes/books/search", {
        "facets": ["genre", "tags", "year"], "limit": 0})
    r.write("facets-count-settings", "PATCH", "/indexes/books/settings/faceting", {
        "sortFacetValuesBy": {"*": "count"}, "maxValuesPerFacet": 4})
    r.record("facets-count-order", "POST", "/indexes/books/search", {
        "facets": ["author", "genre", "tags"], "limit": 0})
    r.record("facets-count-order-filtered", "POST", "/indexes/books/search", {
        "facets": ["tags", "year"], "filter": "genre IN [horror, romance]", "limit": 0})
    r.record("facets-pattern", "POST", "/indexes/books/search", {"facets": ["*"], "limit": 0})
    r.record("facet-search-count", "POST", "/indexes/books/facet-search", {"facetName": "genre"})
    r.record("facet-search-count-query", "POST", "/indexes/books/facet-search", {
        "facetName": "author", "facetQuery": "k"})
    r.record("facet-search-count-filter", "POST", "/indexes/books/facet-search", {
        "facetName": "tags", "filter": "year < 1980"})
    r.write("facets-count-settings-per-attribute", "PATCH", "/indexes/books/settings/faceting", {
        "sortFacetValuesBy": {"*": "alpha", "genre": "count"}, "maxValuesPerFacet": 2})
    r.record("facets-mixed-order", "POST", "/indexes/books/search", {
        "facets": ["author", "genre"], "limit": 0})
    r.record("facet-search-mixed-order", "POST", "/indexes/books/facet-search", {"facetName": "genre"})

    # --- stats in human sizes, fields ---------------------------------------------------------
    r.record("stats-index-human", "GET", "/indexes/books/stats?sizeFormat=human")
    r.record("stats-index-raw", "GET", "/indexes/books/stats")
    r.record("stats-human", "GET", "/stats?sizeFormat=human")
    r.record("stats-bad-size-format", "GET", "/indexes/books/stats?sizeFormat=big")
    r.record("fields-all", "POST", "/indexes/books/fields", {})
    r.record("fields-page", "POST", "/indexes/books/fields", {"offset": 1, "limit": 2})
    r.record("fields-filter-filterable", "POST", "/indexes/books/fields", {
        "filter": {"filterable": True}})
    r.record("fields-filter-patterns", "POST", "/indexes/books/fields", {
        "filter": {"attributePatterns": ["t*"], "sortable": False}})
    r.record("fields-vectors", "POST", "/indexes/vecs/fields", {})
    r.record("fields-unknown-field", "POST", "/indexes/books/fields", {"bogus": 1})
    r.record("fields-index-not-found", "POST", "/indexes/nope/fields", {})

    # --- errors -------------------------------------------------------------------------------
    r.write("plain-documents-add", "POST", "/indexes/plain/documents", [
        {"id": 1, "title": "a"}, {"id": 2, "title": "b"}])
    r.record("error-facets-pattern-not-filterable", "POST", "/indexes/plain/search", {
        "facets": ["*"]})
    r.record("error-facets-not-filterable", "POST", "/indexes/books/search", {"facets": ["title"]})
    r.record("error-get-unknown-param", "GET", "/indexes/books/search?q=it&bogus=1")
    r.record("error-invalid-filter", "POST", "/indexes/books/search", {"filter": "genre = "})
    r.record("error-invalid-filter-get", "GET", "/indexes/books/search?filter=year%20%3E")
    r.record("error-unknown-body-field", "POST", "/indexes/books/search", {"q": "it", "limits": 1})
    r.record("error-facet-search-unknown-field", "POST", "/indexes/books/facet-search", {
        "facetName": "genre", "bogus": True})
    r.record("error-similar-unknown-field", "POST", "/indexes/vecs/similar", {
        "id": 1, "embedder": "default", "q": "x"})

    # --- tenant tokens ------------------------------------------------------------------------
    key = r.record("tenant-key-create", "POST", "/keys", {
        "uid": KEY_UID, "actions": ["search"], "indexes": ["*"], "expiresAt": None}, expect=201)
    other = r.record("tenant-other-key-create", "POST", "/keys", {
        "uid": OTHER_KEY_UID, "actions": ["documents.get"], "indexes": ["books"],
        "expiresAt": None}, expect=201)
    horror = {"searchRules": {"books": {"filter": "genre = horror"}}, "apiKeyUid": KEY_UID}
    jwt, meta = token(horror, key["key"], exp_offset=3600)
    r.record("tenant-search-filter", "POST", "/indexes/books/search", {"sort": ["year:asc"]},
             auth=jwt, token=meta)
    r.record("tenant-search-filter-and-query-filter", "POST", "/indexes/books/search", {
        "filter": "year > 1900", "facets": ["genre"]}, auth=jwt, token=meta)
    r.record("tenant-search-get", "GET", "/indexes/books/search?q=carrie", auth=jwt, token=meta)
    r.record("tenant-search-other-index", "POST", "/indexes/vecs/search", {}, auth=jwt, token=meta)
    r.record("tenant-multi-search", "POST", "/multi-search", {"queries": [
        {"indexUid": "books", "sort": ["year:desc"], "limit": 2}]}, auth=jwt, token=meta)
    r.record("tenant-facet-search", "POST", "/indexes/books/facet-search", {"facetName": "author"},
             auth=jwt, token=meta)
    r.record("tenant-documents-refused", "GET", "/indexes/books/documents", auth=jwt, token=meta)
    jwt_nofilter, meta_nofilter = token({"searchRules": ["books"], "apiKeyUid": KEY_UID},
                                        key["key"])
    r.record("tenant-search-rules-array", "POST", "/indexes/books/search", {
        "filter": "genre = scifi", "sort": ["year:asc"]}, auth=jwt_nofilter, token=meta_nofilter)
    jwt_star, meta_star = token({"searchRules": {"*": {"filter": "genre = fruit"}},
                                 "apiKeyUid": KEY_UID}, key["key"], exp_offset=3600)
    r.record("tenant-search-rules-star", "POST", "/indexes/vecs/search", {"q": "apple"},
             auth=jwt_star, token=meta_star)
    jwt_exp, meta_exp = token(horror, key["key"], exp_offset=-3600)
    r.record("tenant-expired", "POST", "/indexes/books/search", {}, auth=jwt_exp, token=meta_exp)
    jwt_wrong, meta_wrong = token(horror, other["key"], exp_offset=3600, signed_with=OTHER_KEY_UID)
    r.record("tenant-wrong-signature", "POST", "/indexes/books/search", {}, auth=jwt_wrong,
             token=meta_wrong)
    no_search = {"searchRules": ["books"], "apiKeyUid": OTHER_KEY_UID}
    jwt_ns, meta_ns = token(no_search, other["key"], exp_offset=3600)
    r.record("tenant-parent-key-without-search", "POST", "/indexes/books/search", {},
             auth=jwt_ns, token=meta_ns)
    jwt_384, meta_384 = token(horror, key["key"], exp_offset=3600, alg="HS384")
    r.record("tenant-hs384", "POST", "/indexes/books/search", {"limit": 1, "sort": ["year:asc"]},
             auth=jwt_384, token=meta_384)
    jwt_nouid, meta_nouid = token({"searchRules": ["books"]}, key["key"], exp_offset=3600,
                                  signed_with=KEY_UID)
    r.record("tenant-missing-api-key-uid", "POST", "/indexes/books/search", {}, auth=jwt_nouid,
             token=meta_nouid)
    jwt_unknown, meta_unknown = token({"searchRules": ["books"],
                                       "apiKeyUid": "99999999-9999-4999-8999-999999999999"},
                                      key["key"], exp_offset=3600, signed_with=KEY_UID)
    r.record("tenant-unknown-api-key-uid", "POST", "/indexes/books/search", {}, auth=jwt_unknown,
             token=meta_unknown)
    jwt_null, meta_null = token({"searchRules": {"books": None}, "apiKeyUid": KEY_UID},
                                key["key"], exp_offset=3600)
    r.record("tenant-search-rules-null", "POST", "/indexes/books/search", {
        "filter": "genre = romance", "sort": ["year:asc"]}, auth=jwt_null, token=meta_null)
    r.record("tenant-garbage-token", "POST", "/indexes/books/search", {}, auth="not-a-token")
    r.record("tenant-malformed-jwt", "POST", "/indexes/books/search", {}, auth="a.b.c")
    r.record("tenant-key-delete", "DELETE", f"/keys/{KEY_UID}", expect=204)
    r.record("tenant-after-key-deleted", "POST", "/indexes/books/search", {}, auth=jwt, token=meta)
    r.record("tenant-other-key-delete", "DELETE", f"/keys/{OTHER_KEY_UID}", expect=204)


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".json"):
            os.remove(os.path.join(OUT, f))
    tmp = tempfile.mkdtemp(prefix="record-fixtures-")
    port = free_port()
    log = open(os.path.join(tmp, "node.log"), "w")
    proc = subprocess.Popen([
        BIN, "--db-path", os.path.join(tmp, "db"), "--dump-dir", os.path.join(tmp, "d"),
        "--snapshot-dir", os.path.join(tmp, "s"), "--http-addr", f"127.0.0.1:{port}",
        "--master-key", MASTER_KEY, "--no-analytics", "--env", "development",
        "--log-level", "WARN", "--max-indexing-threads", "1",
        "--experimental-max-number-of-batched-tasks", "1",
    ], cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    try:
        r = Recorder(f"http://127.0.0.1:{port}")
        for _ in range(300):
            try:
                _, status, _, body = r.request("GET", "/health", auth=None)
                if status == 200 and body.get("status") == "available":
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("the node did not start")
        _, _, _, version = r.request("GET", "/version")
        print("recording from Meilisearch", version.get("pkgVersion"))
        play(r)
    finally:
        proc.kill()
        proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
