#!/usr/bin/env python3
"""registryd on S3 against the AWS CLI on the same radosgw, in one run (docs/PERFORMANCE.md,
"Big blobs").

    scripts/bench.sh --s3 [--size MIB]

A throw-away radosgw (scripts/radosgw.sh: one monitor, one OSD keeping objects in memory)
on loopback. The same file is uploaded with `aws s3 cp` (its defaults: 8 MiB parts, 10
in flight) and downloaded back to /dev/null; then pushed to registryd on that radosgw
(`--storage s3`, its default 16 MiB parts) monolithically and in 64 MiB chunks, and pulled
back through registryd (no redirect, so the bytes pass through it); registryd's server CPU
is read as in the main benchmark, and the bytes radosgw wrote into its OSD during each push
(the OSD's `op_w_in_bytes`) tell how often the store copied the blob inside itself. Three
rounds by default (the test cluster gives deleted objects' space back within seconds,
scripts/radosgw.sh; its OSD keeps objects in 8 GiB of memory).
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchmark as bench  # noqa: E402

AWS = "/usr/bin/aws"  # Debian's awscli, installed by scripts/install-deps.sh --bench


def read_env(path):
    values = {}
    for line in open(path):
        key, _, value = line.strip().partition("=")
        if key:
            values[key] = value
    return values


def aws(environment, endpoint, arguments):
    started = time.time()
    subprocess.run([AWS, "--endpoint-url", endpoint, "--no-cli-pager"] + arguments, check=True, env=environment,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.time() - started


def store_writes(gateway):
    """Bytes written into the test cluster's only OSD so far (its admin socket)."""
    output = subprocess.run(["ceph", "--admin-daemon", os.path.join(gateway, "run", "osd.0.asok"), "perf", "dump"],
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output)["osd"]["op_w_in_bytes"]


def start_registryd_on_s3(workdir, s3):
    data = os.path.join(workdir, "registryd-s3")
    os.makedirs(data)
    port = bench.free_port()
    log = open(os.path.join(workdir, "registryd-s3.log"), "w")
    environment = dict(os.environ, AWS_ACCESS_KEY_ID=s3["AWS_ACCESS_KEY_ID"], AWS_SECRET_ACCESS_KEY=s3["AWS_SECRET_ACCESS_KEY"])
    process = subprocess.Popen([bench.REGISTRYD, "--listen", f"127.0.0.1:{port}", "--data-dir", data, "--storage", "s3",
                                "--s3-endpoint", s3["S3_ENDPOINT"], "--s3-bucket", "bench-registryd", "--s3-region", s3["S3_REGION"]],
                               stderr=log, stdout=log, env=environment)
    bench.wait_for_port(port)
    bench.run([bench.REGISTRYCTL, "--socket", os.path.join(data, "control.sock"), "user", "add", bench.USER, "--staff", "--password-stdin"],
              input=bench.PASSWORD + "\n")
    return bench.Server("registryd", process, port, True)


def measure(size_mib=1024, rounds=3):
    """- Returns: {"size_mib", "aws": {"push", "pull"}, "registryd": {"push", "push_chunked", "pull"}} in MiB/s
    (medians), "registryd_cpu": {...} in CPU seconds per GiB, and "store_writes": {"aws push", "push",
    "push_chunked"}: bytes the store wrote per byte pushed."""
    workdir = tempfile.mkdtemp(prefix="registryd-s3-bench-")
    gateway = os.path.join(workdir, "radosgw")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run([os.path.join(root, "scripts", "radosgw.sh"), "start", gateway], check=True, stdout=subprocess.DEVNULL)
    server = None
    try:
        s3 = read_env(os.path.join(gateway, "s3.env"))
        environment = dict(os.environ, AWS_ACCESS_KEY_ID=s3["AWS_ACCESS_KEY_ID"], AWS_SECRET_ACCESS_KEY=s3["AWS_SECRET_ACCESS_KEY"],
                           AWS_DEFAULT_REGION=s3["S3_REGION"], AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        endpoint = s3["S3_ENDPOINT"]
        big = os.path.join(workdir, "big.bin")
        with open(big, "wb") as f:
            for _ in range(size_mib):
                f.write(os.urandom(1 << 20))
        digest = "sha256:" + bench.file_sha256(big)
        chunks = bench.split(big, 64 << 20, workdir)
        aws(environment, endpoint, ["s3", "mb", "s3://bench-aws"])
        server = start_registryd_on_s3(workdir, s3)
        runs = {name: [] for name in ("aws push", "aws pull", "push", "push_chunked", "pull")}
        cpu = {name: [] for name in ("push", "push_chunked", "pull")}
        written = {name: [] for name in ("aws push", "push", "push_chunked")}
        size_bytes = size_mib << 20
        for _ in range(rounds):
            before = store_writes(gateway)
            runs["aws push"].append(size_mib / aws(environment, endpoint, ["s3", "cp", big, "s3://bench-aws/big.bin"]))
            written["aws push"].append((store_writes(gateway) - before) / size_bytes)
            runs["aws pull"].append(size_mib / aws(environment, endpoint, ["s3", "cp", "s3://bench-aws/big.bin", "/dev/null"]))
            for name, work in (("push", lambda: bench.push_monolithic(server, big, digest)),
                               ("push_chunked", lambda: bench.push_chunked(server, chunks, digest)),
                               ("pull", lambda: bench.pull(server, digest))):
                before = store_writes(gateway)
                seconds, used = bench.measured(server, work)
                runs[name].append(size_mib / seconds)
                cpu[name].append(used / (size_mib / 1024))
                if name in written:
                    written[name].append((store_writes(gateway) - before) / size_bytes)
            print("  " + "  ".join(f"{name} {values[-1]:7.0f}" for name, values in runs.items()) + "  MiB/s", flush=True)
        median = {name: statistics.median(values) for name, values in runs.items()}
        return {"size_mib": size_mib,
                "aws": {"push": median["aws push"], "pull": median["aws pull"]},
                "registryd": {name: median[name] for name in ("push", "push_chunked", "pull")},
                "registryd_cpu": {name: statistics.median(values) for name, values in cpu.items()},
                "store_writes": {name: statistics.median(values) for name, values in written.items()}}
    except Exception:
        log = os.path.join(workdir, "registryd-s3.log")
        if os.path.exists(log):
            print("registryd's last log lines:\n" + "".join(line for line in open(log).readlines()[-5:]), file=sys.stderr)
        raise
    finally:
        if server:
            server.stop()
        subprocess.run([os.path.join(root, "scripts", "radosgw.sh"), "stop", gateway], stdout=subprocess.DEVNULL)
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1024, help="MiB")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = measure(args.size, args.rounds)
    import report
    print()
    print(report.s3_table(results))


if __name__ == "__main__":
    main()
