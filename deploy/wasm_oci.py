#!/usr/bin/env python3
"""Writes the filter as an OCI image layout, without Docker: the image Istio's WasmPlugin pulls
(`url: oci://REGISTRY/miroir-filter:TAG`), one layer holding `plugin.wasm`.

    python3 deploy/wasm_oci.py --wasm target/wasm32-wasip1/release/miroir_filter.wasm \
        --out target/deploy/filter-oci --tag 0.1.0
    skopeo copy oci:target/deploy/filter-oci:0.1.0 docker://REGISTRY/miroir-filter:0.1.0

The image is the one `docker build -f deploy/docker/filter.Dockerfile` makes (Istio's "compat"
format: a Docker/OCI image whose single layer is a tar with `plugin.wasm`), with OCI media
types. The same .wasm always gives the same digests (the tar's and gzip's times are 0), so the
manifest's digest names the code. Only the standard library is used.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

LAYOUT_VERSION = "1.0.0"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
PLUGIN_FILE = "plugin.wasm"
WASM_MAGIC = b"\0asm"
# Docker's name for the platform (`docker buildx build --platform wasi/wasm`).
PLATFORM = {"architecture": "wasm", "os": "wasi"}


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def layer_tar(wasm: bytes) -> bytes:
    """An uncompressed tar holding only plugin.wasm (root-owned, mode 0644, time 0)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(PLUGIN_FILE)
        info.size = len(wasm)
        info.mode = 0o644
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(wasm))
    return buf.getvalue()


def gzipped(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9, filename="") as gz:
        gz.write(data)
    return buf.getvalue()


def build(wasm: bytes, tag: str, source: str = ""):
    """The layout's files: {relative path: bytes}, and the manifest's digest."""
    if not wasm.startswith(WASM_MAGIC):
        raise ValueError("not a WebAssembly module (no \\0asm magic)")
    tar = layer_tar(wasm)
    layer = gzipped(tar)
    labels = {
        "org.opencontainers.image.title": "miroir-filter",
        "org.opencontainers.image.description": "Miroir's Envoy filter (proxy-wasm), as plugin.wasm",
    }
    if source:
        labels["org.opencontainers.image.source"] = source
    config = canonical(
        {
            **PLATFORM,
            "config": {"Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": [digest(tar)]},
            "history": [{"created_by": f"COPY {PLUGIN_FILE} /{PLUGIN_FILE}"}],
        }
    )
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": digest(config), "size": len(config)},
            "layers": [
                {
                    "mediaType": LAYER_TYPE,
                    "digest": digest(layer),
                    "size": len(layer),
                    "annotations": {"org.opencontainers.image.title": PLUGIN_FILE},
                }
            ],
            "annotations": {"org.opencontainers.image.title": "miroir-filter"},
        }
    )
    index = canonical(
        {
            "schemaVersion": 2,
            "mediaType": INDEX_TYPE,
            "manifests": [
                {
                    "mediaType": MANIFEST_TYPE,
                    "digest": digest(manifest),
                    "size": len(manifest),
                    "platform": dict(PLATFORM),
                    "annotations": {"org.opencontainers.image.ref.name": tag},
                }
            ],
        }
    )
    files = {"oci-layout": canonical({"imageLayoutVersion": LAYOUT_VERSION}), "index.json": index}
    for blob in (layer, config, manifest):
        files["blobs/sha256/" + digest(blob).split(":", 1)[1]] = blob
    return files, digest(manifest)


def write(out: str, files) -> None:
    """Writes the layout into `out`, replacing a previous one (its blobs go: none is shared)."""
    blobs = os.path.join(out, "blobs", "sha256")
    if os.path.isdir(blobs):
        for name in os.listdir(blobs):
            os.remove(os.path.join(blobs, name))
    for rel, data in files.items():
        path = os.path.join(out, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def read_plugin(out: str, tag: str) -> bytes:
    """Reads plugin.wasm back from a layout, checking every digest and size on the way, the way a
    registry client does; raises ValueError on anything wrong."""

    def blob(descriptor):
        algo, hexdigest = descriptor["digest"].split(":", 1)
        if algo != "sha256":
            raise ValueError(f"unexpected digest algorithm {algo}")
        with open(os.path.join(out, "blobs", algo, hexdigest), "rb") as f:
            data = f.read()
        if digest(data) != descriptor["digest"]:
            raise ValueError(f"blob {descriptor['digest']} does not match its digest")
        if len(data) != descriptor["size"]:
            raise ValueError(f"blob {descriptor['digest']} is {len(data)} bytes, not {descriptor['size']}")
        return data

    with open(os.path.join(out, "oci-layout"), "rb") as f:
        if json.load(f).get("imageLayoutVersion") != LAYOUT_VERSION:
            raise ValueError("oci-layout: unexpected imageLayoutVersion")
    with open(os.path.join(out, "index.json"), "rb") as f:
        index = json.load(f)
    found = [
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
    ]
    if len(found) != 1 or found[0]["mediaType"] != MANIFEST_TYPE:
        raise ValueError(f"index.json: no single image manifest tagged {tag}")
    manifest = json.loads(blob(found[0]))
    if manifest.get("schemaVersion") != 2 or manifest.get("mediaType") != MANIFEST_TYPE:
        raise ValueError("manifest: not an OCI image manifest")
    config = json.loads(blob(manifest["config"]))
    layers = manifest["layers"]
    if len(layers) != 1 or layers[0]["mediaType"] != LAYER_TYPE:
        raise ValueError("manifest: Istio wants exactly one tar+gzip layer")
    tar = gzip.decompress(blob(layers[0]))
    if config["rootfs"]["diff_ids"] != [digest(tar)]:
        raise ValueError("config: diff_ids do not match the layer's uncompressed digest")
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        members = t.getmembers()
        if [m.name for m in members] != [PLUGIN_FILE] or not members[0].isfile():
            raise ValueError(f"layer: holds {[m.name for m in members]}, not only {PLUGIN_FILE}")
        return t.extractfile(members[0]).read()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wasm", required=True, help="the filter's .wasm")
    parser.add_argument("--out", required=True, help="the OCI image layout's directory")
    parser.add_argument("--tag", default="latest", help="the image's tag in index.json")
    parser.add_argument("--source", default="", help="org.opencontainers.image.source label")
    args = parser.parse_args(argv)
    with open(args.wasm, "rb") as f:
        wasm = f.read()
    try:
        files, manifest = build(wasm, args.tag, args.source)
    except ValueError as e:
        print(f"{args.wasm}: {e}", file=sys.stderr)
        return 1
    write(args.out, files)
    if read_plugin(args.out, args.tag) != wasm:
        print("the layout does not give the .wasm back", file=sys.stderr)
        return 1
    print(f"{args.out}:{args.tag} {manifest} (plugin.wasm sha256:{hashlib.sha256(wasm).hexdigest()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
