#!/usr/bin/env python3
"""registryd on SQLite, on PostgreSQL, and as 1 and 3 instances behind nginx, beside CNCF
distribution, in one run (docs/PERFORMANCE.md, "Several instances").

    scripts/bench.sh --scale-out [--duration SECONDS]

Every configuration gets the same workloads as the main benchmark's small-request rows,
with basic auth (the realistic setting for a shared registry): manifest GET by tag and
blob HEAD (64 connections), small pushes and cross-repository mounts (16 clients).
Server CPU per operation is the registryd processes' own (all instances summed); the
PostgreSQL server's CPU is reported beside it, since on one machine it competes for the
same two cores.

Three instances on one machine share their blob bytes through one directory (each data
directory's `storage` is a symlink to it), standing in for the shared bucket of a real
deployment: the numbers show registryd and PostgreSQL, not an S3 server.
"""
import os, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchmark as bench  # noqa: E402

ROOT = bench.ROOT
POSTGRES_SCRIPT = os.path.join(ROOT, "scripts", "postgres.sh")


class Group:
    """Several processes measured as one server: CPU summed, peak memory the largest."""

    def __init__(self, name, servers, port, auth=True):
        self.name, self.servers, self.port, self.auth = name, servers, port, auth
        self.base = f"http://127.0.0.1:{port}"
        self.make_public = servers[0].make_public

    def cpu_seconds(self):
        return sum(server.cpu_seconds() for server in self.servers)

    def peak_rss_mib(self):
        return max(server.peak_rss_mib() for server in self.servers)

    def pull_headers(self):
        return {"Authorization": bench.basic_header()}

    def stop(self):
        for server in self.servers:
            server.stop()


class PostgresServer:
    """The throw-away PostgreSQL of scripts/postgres.sh, with its processes' CPU time."""

    def __init__(self, directory):
        self.directory = directory
        subprocess.run(["bash", POSTGRES_SCRIPT, "start", directory], check=True, stdout=subprocess.DEVNULL)
        values = dict(line.split("=", 1) for line in open(os.path.join(directory, "postgres.env")).read().split())
        self.url, self.password = values["POSTGRES_URL"], values["PGPASSWORD"]
        self.postmaster = int(open(os.path.join(directory, "data", "postmaster.pid")).readline())
        self.databases = 0

    def new_database(self):
        self.databases += 1
        name = f"bench{self.databases}"
        env = dict(os.environ, PGPASSWORD=self.password)
        subprocess.run(["psql", self.url, "-q", "-c", f"CREATE DATABASE {name}"], check=True, env=env)
        return self.url.rsplit("/", 1)[0] + "/" + name + "?sslmode=disable"

    def cpu_seconds(self):
        """The postmaster and every backend (its children), including exited ones."""
        total = 0.0
        for pid in [self.postmaster] + children(self.postmaster):
            try:
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # utime, stime, and the reaped children's cutime, cstime.
            total += sum(int(fields[index]) for index in (11, 12, 13, 14)) / bench.CLOCK_TICKS
        return total

    def stop(self):
        subprocess.run(["bash", POSTGRES_SCRIPT, "stop", self.directory], stdout=subprocess.DEVNULL)


