#!/usr/bin/env python3
"""Soak test: registryd's release build under a steady mixed load for MINUTES.

Pushes (monolithic and chunked uploads, layers shared between images), pulls that verify
every digest, cross-repository mounts, deletes that keep about LIVE images alive,
abandoned uploads, collections, upload purges and control calls, all at once. Every
minute it samples the daemon's resident memory, open descriptors, threads, the SQLite
WAL and the upload directory; at the end it checks every image it was told was stored
and not deleted, runs `registryctl storage verify`, and judges whether anything grew
without bound (last third of the run against the middle third).

Tag moves and audit records are kept for five minutes here instead of the defaults (90
and 365 days), so that a half-hour run reaches the steady state a production registry
reaches after its retention: pruned rows make room for new ones and the database file
stops growing.

    scripts/soak.sh MINUTES [--out DIR]      # DIR/soak.json, DIR/soak.png

Only loopback; the daemon and its data directory are the script's own.
"""
import argparse
import base64
import hashlib
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RELEASE = os.path.join(ROOT, ".build", "release")
PASSWORD = "soak-password"
AUTH = "Basic " + base64.b64encode(f"soak:{PASSWORD}".encode()).decode()
LIVE = 150  # images kept alive; older ones are deleted


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Client:
    """One keep-alive connection per thread."""

    def __init__(self, port):
        self.port = port
        self.connection = None

    def request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        headers["Authorization"] = AUTH
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.connection.close()
                    self.connection = None
                return response.status, dict(response.getheaders()), data
            except (http.client.HTTPException, OSError):
                self.connection.close()
                self.connection = None
                if attempt == 1:
                    raise


