"""`make test-deploy`: the chart, the plain manifests, the Dockerfiles and the filter's OCI image.

- The chart is rendered by a real Helm (`helm lint --strict`, `helm template`) in several
  configurations, and every object is checked against the Kubernetes JSON schemas
  (kubernetes-validate, strict: unknown fields refused) for the oldest and newest versions it
  bundles that we support.
- deploy/kubernetes/miroir.yaml is the chart's default rendering (`make deploy-manifests`
  rewrites it): the test fails when they drift apart.
- The wiring the schemas cannot see: selectors, named ports, Secret keys, the control plane's
  configuration (parsed and run by the real binary, which must answer its probes), the gateway's
  bootstrap (written by the real miroir-envoy-config with the init container's own arguments,
  then `envoy --mode validate`), the node addresses against the StatefulSet's DNS names.
- The Dockerfiles pass hadolint; the filter's OCI image layout is read back by skopeo.
- A broken manifest must fail the schema check, so the check is known to check.

Tools come from the Makefile (`make deploy-tools`): HELM, HADOLINT, SKOPEO, ENVOY and the
debug binaries in target/debug (`make build`).
"""

import copy
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import unittest
import urllib.request

import kubernetes_validate
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "deploy"))
import wasm_oci  # noqa: E402

CHART = os.path.join(ROOT, "deploy", "helm", "miroir")
PLAIN = os.path.join(ROOT, "deploy", "kubernetes", "miroir.yaml")
HELM = os.environ.get("HELM", os.path.join(ROOT, ".venv", "bin", "helm"))
HADOLINT = os.environ.get("HADOLINT", os.path.join(ROOT, ".venv", "bin", "hadolint"))
SKOPEO = os.environ.get("SKOPEO", "skopeo")
ENVOY = os.environ.get("ENVOY", os.path.join(ROOT, ".venv", "bin", "envoy"))
BIN = os.path.join(ROOT, "target", "debug")
WASM = os.path.join(ROOT, "target", "wasm32-wasip1", "release", "miroir_filter.wasm")
# The oldest Kubernetes still maintained when this was written, and the newest schemas bundled.
KUBERNETES_VERSIONS = ["1.31.0", kubernetes_validate.utils.latest_version()]
RELEASE = ["miroir", CHART, "--namespace", "search"]
SECRET_KEYS = {"admin-key", "master-key", "xds-token", "filter-token", "store"}
TEST_SECRETS = [
    "--set", "secrets.create=true",
    "--set", "secrets.adminKey=a", "--set", "secrets.masterKey=m",
    "--set", "secrets.xdsToken=x", "--set", "secrets.filterToken=f",
]
# Configurations rendered besides the default one.
VARIANTS = {
    "default": [],
    "secrets-created": TEST_SECRETS,
    "external-redis": ["--set", "redis.enabled=false", "--set", "redis.url=redis://redis.db:6379/2"],
    "redis-url-in-secret": ["--set", "redis.enabled=false", "--set", "redis.urlFromSecret=true"],
    "bigger": [
        "--set", "meilisearch.replicas=6", "--set", "controlPlane.replicas=3",
        "--set", "gateway.service.type=LoadBalancer", "--set", "controlPlane.topology.replicationFactor=3",
        "--set", "meilisearch.persistence.storageClassName=fast",
    ],
    "one-replica": ["--set", "controlPlane.replicas=1", "--set", "meilisearch.replicas=1",
                    "--set", "controlPlane.topology.replicationFactor=1"],
}


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def helm_template(*extra):
    out = run([HELM, "template", *RELEASE, *extra])
    if out.returncode != 0:
        raise AssertionError(f"helm template {' '.join(extra)} failed:\n{out.stderr}")
    return out.stdout


