#!/usr/bin/env python3
"""Writes scripts/link-order/registryd.order: the functions a running registry executes.

    scripts/link-order/generate.py

The linker places the functions named in that file first, next to each other, hottest
first (lld's --symbol-ordering-file; Package.swift passes it for release builds, and
scripts/build-release.sh gives every function its own section so it can be moved). A
function's page is resident once anything on it runs, and the kernel maps 64 KiB around
each fault, so code that runs scattered among code that never does costs several times
its size in resident memory (docs/PERFORMANCE.md, "Memory").

How: registryd (release, function sections, debug info stripped: valgrind cannot read
the toolchain's DWARF) runs under valgrind's callgrind while this script drives it
through the benchmark's paths — start, pushes, pulls, manifest and tag reads with and
without basic auth, blob HEADs, mounts, chunked and monolithic uploads, a clean stop.
Every function callgrind saw execute is written, sorted by name: functions of one type
and module then sit together, which measured ~1 MiB less resident text than ordering by
instruction count (the toolchain's libraries come in sections that cannot be split, and
where they land among the small sections decides how many 64 KiB windows the hot code
touches). Functions missing from the file still work;
they are only placed after the others. Regenerate after large changes (a stale file
only costs memory; lld skips names it no longer finds).
"""
import hashlib, os, re, shutil, signal, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts", "bench"))
import benchmark  # noqa: E402  (the benchmark's clients and workloads)

ORDER_FILE = os.path.join(ROOT, "scripts", "link-order", "registryd.order")


class Driven:
    """What benchmark.py's workloads need to know of a server."""

    def __init__(self, port, data):
        self.port, self.base, self.auth = port, f"http://127.0.0.1:{port}", False
        self.control = [benchmark.REGISTRYCTL, "--socket", os.path.join(data, "control.sock")]

    def make_public(self, repo):
        benchmark.run(self.control + ["repo", "visibility", repo, "public"])

    def pull_headers(self):
        return {}


def drive(server, workdir):
    benchmark.run(server.control + ["user", "add", benchmark.USER, "--staff", "--password-stdin"], input=benchmark.PASSWORD + "\n")
    fixtures = benchmark.prepare(server)
    for headers in ({}, {"Authorization": benchmark.basic_header()}):
        benchmark.wrk(server.base + "/v2/bench/small/manifests/v1", dict(headers, Accept=benchmark.OCI_MANIFEST), 2, connections=8)
        benchmark.wrk(server.base + "/v2/bench/small/tags/list", headers, 2, connections=8)
        benchmark.ab_head(f"{server.base}/v2/bench/small/blobs/{fixtures['layer'][0]}", headers, 2, connections=8)
    config = b'{"architecture":"amd64","os":"linux"}'
    config_tuple = ("sha256:" + hashlib.sha256(config).hexdigest(), len(config), config)
    benchmark.concurrent(benchmark.small_push_worker, server.port, 3, config_tuple, workers=4)
    benchmark.concurrent(benchmark.mount_worker, server.port, 3, fixtures["layer"][0], workers=4)
    big = os.path.join(workdir, "big.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(32 << 20))
    digest = "sha256:" + benchmark.file_sha256(big)
    benchmark.push_monolithic(server, big, digest)
    benchmark.push_chunked(server, benchmark.split(big, 8 << 20, workdir), digest)
    benchmark.pull(server, digest)


def executed_functions(callgrind_output):
    """The names of the functions callgrind recorded as executed (its `fn=` entries; a
    name is spelled out once and referred to by number after that)."""
    names, executed = {}, set()
    with open(callgrind_output, errors="replace") as f:
        for line in f:
            match = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if not match:
                continue
            if match.group(3):
                names[match.group(2)] = match.group(3)
            if match.group(1) == "fn":
                executed.add(names[match.group(2)])
    return executed


def main():
    subprocess.run([os.path.join(ROOT, "scripts", "install-deps.sh"), "--link-order"], check=True)
    subprocess.run([os.path.join(ROOT, "scripts", "build-release.sh")], check=True)
    workdir = tempfile.mkdtemp(prefix="registryd-link-order-")
    try:
        binary = os.path.join(workdir, "registryd")
        subprocess.run(["strip", "--strip-debug", "-o", binary, benchmark.REGISTRYD], check=True)
        data, output = os.path.join(workdir, "data"), os.path.join(workdir, "callgrind.out")
        os.makedirs(data)
        port = benchmark.free_port()
        process = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={output}",
             binary, "--listen", f"127.0.0.1:{port}", "--data-dir", data],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "registryd.log"), "w"))
        benchmark.wait_for_port(port, timeout=120)
        deadline = time.time() + 60
        while not os.path.exists(os.path.join(data, "control.sock")) and time.time() < deadline:
            time.sleep(0.1)
        drive(Driven(port, data), workdir)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=300)
        executed = executed_functions(output)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    defined = set()
    for line in subprocess.run(["nm", "--defined-only", benchmark.REGISTRYD], capture_output=True, text=True, check=True).stdout.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] in "tTwW":
            defined.add(fields[2])
    ordered = sorted(executed & defined)
    with open(ORDER_FILE, "w") as f:
        f.write("\n".join(ordered) + "\n")
    print(f"{len(ordered)} functions written to {os.path.relpath(ORDER_FILE, ROOT)}")


if __name__ == "__main__":
    main()