class Soak:
    def __init__(self, port, data, minutes):
        self.port = port
        self.data = data
        self.deadline = time.time() + minutes * 60
        self.lock = threading.Lock()
        self.images = {}  # digest -> (repository, tag, manifest bytes, [blob digests])
        self.order = []
        self.counts = {name: 0 for name in ["pushes", "pulls", "mounts", "deletes", "collections", "abandoned", "errors"]}
        self.failures = []
        self.shared = [os.urandom(300_000) for _ in range(4)]

    def running(self):
        return time.time() < self.deadline and not self.failures

    def count(self, name):
        with self.lock:
            self.counts[name] += 1

    def fail(self, message):
        with self.lock:
            self.failures.append(message)

    def push_blob(self, client, repository, blob, chunked):
        d = digest(blob)
        if not chunked:
            status, _, body = client.request("POST", f"/v2/{repository}/blobs/uploads/?digest={d}", blob)
            return status == 201 or self.fail(f"monolithic push {status} {body[:200]}")
        status, headers, _ = client.request("POST", f"/v2/{repository}/blobs/uploads/", b"")
        if status != 202:
            return self.fail(f"start upload {status}")
        location = headers["Location"]
        half = len(blob) // 2
        status, headers, _ = client.request("PATCH", location, blob[:half], {"Content-Range": f"0-{half - 1}"})
        if status != 202:
            return self.fail(f"PATCH {status}")
        status, _, body = client.request("PUT", f"{location}?digest={d}", blob[half:], {"Content-Range": f"{half}-{len(blob) - 1}"})
        return status == 201 or self.fail(f"PUT {status} {body[:200]}")

    def pusher(self, number):
        client = Client(self.port)
        generator = random.Random(number)
        image = 0
        while self.running():
            repository = f"soak/pusher{number}"
            config = json.dumps({"pusher": number, "image": image, "nonce": generator.random()}).encode()
            own = os.urandom(generator.randint(20_000, 600_000))
            layers = [self.shared[generator.randrange(len(self.shared))], own]
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(b), "size": len(b)} for b in layers],
            }).encode()
            tag = f"i{image}"
            for blob in [config] + layers:
                if not self.push_blob(client, repository, blob, chunked=generator.random() < 0.5):
                    return
            status, _, body = client.request("PUT", f"/v2/{repository}/manifests/{tag}", manifest,
                                             {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
            if status == 400 and b"MANIFEST_BLOB_UNKNOWN" in body:
                continue  # a collection took a fresh layer: push again
            if status != 201:
                return self.fail(f"manifest PUT {status} {body[:200]}")
            with self.lock:
                self.images[digest(manifest)] = (repository, tag, manifest, [digest(b) for b in [config] + layers])
                self.order.append(digest(manifest))
            self.count("pushes")
            image += 1
            time.sleep(0.1)

    def puller(self):
        client = Client(self.port)
        while self.running():
            with self.lock:
                if not self.order:
                    candidate = None
                else:
                    candidate = self.images.get(random.choice(self.order[-LIVE:]))
            if candidate is None:
                time.sleep(0.2)
                continue
            repository, tag, manifest, blobs = candidate
            status, _, body = client.request("GET", f"/v2/{repository}/manifests/{tag}", headers={"Accept": "*/*"})
            if status == 404:
                continue  # deleted meanwhile
            if status != 200 or body != manifest:
                return self.fail(f"pull {repository}:{tag}: {status}")
            for blob in blobs:
                status, _, body = client.request("GET", f"/v2/{repository}/blobs/{blob}")
                if status == 404:
                    break
                if status != 200 or digest(body) != blob:
                    return self.fail(f"blob {blob}: {status}")
            self.count("pulls")
            time.sleep(0.05)

    def mounter(self):
        client = Client(self.port)
        while self.running():
            with self.lock:
                candidate = self.images.get(random.choice(self.order)) if self.order else None
            if candidate:
                repository, _, _, blobs = candidate
                status, _, _ = client.request("POST", f"/v2/soak/mounts/blobs/uploads/?mount={blobs[1]}&from={repository}", b"")
                if status not in (201, 202):
                    return self.fail(f"mount {status}")
                self.count("mounts")
            time.sleep(0.3)

    def deleter(self):
        client = Client(self.port)
        while self.running():
            with self.lock:
                victim = self.order.pop(0) if len(self.order) > LIVE else None
                image = self.images.pop(victim, None) if victim else None
            if image:
                status, _, _ = client.request("DELETE", f"/v2/{image[0]}/manifests/{victim}")
                if status != 202:
                    return self.fail(f"delete {status}")
                self.count("deletes")
            else:
                time.sleep(0.2)

    def abandoner(self):
        client = Client(self.port)
        while self.running():
            status, headers, _ = client.request("POST", "/v2/soak/abandoned/blobs/uploads/", b"")
            if status == 202:
                client.request("PATCH", headers["Location"], os.urandom(50_000), {"Content-Range": "0-49999"})
                self.count("abandoned")
            time.sleep(2)

    def controller(self):
        socket_path = os.path.join(self.data, "control.sock")
        while self.running():
            for arguments in (["gc", "run", "--grace", "10", "--wait"], ["status", "--json"], ["upload", "list"]):
                result = subprocess.run([os.path.join(RELEASE, "registryctl"), "--socket", socket_path] + arguments,
                                        capture_output=True, text=True)
                if result.returncode != 0:
                    return self.fail(f"registryctl {' '.join(arguments)}: {result.stderr}")
            self.count("collections")
            time.sleep(15)

    def verify_everything(self):
        client = Client(self.port)
        with self.lock:
            images = list(self.images.items())
        for manifest_digest, (repository, tag, manifest, blobs) in images:
            status, _, body = client.request("GET", f"/v2/{repository}/manifests/{tag}", headers={"Accept": "*/*"})
            if status != 200 or body != manifest:
                self.fail(f"final check {repository}:{tag}: {status}")
                continue
            for blob in blobs:
                status, _, body = client.request("GET", f"/v2/{repository}/blobs/{blob}")
                if status != 200 or digest(body) != blob:
                    self.fail(f"final check {blob}: {status}")
        result = subprocess.run([os.path.join(RELEASE, "registryctl"), "--socket", os.path.join(self.data, "control.sock"), "storage", "verify"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            self.fail("storage verify: " + result.stdout + result.stderr)
        return len(images)


def sample(pid, data, started):
    status = open(f"/proc/{pid}/status").read()
    field = lambda name: int(next(line.split()[1] for line in status.splitlines() if line.startswith(name + ":")))
    uploads = os.path.join(data, "storage", "uploads")
    upload_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(uploads) for f in files) if os.path.isdir(uploads) else 0
    wal = os.path.join(data, "registry.db-wal")
    return {
        "minute": round((time.time() - started) / 60, 2),
        "rss_mib": field("VmRSS") / 1024,
        "descriptors": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": field("Threads"),
        "wal_mib": (os.path.getsize(wal) if os.path.exists(wal) else 0) / 2**20,
        "uploads_mib": upload_bytes / 2**20,
        "database_mib": os.path.getsize(os.path.join(data, "registry.db")) / 2**20,
    }


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plot(samples, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    series = [("rss_mib", "resident memory (MiB)"), ("descriptors", "open descriptors"), ("threads", "threads"),
              ("wal_mib", "SQLite WAL (MiB)"), ("uploads_mib", "upload directory (MiB)"), ("database_mib", "database (MiB)")]
    figure, axes = plt.subplots(2, 3, figsize=(12, 6))
    minutes = [s["minute"] for s in samples]
    for axis, (key, title) in zip(axes.flat, series):
        axis.plot(minutes, [s[key] for s in samples], marker=".")
        axis.set_title(title)
        axis.set_xlabel("minute")
        axis.set_ylim(bottom=0)
    figure.suptitle("registryd soak: a sample every minute")
    figure.tight_layout()
    figure.savefig(path, dpi=80)


def verdict(samples):
    """Grows without bound: the last third's mean is clearly above the middle third's."""
    third = max(1, len(samples) // 3)
    middle, last = samples[third:2 * third], samples[-third:]
    findings = []
    for key, slack in [("rss_mib", 1.25), ("descriptors", 1.25), ("threads", 1.25), ("wal_mib", 1.5), ("uploads_mib", 1.5), ("database_mib", 1.5)]:
        before = sum(s[key] for s in middle) / len(middle)
        after = sum(s[key] for s in last) / len(last)
        if after > max(before * slack, before + 2):
            findings.append(f"{key} grew from {before:.1f} to {after:.1f}")
    return findings


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("minutes", type=float)
    parser.add_argument("--out", default=os.path.join(ROOT, ".build", "soak"))
    arguments = parser.parse_args()
    os.makedirs(arguments.out, exist_ok=True)
    data = tempfile.mkdtemp(prefix="registryd-soak-")
    port = free_port()
    log = open(os.path.join(arguments.out, "registryd.log"), "w")
    daemon = subprocess.Popen([os.path.join(RELEASE, "registryd"), "--listen", f"127.0.0.1:{port}", "--data-dir", data,
                               "--log-level", "warning", "--upload-ttl", "60",
                               "--tag-history-retention", "5m", "--audit-retention", "5m"], stderr=log)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        subprocess.run([os.path.join(RELEASE, "registryctl"), "--socket", os.path.join(data, "control.sock"), "user", "add", "soak",
                        "--staff", "--password-stdin"], input=PASSWORD + "\n", text=True, check=True, capture_output=True)
        soak = Soak(port, data, arguments.minutes)
        started = time.time()
        workers = [threading.Thread(target=soak.pusher, args=(n,)) for n in range(2)]
        workers += [threading.Thread(target=target) for target in (soak.puller, soak.mounter, soak.deleter, soak.abandoner, soak.controller)]
        for worker in workers:
            worker.start()
        samples = [sample(daemon.pid, data, started)]
        while soak.running():
            time.sleep(min(60, max(0.1, soak.deadline - time.time())))
            samples.append(sample(daemon.pid, data, started))
            print(json.dumps(samples[-1]), flush=True)
        for worker in workers:
            worker.join()
        kept = soak.verify_everything()
        grew = verdict(samples) if len(samples) >= 6 else []
        report = {"minutes": arguments.minutes, "counts": soak.counts, "images_checked": kept, "failures": soak.failures,
                  "grew": grew, "samples": samples}
        json.dump(report, open(os.path.join(arguments.out, "soak.json"), "w"), indent=1)
        plot(samples, os.path.join(arguments.out, "soak.png"))
        print(json.dumps({k: v for k, v in report.items() if k != "samples"}))
        ok = not soak.failures and not grew
        print("soak: " + ("nothing grew without bound, every acknowledged image verified" if ok else "PROBLEMS: " + "; ".join(soak.failures + grew)))
        return 0 if ok else 1
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