def children(pid):
    try:
        return [int(child) for child in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []


def start_registryd(workdir, name, index, metadata=None, shared_storage=None):
    data = os.path.join(workdir, f"{name}-{index}")
    os.makedirs(data)
    if shared_storage:
        os.symlink(shared_storage, os.path.join(data, "storage"))
    port = bench.free_port()
    config = os.path.join(workdir, f"{name}-{index}.conf")
    with open(config, "w") as f:
        f.write(f"listen = 127.0.0.1:{port}\ndata-dir = {data}\ninstance-id = {name}-{index}\n")
        if metadata:
            f.write(f"metadata = {metadata[0]}\nmetadata-password = {metadata[1]}\n")
    log = open(os.path.join(workdir, f"{name}-{index}.log"), "w")
    process = subprocess.Popen([bench.REGISTRYD, "--config", config], stderr=log, stdout=log)
    bench.wait_for_port(port)
    socket_path = os.path.join(data, "control.sock")
    if index == 0:
        bench.run([bench.REGISTRYCTL, "--socket", socket_path, "user", "add", bench.USER, "--staff", "--password-stdin"],
                  input=bench.PASSWORD + "\n")
    server = bench.Server(f"{name}-{index}", process, port, True)
    server.make_public = lambda repo: bench.run([bench.REGISTRYCTL, "--socket", socket_path, "repo", "visibility", repo, "public"])
    return server


def start_balancer(workdir, ports):
    servers = "\n".join(f"    server 127.0.0.1:{p};" for p in ports)
    return bench.run_nginx(workdir, "balancer", f"""  upstream registry {{
{servers}
    keepalive 128;
  }}
  server {{
    listen 127.0.0.1:{{port}};
    client_max_body_size 0;
    location / {{
      proxy_pass http://registry;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_request_buffering off;
      proxy_buffering off;
    }}
  }}""", workers=1)


def workloads(server, duration, postgres):
    """The small-request rows for one configuration. - Returns: {metric: (value, cpu µs/op, pg cpu µs/op)}."""
    fixtures = bench.prepare(server)
    rows = {}

    def measure(work):
        pg_before = postgres.cpu_seconds() if postgres else 0.0
        result, used = bench.measured(server, work)
        pg_used = (postgres.cpu_seconds() - pg_before) if postgres else 0.0
        return result, used, pg_used

    headers = dict(server.pull_headers(), Accept=bench.OCI_MANIFEST)
    url = server.base + "/v2/bench/small/manifests/v1"
    bench.wrk(url, headers, 1)  # warm-up
    load, used, pg = measure(lambda: bench.wrk(url, headers, duration))
    rows["manifest GET by tag req/s"] = (load.rate, used / load.total * 1e6, pg / load.total * 1e6)
    rows["manifest GET by tag p99 ms"] = (load.p99, None, None)

    layer = fixtures["layer"][0]
    url = f"{server.base}/v2/bench/small/blobs/{layer}"
    bench.ab_head(url, server.pull_headers(), 1)
    load, used, pg = measure(lambda: bench.ab_head(url, server.pull_headers(), duration))
    rows["blob HEAD req/s"] = (load.rate, used / load.total * 1e6, pg / load.total * 1e6)

    import hashlib, json
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    config_tuple = ("sha256:" + hashlib.sha256(config).hexdigest(), len(config), config)
    count, used, pg = measure(lambda: bench.concurrent(bench.small_push_worker, server.port, duration, config_tuple))
    rows["small pushes ops/s"] = (count / duration, used / max(count, 1) * 1e6, pg / max(count, 1) * 1e6)
    count, used, pg = measure(lambda: bench.concurrent(bench.mount_worker, server.port, duration, layer))
    rows["cross-repository mounts/s"] = (count / duration, used / max(count, 1) * 1e6, pg / max(count, 1) * 1e6)
    return rows


def main():
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=8)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="registryd-scale-")
    os.chmod(workdir, 0o755)
    postgres = PostgresServer(os.path.join(workdir, "postgres"))
    results = {}
    try:
        configurations = [
            ("distribution", None),
            ("registryd SQLite", "sqlite"),
            ("registryd PostgreSQL", "postgres"),
            ("nginx + 1 registryd (PostgreSQL)", 1),
            ("nginx + 3 registryd (PostgreSQL)", 3),
        ]
        for label, kind in configurations:
            directory = os.path.join(workdir, f"config-{len(results)}")
            os.makedirs(directory)
            balancer = None
            pg = None
            if kind is None:
                server = bench.start_distribution(directory, True)
            elif kind == "sqlite":
                server = Group(label, [start_registryd(directory, "sqlite", 0)], 0)
                server.port, server.base = server.servers[0].port, server.servers[0].base
            elif kind == "postgres":
                pg = postgres
                metadata = (postgres.new_database(), postgres.password)
                one = start_registryd(directory, "pg", 0, metadata)
                server = Group(label, [one], one.port)
            else:
                pg = postgres
                metadata = (postgres.new_database(), postgres.password)
                shared = os.path.join(directory, "shared-storage")
                os.makedirs(shared)
                instances = [start_registryd(directory, "node", index, metadata, shared) for index in range(kind)]
                balancer, port = start_balancer(directory, [instance.port for instance in instances])
                server = Group(label, instances, port)
                server.make_public = instances[0].make_public
            print(f"\n{label}", flush=True)
            try:
                rows = workloads(server, args.duration, pg)
            finally:
                if balancer:
                    balancer.send_signal(signal.SIGQUIT)
                    balancer.wait(timeout=10)
                server.stop()
            results[label] = rows
            for metric, (value, cpu, pg_cpu) in rows.items():
                extra = f"   registryd cpu/op {cpu:8.1f} µs" if cpu is not None else ""
                extra += f"   postgres cpu/op {pg_cpu:8.1f} µs" if pg_cpu else ""
                print(f"  {metric:30} {value:12.1f}{extra}", flush=True)
    finally:
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    # One table, configurations side by side, ratios to distribution.
    metrics = list(results["distribution"].keys())
    print("\n| metric | " + " | ".join(results.keys()) + " |")
    print("|---|" + "---|" * len(results))
    for metric in metrics:
        cells = []
        base = results["distribution"][metric][0]
        for label in results:
            value, cpu, pg_cpu = results[label][metric]
            ratio = (value / base if "p99" not in metric else base / value) if base else 0
            cell = f"{value:,.0f}" if value >= 100 else f"{value:.2f}"
            if label != "distribution":
                cell += f" (×{ratio:.2f})"
            if cpu is not None:
                cell += f", {cpu:.0f} µs" + (f" + pg {pg_cpu:.0f} µs" if pg_cpu else "")
            cells.append(cell)
        print(f"| {metric} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
