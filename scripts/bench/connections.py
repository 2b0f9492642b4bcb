#!/usr/bin/env python3
"""Many connections at once: registryd with its access log on and off beside nginx with its
access log on, in one run (docs/PERFORMANCE.md, "Many connections").

    scripts/bench.sh --connections [--duration SECONDS] [--rounds N]

- Manifest GET by tag (wrk -t2) and blob HEAD (ab -k, since wrk waits for the body a HEAD
  answer announces) with basic auth at 64, 1,000 and 4,000 keep-alive connections:
  requests/s, p99 and max latency, timeouts (wrk) or failed requests (ab), and the
  server's CPU per request; each the median of five rounds that interleave the servers
  (single runs of these differ by ±10% on a 2-core machine).
- Idle connections: 10,000 keep-alive connections that each made one request, held open;
  registryd's resident memory before and after, per connection.
- An accept storm: 4,000 connections opened at once, each sending one request; how many
  were answered, and how long the last one took.
"""
import argparse, os, resource, selectors, shutil, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchmark as bench  # noqa: E402

def load(url, headers, duration, connections, head=False):
    """wrk for GETs; ab for HEADs, its failed requests counted. - Returns: `bench.Load`."""
    if head:
        return bench.ab_head(url, headers, duration, connections, count_failures=True)
    return bench.wrk(url, headers, duration, connections)


LOG_ON, LOG_OFF, NGINX = "registryd (access log on)", "registryd (access log off)", "nginx (access log on)"


def median_cells(cells):
    """The median of each column of (rate, p99, max, timeouts, cpu) runs; timeouts summed."""
    columns = list(zip(*cells))
    cpu = [c for c in columns[4] if c is not None]
    return (statistics.median(columns[0]), statistics.median(columns[1]), statistics.median(columns[2]),
            sum(columns[3]), statistics.median(cpu) if cpu else None)