def objects(text):
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def schema_errors(doc):
    """Every schema violation of one object, for each version (empty when valid)."""
    errors = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')} "
                          f"against {version}: {e.message} at {'.'.join(map(str, e.path))}")
        except kubernetes_validate.utils.SchemaNotFoundError as e:
            errors.append(f"{doc.get('kind')}: no schema ({e})")
    return errors


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pod_specs(docs):
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            yield d, d["spec"]["template"]


def containers(pod):
    return pod["spec"].get("initContainers", []) + pod["spec"]["containers"]


class Chart(unittest.TestCase):
    rendered = {}

    @classmethod
    def setUpClass(cls):
        for name, args in VARIANTS.items():
            cls.rendered[name] = objects(helm_template(*args))

    def test_helm_lint_is_clean(self):
        for args in ([], TEST_SECRETS):
            out = run([HELM, "lint", "--strict", CHART, "--namespace", "search", *args])
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_every_object_matches_the_kubernetes_schemas(self):
        for name, docs in self.rendered.items():
            with self.subTest(variant=name):
                self.assertGreaterEqual(len(docs), 8)
                errors = [e for d in docs for e in schema_errors(d)]
                self.assertEqual(errors, [])

    def test_the_plain_manifests_match_the_kubernetes_schemas(self):
        with open(PLAIN) as f:
            docs = objects(f.read())
        self.assertEqual(sorted(d["kind"] for d in docs), sorted(d["kind"] for d in self.rendered["default"]))
        self.assertEqual([e for d in docs for e in schema_errors(d)], [])

    def test_a_broken_manifest_fails_the_schema_check(self):
        docs = self.rendered["default"]
        deployment = copy.deepcopy(by_kind(docs, "Deployment")["miroir-control-plane"])
        broken = {
            "unknown field": lambda d: d["spec"]["template"]["spec"].update(
                contianers=d["spec"]["template"]["spec"]["containers"]),
            "wrong type": lambda d: d["spec"].update(replicas="two"),
            "missing field": lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"),
            "bad probe": lambda d: d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
            .update(httpGet={"path": "/_miroir/ready"}),
        }
        for what, breaks in broken.items():
            with self.subTest(what):
                doc = copy.deepcopy(deployment)
                breaks(doc)
                self.assertNotEqual(schema_errors(doc), [], f"{what} was accepted")

    def test_the_plain_manifests_are_the_default_rendering(self):
        with open(PLAIN) as f:
            plain = f.read()
        rendered = plain_manifests()
        self.assertEqual(plain, rendered, "deploy/kubernetes/miroir.yaml is stale: run `make deploy-manifests`")

    def test_invalid_values_are_refused(self):
        for args in (
            ["--set", "meilisearch.replicas=0"],
            ["--set", "secrets.create=true"],  # no values
            ["--set", "secrets.existingSecret="],
            ["--set", "redis.enabled=false"],  # no url
            ["--set", "controlPlane.replicas=many"],
        ):
            with self.subTest(args=args):
                out = run([HELM, "template", *RELEASE, *args])
                self.assertNotEqual(out.returncode, 0, f"{args} rendered:\n{out.stdout[:400]}")

    def test_selectors_ports_and_secrets_are_wired(self):
        for name, docs in self.rendered.items():
            with self.subTest(variant=name):
                # The existing Secret's default name, and the created one's.
                secret_names = {"miroir-secrets"}
                pods = list(pod_specs(docs))
                for workload, pod in pods:
                    labels = pod["metadata"]["labels"]
                    for k, v in workload["spec"]["selector"]["matchLabels"].items():
                        self.assertEqual(labels.get(k), v, workload["metadata"]["name"])
                    for c in containers(pod):
                        for env in c.get("env", []):
                            ref = env.get("valueFrom", {}).get("secretKeyRef")
                            if ref:
                                self.assertIn(ref["name"], secret_names)
                                self.assertIn(ref["key"], SECRET_KEYS)
                        mounts = {m["name"] for m in c.get("volumeMounts", [])}
                        volumes = {v["name"] for v in pod["spec"].get("volumes", [])}
                        claims = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
                        self.assertLessEqual(mounts, volumes | claims, c["name"])
                        # Every container runs without root and privileges.
                        sc = c["securityContext"]
                        self.assertFalse(sc["allowPrivilegeEscalation"])
                        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
                    self.assertTrue(pod["spec"]["securityContext"]["runAsNonRoot"])
                    for v in pod["spec"].get("volumes", []):
                        if "secret" in v:
                            self.assertIn(v["secret"]["secretName"], secret_names)
                            self.assertLessEqual({i["key"] for i in v["secret"]["items"]}, SECRET_KEYS)
                for svc in by_kind(docs, "Service").values():
                    matched = [p for _, p in pods
                               if all(p["metadata"]["labels"].get(k) == v for k, v in svc["spec"]["selector"].items())]
                    self.assertEqual(len(matched), 1, svc["metadata"]["name"])
                    names = {p["name"] for c in matched[0]["spec"]["containers"] for p in c.get("ports", [])}
                    for port in svc["spec"]["ports"]:
                        self.assertIn(port["targetPort"], names, svc["metadata"]["name"])
                if name == "secrets-created":
                    secret = by_kind(docs, "Secret")["miroir-secrets"]
                    self.assertEqual(set(secret["stringData"]), SECRET_KEYS - {"store"})

    def test_the_control_plane_configuration_matches_the_cluster(self):
        for name, docs in self.rendered.items():
            with self.subTest(variant=name):
                config = control_plane_config(docs)
                sts = by_kind(docs, "StatefulSet")["miroir-meilisearch"]
                svc = by_kind(docs, "Service")["miroir-meilisearch"]
                self.assertEqual(svc["spec"]["clusterIP"], "None")
                self.assertEqual(sts["spec"]["serviceName"], svc["metadata"]["name"])
                nodes = config["topology"]["nodes"]
                self.assertEqual(len(nodes), sts["spec"]["replicas"])
                for i, node in enumerate(nodes):
                    self.assertEqual(node["id"], f"n{i}")
                    self.assertEqual(node["address"],
                                     f"miroir-meilisearch-{i}.miroir-meilisearch.search.svc.cluster.local:7700")
                cp_svc = by_kind(docs, "Service")["miroir-control-plane"]
                ports = {p["name"]: p["port"] for p in cp_svc["spec"]["ports"]}
                self.assertEqual(config["httpAdvertise"],
                                 f"miroir-control-plane.search.svc.cluster.local:{ports['http']}")
                self.assertTrue(config["xdsListen"].endswith(f":{ports['grpc-xds']}"))
                cp = by_kind(docs, "Deployment")["miroir-control-plane"]["spec"]["template"]["spec"]
                c = cp["containers"][0]
                self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/_miroir/live")
                self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/_miroir/ready")
                secret_dir = next(m["mountPath"] for m in c["volumeMounts"] if m["name"] == "secrets")
                for field in ("adminKeyFile", "masterKeyFile", "xdsTokenFile", "filterTokenFile"):
                    self.assertTrue(config[field].startswith(secret_dir + "/"), field)
                # The gateway: Envoy listens where the control plane's listener says, and the
                # filter is where its `wasm` says.
                gw = by_kind(docs, "Deployment")["miroir-gateway"]["spec"]["template"]["spec"]
                envoy = gw["containers"][0]
                self.assertEqual(int(config["envoyListen"].rsplit(":", 1)[1]), envoy["ports"][0]["containerPort"])
                config_dir = next(m["mountPath"] for m in envoy["volumeMounts"] if m["name"] == "envoy-config")
                self.assertEqual(os.path.dirname(config["wasm"]), config_dir)
                if "redis.enabled=false" in VARIANTS[name]:
                    self.assertNotIn("miroir-redis", by_kind(docs, "StatefulSet"))
                if name == "redis-url-in-secret":
                    self.assertNotIn("store", config)
                    env = {e["name"]: e for e in c["env"]}
                    self.assertEqual(env["MIROIR_STORE"]["valueFrom"]["secretKeyRef"]["key"], "store")
                else:
                    self.assertTrue(config["store"].startswith("redis://"))


