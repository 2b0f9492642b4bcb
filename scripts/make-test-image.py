#!/usr/bin/env python3
"""Writes an OCI image layout with real gzip'd tar layers, for tests and benchmarks.

    make-test-image.py OUT_DIR [--tag latest] [--layers 3] [--layer-size 65536]
                               [--platforms linux/amd64,linux/arm64] [--seed 1]

With one platform the tag points at an image manifest; with several, at an OCI
index whose children are one image per platform. Layer contents are random (from
--seed), so every run with the same arguments writes the same digests.
"""
import argparse, gzip, hashlib, io, json, os, random, tarfile


def write_blob(root, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(root, "blobs", "sha256", digest)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def make_layer(rng, name, size):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        payload = rng.randbytes(size)
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(payload))
    tar_bytes = raw.getvalue()
    compressed = gzip.compress(tar_bytes, mtime=0, compresslevel=1)
    return tar_bytes, compressed


def make_image(root, rng, platform, layers, layer_size):
    os_name, arch = platform.split("/")
    layer_descriptors, diff_ids = [], []
    for i in range(layers):
        tar_bytes, compressed = make_layer(rng, f"data/{arch}-layer{i}.bin", layer_size)
        diff_ids.append("sha256:" + hashlib.sha256(tar_bytes).hexdigest())
        desc = write_blob(root, compressed)
        desc["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
        layer_descriptors.append(desc)
    config = {
        "architecture": arch, "os": os_name,
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "make-test-image.py"} for _ in range(layers)],
    }
    config_desc = write_blob(root, json.dumps(config, sort_keys=True).encode())
    config_desc["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": layer_descriptors,
    }
    desc = write_blob(root, json.dumps(manifest, sort_keys=True).encode())
    desc["mediaType"] = manifest["mediaType"]
    desc["platform"] = {"os": os_name, "architecture": arch}
    return desc


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--tag", default="latest")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--layer-size", type=int, default=65536)
    parser.add_argument("--platforms", default="linux/amd64")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    platforms = args.platforms.split(",")
    images = [make_image(args.out, rng, p, args.layers, args.layer_size) for p in platforms]
    if len(images) == 1:
        top = images[0]
        del top["platform"]
    else:
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": images}
        top = write_blob(args.out, json.dumps(index, sort_keys=True).encode())
        top["mediaType"] = index["mediaType"]
    top["annotations"] = {"org.opencontainers.image.ref.name": args.tag}
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [top]}, f)


if __name__ == "__main__":
    main()