def start_registryd(workdir, log_level):
    data = os.path.join(workdir, f"registryd-{log_level}")
    os.makedirs(data)
    port = bench.free_port()
    log = open(os.path.join(workdir, f"registryd-{log_level}.log"), "w")
    process = subprocess.Popen(
        [bench.REGISTRYD, "--listen", f"127.0.0.1:{port}", "--data-dir", data, "--log-level", log_level], stderr=log, stdout=log)
    bench.wait_for_port(port)
    control = os.path.join(data, "control.sock")
    bench.run([bench.REGISTRYCTL, "--socket", control, "user", "add", bench.USER, "--staff", "--password-stdin"], input=bench.PASSWORD + "\n")
    server = bench.Server(LOG_ON if log_level == "info" else LOG_OFF, process, port, True)
    server.make_public = lambda repo: bench.run([bench.REGISTRYCTL, "--socket", control, "repo", "visibility", repo, "public"])
    return server


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def hold_idle(port, count, headers):
    """Opens `count` connections, each makes one keep-alive request and stays open.
    - Returns: the sockets."""
    request = ("GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
    sockets = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += s.recv(4096)
        sockets.append(s)
    return sockets


def accept_storm(port, count, headers):
    """Opens `count` connections at once, then sends each a request and waits for every
    answer. - Returns: (answered, seconds until the last answer)."""
    request = ("GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
    selector = selectors.DefaultSelector()
    started = time.perf_counter()
    pending = {}
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        selector.register(s, selectors.EVENT_WRITE)
        pending[s] = b""
    answered, deadline = 0, started + 30
    while pending and time.perf_counter() < deadline:
        for key, events in selector.select(timeout=1):
            s = key.fileobj
            if events & selectors.EVENT_WRITE:
                try:
                    s.sendall(request)
                except OSError:
                    continue
                selector.modify(s, selectors.EVENT_READ)
            elif events & selectors.EVENT_READ:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                pending[s] += data
                if b"\r\n\r\n" in pending[s] or not data:
                    if pending[s].startswith(b"HTTP/1.1 200"):
                        answered += 1
                    selector.unregister(s)
                    s.close()
                    del pending[s]
    elapsed = time.perf_counter() - started
    for s in pending:
        s.close()
    return answered, elapsed


def measure(duration=5, rounds=5):
    """Runs every workload. - Returns: {"rows": {workload: {server: (rate, p99 ms, max ms,
    timeouts, CPU µs per request or None)}}, "idle_kib_per_connection", "idle_rss_mib",
    "storm_answered", "storm_seconds"}, the servers named LOG_ON, LOG_OFF and NGINX."""
    # 10,000 held connections, both ends in this machine: as the unit file's LimitNOFILE allows.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    workdir = tempfile.mkdtemp(prefix="registryd-connections-")
    os.chmod(workdir, 0o755)
    servers = [start_registryd(workdir, "info"), start_registryd(workdir, "warning")]
    rows = {}
    try:
        fixtures = {server.name: bench.prepare(server) for server in servers}
        first = fixtures[servers[0].name]
        nginx, nginx_port = bench.run_nginx(
            workdir, "nginx", f"""  root {workdir}/nginx-root;
  server {{ listen 127.0.0.1:{{port}} backlog=4096; }}""", access_log=True)
        os.makedirs(os.path.join(workdir, "nginx-root"))
        for name, data in (("manifest", first["manifest"]), ("blob", os.urandom(1024))):
            with open(os.path.join(workdir, "nginx-root", name), "wb") as f:
                f.write(data)
        try:
            for connections in (64, 1000, 4000):
                for workload, head in (("manifest GET by tag", False), ("blob HEAD", True)):
                    # name -> (url, headers, server or None for nginx)
                    targets = {}
                    for server in servers:
                        headers = dict(server.pull_headers())
                        if head:
                            path = f"/v2/bench/small/blobs/{fixtures[server.name]['layer'][0]}"
                        else:
                            path, headers["Accept"] = "/v2/bench/small/manifests/v1", bench.OCI_MANIFEST
                        targets[server.name] = (server.base + path, headers, server)
                    static = "blob" if head else "manifest"
                    targets[NGINX] = (f"http://127.0.0.1:{nginx_port}/{static}", {}, None)
                    # Rounds interleave the three servers, so drift of the machine hits
                    # them alike; each cell is the median of the rounds.
                    runs = {name: [] for name in targets}
                    for _ in range(rounds):
                        for name, (url, headers, server) in targets.items():
                            load(url, headers, 1, connections, head)  # warm-up
                            if server is None:
                                result = load(url, headers, duration, connections, head)
                                runs[name].append((result.rate, result.p99, result.maximum, result.failures, None))
                                continue
                            result, used = bench.measured(server, lambda: load(url, headers, duration, connections, head))
                            runs[name].append((result.rate, result.p99, result.maximum, result.failures, used / max(result.total, 1) * 1e6))
                    results = {name: median_cells(cells) for name, cells in runs.items()}
                    rows[f"{workload}, {connections:,} connections"] = results
                    for name, (rate, p99, maximum, timeouts, cpu) in results.items():
                        cpu_text = f"  {cpu:6.1f} µs/req" if cpu else ""
                        print(f"  {workload:20} c={connections:<5} {name:28} {rate:10.0f} req/s  p99 {p99:7.1f} ms  max {maximum:7.1f} ms  timeouts {timeouts}{cpu_text}", flush=True)
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)

        server = servers[0]
        before = rss_kib(server.process.pid)
        held = hold_idle(server.port, 10000, server.pull_headers())
        time.sleep(1)
        after = rss_kib(server.process.pid)
        print(f"  10,000 idle keep-alive connections: RSS {before / 1024:.1f} → {after / 1024:.1f} MiB, "
              f"{(after - before) / len(held):.1f} KiB per connection", flush=True)
        idle = {"idle_kib_per_connection": (after - before) / len(held), "idle_rss_mib": (before / 1024, after / 1024)}
        for s in held:
            s.close()
        time.sleep(2)
        answered, seconds = accept_storm(server.port, 4000, server.pull_headers())
        print(f"  accept storm: {answered} of 4,000 connections opened at once answered, the last after {seconds:.2f} s", flush=True)
    finally:
        for server in servers:
            server.stop()
        # The access logs alone are gigabytes after a full run.
        shutil.rmtree(workdir, ignore_errors=True)
    return {"rows": rows, **idle, "storm_answered": answered, "storm_seconds": seconds}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5, help="runs per cell; the cell is their median")
    args = parser.parse_args()
    results = measure(args.duration, args.rounds)
    import report
    print()
    print(report.connections_table(results))



if __name__ == "__main__":
    main()