def plain_manifests():
    header = (
        "# Miroir in namespace `search`: the chart deploy/helm/miroir rendered with its default values\n"
        "# (`make deploy-manifests` writes this file; `make test` checks it is up to date). Create the\n"
        "# namespace and the Secret `miroir-secrets` first: docs/deploy.md.\n"
    )
    return header + helm_template()


def control_plane_config(docs):
    return tomllib.loads(by_kind(docs, "ConfigMap")["miroir-control-plane"]["data"]["miroir.toml"])


class Binaries(unittest.TestCase):
    """The rendered configuration and bootstrap, fed to the real programs."""

    @classmethod
    def setUpClass(cls):
        cls.docs = objects(helm_template())
        cls.tmp = tempfile.mkdtemp(prefix="miroir-deploy-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_the_control_plane_runs_with_the_configmap_and_answers_its_probes(self):
        toml_text = by_kind(self.docs, "ConfigMap")["miroir-control-plane"]["data"]["miroir.toml"]
        path = os.path.join(self.tmp, "miroir.toml")
        with open(path, "w") as f:
            f.write(toml_text)
        http, xds = free_port(), free_port()
        env = dict(os.environ)
        # What the cluster gives it another way: the Secret's files (here the variables, which
        # win over them), the Redis Service (here an embedded store), the pod's addresses.
        env.update(
            MIROIR_CONFIG=path,
            MIROIR_ADMIN_KEY="a", MIROIR_MASTER_KEY="m", MIROIR_XDS_TOKEN="x", MIROIR_FILTER_TOKEN="f",
            MIROIR_STORE=f"embedded:{self.tmp}/store",
            MIROIR_HTTP_LISTEN=f"127.0.0.1:{http}", MIROIR_XDS_LISTEN=f"127.0.0.1:{xds}",
            MIROIR_HEALTH_INTERVAL_MS="60000", RUST_LOG="warn",
        )
        proc = subprocess.Popen([os.path.join(BIN, "miroir-control-plane")], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            self.assertIn("miroir-control-plane ready", line, proc.stderr.read() if not line else line)
            for route in ("/_miroir/live", "/_miroir/ready"):
                deadline = time.time() + 20
                while True:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{http}{route}", timeout=5) as r:
                            self.assertEqual(r.status, 200, route)
                            break
                    except urllib.error.HTTPError as e:
                        if time.time() > deadline:
                            raise AssertionError(f"{route}: {e.code} {e.read()!r}")
                        time.sleep(0.2)
            # The topology it stored is the ConfigMap's.
            req = urllib.request.Request(f"http://127.0.0.1:{http}/_miroir/topology",
                                         headers={"Authorization": "Bearer a"})
            with urllib.request.urlopen(req, timeout=5) as r:
                topology = json.load(r)
            nodes = topology.get("topology", topology)["nodes"]
            self.assertEqual([n["id"] for n in nodes], ["n0", "n1", "n2"])
        finally:
            proc.terminate()
            proc.communicate(timeout=20)

    def test_the_gateway_bootstrap_is_valid_for_envoy(self):
        gw = by_kind(self.docs, "Deployment")["miroir-gateway"]["spec"]["template"]["spec"]
        init = gw["initContainers"][0]
        self.assertEqual(init["command"][:2], ["sh", "-ec"])
        script = init["command"][2]
        out_dir = os.path.join(self.tmp, "envoy")
        token_dir = os.path.join(self.tmp, "secrets")
        os.makedirs(token_dir, exist_ok=True)
        with open(os.path.join(token_dir, "xds-token"), "w") as f:
            f.write("x\n")
        wasm_dir = os.path.join(self.tmp, "opt")
        os.makedirs(wasm_dir, exist_ok=True)
        shutil.copy(WASM, os.path.join(wasm_dir, "miroir_filter.wasm"))
        # The init container's own script, with its paths moved into the scratch directory and
        # the image's binaries taken from target/debug.
        script = (script.replace("/etc/miroir", out_dir).replace("/run/secrets/miroir", token_dir)
                  .replace("/opt/miroir", wasm_dir))
        env = dict(os.environ, POD_NAME="miroir-gateway-abc12",
                   PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
        env.pop("MIROIR_XDS_TOKEN", None)
        os.makedirs(out_dir, exist_ok=True)
        done = run(["sh", "-ec", script], env=env)
        self.assertEqual(done.returncode, 0, done.stderr)
        bootstrap_path = os.path.join(out_dir, "envoy.json")
        with open(bootstrap_path) as f:
            bootstrap = json.load(f)
        self.assertEqual(bootstrap["node"]["id"], "miroir-gateway-abc12")
        xds = bootstrap["static_resources"]["clusters"][0]
        address = xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        self.assertEqual(address["address"], "miroir-control-plane.search.svc.cluster.local")
        self.assertEqual(address["port_value"], 18000)
        self.assertEqual(xds["type"], "STRICT_DNS")
        grpc = bootstrap["dynamic_resources"]["ads_config"]["grpc_services"][0]
        self.assertEqual(grpc["initial_metadata"], [{"key": "authorization", "value": "Bearer x"}])
        self.assertEqual(os.path.getsize(os.path.join(out_dir, "miroir_filter.wasm")), os.path.getsize(WASM))
        envoy = gw["containers"][0]
        self.assertEqual(envoy["args"][:2], ["-c", "/etc/miroir/envoy.json"])
        valid = run([ENVOY, "--mode", "validate", "-l", "warn", "-c", bootstrap_path])
        self.assertEqual(valid.returncode, 0, valid.stdout + valid.stderr)


class Docs(unittest.TestCase):
    def test_the_istio_wasmplugin_example_is_a_valid_filter_configuration(self):
        with open(os.path.join(ROOT, "docs", "istio.md")) as f:
            blocks = re.findall(r"^```yaml\n(.*?)^```", f.read(), re.M | re.S)
        plugins = [d for b in blocks for d in yaml.safe_load_all(b) if d and d.get("kind") == "WasmPlugin"]
        self.assertEqual(len(plugins), 1)
        spec = plugins[0]["spec"]
        self.assertTrue(spec["url"].startswith("oci://"))
        self.assertEqual(spec["failStrategy"], "FAIL_CLOSE")
        config = spec["pluginConfig"]
        self.assertLessEqual(set(config), {"topology", "nodeTimeoutMs", "nodeApiKey", "controlPlane"})
        # The topology, through the same parser and validation the filter uses.
        tmp = tempfile.mkdtemp(prefix="miroir-istio-")
        try:
            path = os.path.join(tmp, "topology.json")
            with open(path, "w") as f:
                json.dump(config["topology"], f)
            out = run([os.path.join(BIN, "miroir-envoy-config"), "render", "--topology", path,
                       "--wasm", WASM, "--out", tmp, "--listen", "127.0.0.1:7700", "--admin", "127.0.0.1:9901"])
            self.assertEqual(out.returncode, 0, out.stderr)
            broken = dict(config["topology"], replicationFactor=9)
            with open(path, "w") as f:
                json.dump(broken, f)
            out = run([os.path.join(BIN, "miroir-envoy-config"), "render", "--topology", path,
                       "--wasm", WASM, "--out", tmp, "--listen", "127.0.0.1:7700", "--admin", "127.0.0.1:9901"])
            self.assertNotEqual(out.returncode, 0, "a replication factor above the group's size was accepted")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class Images(unittest.TestCase):
    def test_the_dockerfiles_pass_hadolint(self):
        files = [os.path.join(ROOT, "deploy", "docker", f) for f in ("miroir.Dockerfile", "filter.Dockerfile")]
        out = run([HADOLINT, "--failure-threshold", "info", *files])
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_the_dockerfiles_build_what_the_chart_runs(self):
        with open(os.path.join(ROOT, "deploy", "docker", "miroir.Dockerfile")) as f:
            dockerfile = f.read()
        for needed in ("miroir-control-plane", "miroir-envoy-config", "/opt/miroir/miroir_filter.wasm"):
            self.assertIn(needed, dockerfile)
        user = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.M)
        self.assertIsNotNone(user, "a numeric non-root USER")
        cp = by_kind(objects(helm_template()), "Deployment")["miroir-control-plane"]
        self.assertEqual(int(user.group(1)), cp["spec"]["template"]["spec"]["securityContext"]["runAsUser"])
        with open(os.path.join(ROOT, "deploy", "docker", "filter.Dockerfile")) as f:
            filter_df = f.read()
        final = filter_df.rsplit("FROM ", 1)[1]
        self.assertTrue(final.startswith("scratch"))
        self.assertEqual(re.findall(r"^(COPY|ADD|RUN)\b.*$", final, re.M), ["COPY"])
        self.assertIn("/plugin.wasm", final)

    def test_the_filter_image_layout_holds_plugin_wasm(self):
        with open(WASM, "rb") as f:
            wasm = f.read()
        tmp = tempfile.mkdtemp(prefix="miroir-oci-")
        try:
            out = os.path.join(tmp, "layout")
            self.assertEqual(wasm_oci.main(["--wasm", WASM, "--out", out, "--tag", "t1"]), 0)
            self.assertEqual(wasm_oci.read_plugin(out, "t1"), wasm)
            # Reproducible: the same .wasm, the same manifest digest.
            files, manifest = wasm_oci.build(wasm, "t1")
            with open(os.path.join(out, "index.json"), "rb") as f:
                self.assertEqual(json.load(f)["manifests"][0]["digest"], manifest)
            self.assertEqual(manifest, wasm_oci.build(wasm, "t1")[1])
            # An independent reader: skopeo (containers/image, what Podman and CRI-O pull with)
            # copies it, checking every digest.
            inspect = run([SKOPEO, "inspect", f"oci:{out}:t1"])
            self.assertEqual(inspect.returncode, 0, inspect.stderr)
            info = json.loads(inspect.stdout)
            self.assertEqual(len(info["Layers"]), 1)
            self.assertEqual(info["Digest"], manifest)
            copied = run([SKOPEO, "copy", "--quiet", f"oci:{out}:t1", f"dir:{tmp}/copy"])
            self.assertEqual(copied.returncode, 0, copied.stderr)
            # A corrupted layer is refused, by our reader and by skopeo.
            layer = json.loads(files["blobs/sha256/" + manifest.split(":")[1]])["layers"][0]
            blob = os.path.join(out, "blobs", "sha256", layer["digest"].split(":")[1])
            with open(blob, "r+b") as f:
                f.seek(100)
                byte = f.read(1)
                f.seek(100)
                f.write(bytes([byte[0] ^ 0xFF]))
            with self.assertRaises(ValueError):
                wasm_oci.read_plugin(out, "t1")
            bad = run([SKOPEO, "copy", "--quiet", f"oci:{out}:t1", f"dir:{tmp}/copy2"])
            self.assertNotEqual(bad.returncode, 0, "skopeo copied a corrupted layer")
            # Not a module: refused.
            with self.assertRaises(ValueError):
                wasm_oci.build(b"not wasm", "t1")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--write-plain":
        with open(PLAIN, "w") as f:
            f.write(plain_manifests())
        print(f"wrote {os.path.relpath(PLAIN, ROOT)}")
        sys.exit(0)
    unittest.main(verbosity=2)
