#!/usr/bin/env python3
"""registryd side by side with CNCF distribution (Debian's docker-registry), in one run.

    scripts/bench.sh [--duration SECONDS] [--quick] [--write-docs]

Both registries run on loopback with fresh storage, first without auth, then with basic
auth; every workload runs against one then the other (alternating which goes first), and
each metric prints as one line: registryd's value, distribution's, and the ratio. The
machine's own limits (SHA-256 on one core, loopback TCP, fsync'd disk writes, nginx
serving static files of the same sizes) are measured in the same run. With --write-docs
the results go into docs/PERFORMANCE.md (table) and docs/performance-ratios.png (chart).

"Without auth" for registryd means anonymous pulls of a public repository, with pushes by
a staff user (registryd never takes anonymous pushes); distribution runs without auth.
Server CPU is read from /proc/PID/stat before and after each workload, so the CPU time
per request is the server's own, whatever the client costs.
"""
import argparse, base64, collections, hashlib, http.client, json, multiprocessing, os, re, shutil, signal, socket, statistics
import subprocess, sys, tempfile, time, urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REGISTRYD = os.path.join(ROOT, ".build", "release", "registryd")
REGISTRYCTL = os.path.join(ROOT, ".build", "release", "registryctl")
USER, PASSWORD = "bench", "bench-password"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: exit {result.returncode}: {result.stderr.strip()[-2000:]}")
    return result.stdout


def wait_for_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on port {port}")


class Server:
    """A registry process: its port, CPU time and peak memory from /proc."""

    def __init__(self, name, process, port, auth):
        self.name, self.process, self.port, self.auth = name, process, port, auth
        self.base = f"http://127.0.0.1:{port}"

    def cpu_seconds(self):
        fields = open(f"/proc/{self.process.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def peak_rss_mib(self):
        for line in open(f"/proc/{self.process.pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def pull_headers(self):
        """Credentials for reads: none without auth."""
        return {"Authorization": basic_header()} if self.auth else {}

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def basic_header():
    return "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def start_registryd(workdir, auth):
    data = os.path.join(workdir, "registryd-data")
    os.makedirs(data)
    port = free_port()
    log = open(os.path.join(workdir, "registryd.log"), "w")
    process = subprocess.Popen([REGISTRYD, "--listen", f"127.0.0.1:{port}", "--data-dir", data], stderr=log, stdout=log)
    wait_for_port(port)
    run([REGISTRYCTL, "--socket", os.path.join(data, "control.sock"), "user", "add", USER, "--staff", "--password-stdin"], input=PASSWORD + "\n")
    server = Server("registryd", process, port, auth)
    server.make_public = lambda repo: run([REGISTRYCTL, "--socket", os.path.join(data, "control.sock"), "repo", "visibility", repo, "public"])
    return server


def start_distribution(workdir, auth):
    root = os.path.join(workdir, "distribution-data")
    os.makedirs(root)
    port = free_port()
    config = os.path.join(workdir, "distribution.yml")
    auth_section = ""
    if auth:
        htpasswd = os.path.join(workdir, "htpasswd")
        run(["htpasswd", "-Bbc", htpasswd, USER, PASSWORD])
        auth_section = f"auth:\n  htpasswd:\n    realm: bench\n    path: {htpasswd}\n"
    with open(config, "w") as f:
        f.write(f"""version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
{auth_section}""")
    log = open(os.path.join(workdir, "distribution.log"), "w")
    process = subprocess.Popen(["docker-registry", "serve", config], stderr=log, stdout=log)
    wait_for_port(port)
    server = Server("distribution", process, port, auth)
    server.make_public = lambda repo: None
    return server


# ---------------------------------------------------------------- HTTP helpers


class Client:
    """One keep-alive connection that always sends the push credentials."""

    def __init__(self, port):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, method, path, body=None, headers=None, expect=None):
        all_headers = {"Authorization": basic_header()}
        all_headers.update(headers or {})
        if body is not None:
            all_headers.setdefault("Content-Type", "application/octet-stream")
        self.connection.request(method, path, body=body, headers=all_headers)
        response = self.connection.getresponse()
        data = response.read()
        if expect and response.status not in expect:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        return response, data

    def push_blob(self, repo, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        response, _ = self.request("POST", f"/v2/{repo}/blobs/uploads/", body=b"", expect={202})
        # registryd answers a path, distribution an absolute URL with a state query.
        location = urllib.parse.urlsplit(response.getheader("Location"))
        query = (location.query + "&" if location.query else "") + f"digest={digest}"
        self.request("PUT", f"{location.path}?{query}", body=data, expect={201})
        return digest

    def push_manifest(self, repo, tag, config, layers):
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config[0], "size": config[1]},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s} for d, s in layers],
        }, separators=(",", ":")).encode()
        self.request("PUT", f"/v2/{repo}/manifests/{tag}", body=manifest, headers={"Content-Type": OCI_MANIFEST}, expect={201})
        return manifest


def prepare(server):
    """The repository the read workloads hit: a manifest tagged v1, a config, a layer."""
    client = Client(server.port)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    layer = os.urandom(1024)
    config_digest = client.push_blob("bench/small", config)
    layer_digest = client.push_blob("bench/small", layer)
    manifest = client.push_manifest("bench/small", "v1", (config_digest, len(config)), [(layer_digest, len(layer))])
    for tag in ("v2", "v3", "latest"):
        client.push_manifest("bench/small", tag, (config_digest, len(config)), [(layer_digest, len(layer))])
    server.make_public("bench/small")
    _, tags = client.request("GET", "/v2/bench/small/tags/list", expect={200})
    return {"config": (config_digest, len(config)), "layer": (layer_digest, len(layer)), "manifest": manifest, "tags": tags}


# ---------------------------------------------------------------- load tools


def header_flags(headers):
    """`-H 'Name: value'` for each header (wrk and ab spell it the same)."""
    return [flag for name, value in headers.items() for flag in ("-H", f"{name}: {value}")]


# One load run: requests/s, requests answered, p99 and max latency (ms), and requests the
# client gave up on (wrk's 2-second timeouts, ab's failed requests).
Load = collections.namedtuple("Load", "rate total p99 maximum failures")


def wrk(url, headers, duration, connections=64):
    output = run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "2s"] + header_flags(headers) + [url])
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise RuntimeError(f"wrk {url}: {errors.group(1)} error responses")
    timeouts = re.search(r"timeout (\d+)", output)
    return Load(rate=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
                total=int(re.search(r"(\d+) requests in", output).group(1)),
                p99=parse_latency(re.search(r"99%\s+([\d.]+\w+)", output).group(1)),
                maximum=parse_latency(re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+\w+)", output).group(1)),
                failures=int(timeouts.group(1)) if timeouts else 0)


def parse_latency(text):
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def ab_head(url, headers, duration, connections=64, count_failures=False):
    """ab's HEADs (wrk waits for the body a HEAD answer announces). A failed request raises
    unless the caller counts them (`count_failures`, where they are a measurement of their
    own); an error answer always raises. ab reports latency in whole milliseconds."""
    output = run(["ab", "-k", "-i", f"-c{connections}", f"-t{duration}", "-n", "100000000", "-s", "2", "-q"] + header_flags(headers) + [url])
    failed = int(re.search(r"Failed requests:\s+(\d+)", output).group(1))
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", output)
    if (failed and not count_failures) or non2xx:
        raise RuntimeError(f"ab {url}: {failed} failed, {non2xx.group(1) if non2xx else 0} non-2xx")
    return Load(rate=float(re.search(r"Requests per second:\s+([\d.]+)", output).group(1)),
                total=int(re.search(r"Complete requests:\s+(\d+)", output).group(1)),
                p99=float(re.search(r"\s99%\s+(\d+)", output).group(1)),
                maximum=float(re.search(r"100%\s+(\d+)", output).group(1)),
                failures=failed)


def measured(server, work):
    """Runs `work()` and returns (its result, server CPU seconds used)."""
    before = server.cpu_seconds()
    result = work()
    return result, server.cpu_seconds() - before


# ---------------------------------------------------------------- push workers


def small_push_worker(arguments):
    port, worker, deadline, config = arguments
    client = Client(port)
    repo = f"bench/push-{worker}"
    client.push_blob(repo, config[2])
    operations = 0
    while time.time() < deadline:
        layer = os.urandom(1024)
        digest = client.push_blob(repo, layer)
        client.push_manifest(repo, f"t{operations}", config[:2], [(digest, len(layer))])
        operations += 1
    return operations


def mount_worker(arguments):
    port, worker, deadline, layer_digest = arguments
    client = Client(port)
    operations = 0
    while time.time() < deadline:
        client.request("POST", f"/v2/bench/mount-{worker}-{operations}/blobs/uploads/?mount={layer_digest}&from=bench/small", body=b"", expect={201})
        operations += 1
    return operations


def concurrent(worker, port, duration, extra, workers=16):
    deadline = time.time() + duration
    with multiprocessing.Pool(workers) as pool:
        counts = pool.map(worker, [(port, i, deadline, extra) for i in range(workers)])
    return sum(counts)


# ---------------------------------------------------------------- big blobs


def curl(arguments):
    output = run(["curl", "-sS", "-f", "-u", f"{USER}:{PASSWORD}", "-w", "%{http_code} %{time_total}"] + arguments)
    return output


def upload_location(server, repo):
    client = Client(server.port)
    response, _ = client.request("POST", f"/v2/{repo}/blobs/uploads/", body=b"", expect={202})
    location = response.getheader("Location")
    return location if location.startswith("http") else server.base + location


def with_query(location, query):
    return location + ("&" if "?" in location else "?") + query


def push_monolithic(server, path, digest):
    location = upload_location(server, "bench/big-mono")
    started = time.time()
    curl(["-X", "PUT", "-H", "Content-Type: application/octet-stream", "-T", path, "-o", "/dev/null", with_query(location, f"digest={digest}")])
    return time.time() - started


def push_chunked(server, chunks, digest):
    location = upload_location(server, "bench/big-chunked")
    started = time.time()
    offset = 0
    for chunk in chunks:
        size = os.path.getsize(chunk)
        headers = subprocess.run(
            ["curl", "-sS", "-f", "-u", f"{USER}:{PASSWORD}", "-X", "PATCH", "-D", "-", "-o", "/dev/null",
             "-H", "Content-Type: application/octet-stream", "-H", f"Content-Range: {offset}-{offset + size - 1}", "-T", chunk, location],
            check=True, capture_output=True, text=True).stdout
        match = re.search(r"^location:\s*(\S+)", headers, re.IGNORECASE | re.MULTILINE)
        location = match.group(1) if match.group(1).startswith("http") else server.base + match.group(1)
        offset += size
    curl(["-X", "PUT", "-o", "/dev/null", with_query(location, f"digest={digest}")])
    return time.time() - started


def pull(server, digest):
    started = time.time()
    run(["curl", "-sS", "-f", "-u", f"{USER}:{PASSWORD}", "-o", "/dev/null", f"{server.base}/v2/bench/big-mono/blobs/{digest}"])
    return time.time() - started


def many_pushes(server, files, repo="bench/many"):
    """Pushes every (path, digest) of `files` at once, each in one monolithic PUT by its own
    curl. - Returns: seconds until the last finished."""
    locations = [upload_location(server, repo) for _ in files]
    started = time.time()
    clients = [subprocess.Popen(["curl", "-sS", "-f", "-u", f"{USER}:{PASSWORD}", "-X", "PUT", "-H", "Content-Type: application/octet-stream",
                                 "-T", path, "-o", "/dev/null", with_query(location, f"digest={digest}")])
               for (path, digest), location in zip(files, locations)]
    if any(client.wait() != 0 for client in clients):
        raise RuntimeError(f"{server.name}: a concurrent push failed")
    return time.time() - started


def many_pulls(server, digests, repo="bench/many"):
    """Pulls every blob of `digests` at once, each by its own curl. - Returns: seconds until
    the last finished."""
    started = time.time()
    clients = [subprocess.Popen(["curl", "-sS", "-f", "-u", f"{USER}:{PASSWORD}", "-o", "/dev/null", f"{server.base}/v2/{repo}/blobs/{digest}"])
               for digest in digests]
    if any(client.wait() != 0 for client in clients):
        raise RuntimeError(f"{server.name}: a concurrent pull failed")
    return time.time() - started


def peak_memory_of(server, work):
    """Runs `work()` and returns (its result, the server's peak resident memory in MiB
    during it): the peak is reset first (/proc/PID/clear_refs)."""
    with open(f"/proc/{server.process.pid}/clear_refs", "w") as f:
        f.write("5")
    result = work()
    return result, server.peak_rss_mib()


def skopeo(arguments):
    # A private /var/lib/containers: skopeo's blob-info cache must not carry over; and
    # an empty credentials file: logins saved on this machine must not be sent.
    script = 'mkdir -p /var/lib/containers && mount -t tmpfs tmpfs /var/lib/containers && exec "$@"'
    with tempfile.NamedTemporaryFile("w", suffix=".json") as auth:
        auth.write("{}")
        auth.flush()
        started = time.time()
        run(["unshare", "-m", "sh", "-c", script, "sh", "skopeo"] + arguments, env=dict(os.environ, REGISTRY_AUTH_FILE=auth.name))
    return time.time() - started


# ---------------------------------------------------------------- machine limits


def machine_limits(workdir, big_file, duration, quick):
    limits = {}
    output = run(["openssl", "speed", "-seconds", "1" if quick else "3", "-bytes", "16384", "-evp", "sha256"])
    kilobytes = float(output.strip().splitlines()[-1].split()[-1].rstrip("k"))
    limits["sha256_mib_s"] = kilobytes * 1000 / (1 << 20)
    port = free_port()
    server = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_listener(port)  # a probing connection would use up its one session
    report = json.loads(run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-n", "1G", "-J"]))
    server.wait(timeout=10)
    limits["loopback_mib_s"] = report["end"]["sum_received"]["bits_per_second"] / 8 / (1 << 20)
    target = os.path.join(workdir, "dd-test")
    started = time.time()
    run(["dd", "if=" + big_file, "of=" + target, "bs=1M", "conv=fsync"])
    limits["disk_fsync_mib_s"] = os.path.getsize(big_file) / (1 << 20) / (time.time() - started)
    os.remove(target)
    return limits


def run_nginx(workdir, name, http, workers=2, access_log=False):
    """Starts nginx on a free port with `http` as its http block (`{port}` in it is the
    port); `access_log` writes one line per request to a file, as registryd does at
    `info`. - Returns: (process, port)."""
    port = free_port()
    config = os.path.join(workdir, f"{name}.conf")
    with open(config, "w") as f:
        f.write(f"""worker_processes {workers};
pid {workdir}/{name}.pid;
error_log {workdir}/{name}-error.log;
daemon off;
events {{ worker_connections 16384; }}
http {{
  access_log {f"{workdir}/{name}-access.log" if access_log else "off"};
  keepalive_requests 100000;
{http.replace("{port}", str(port))}
}}
""")
    process = subprocess.Popen(["nginx", "-c", config, "-p", workdir], stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return process, port


def start_nginx(workdir, files):
    """nginx serving `files` ({name: bytes}) as static files: the rate to compare with."""
    root = os.path.join(workdir, "nginx-root")
    os.makedirs(root)
    for name, data in files.items():
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
    return run_nginx(workdir, "nginx", f"  server {{ listen 127.0.0.1:{{port}}; root {root}; }}")


# ---------------------------------------------------------------- cold start


def first_byte_ms(port):
    """Connects, asks for /v2/ and times the first byte of the answer."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        s.recv(1)
        return (time.perf_counter() - started) * 1000


def cold_start_registryd(workdir, rounds):
    data = os.path.join(workdir, "activation-data")
    times = []
    for i in range(rounds):
        port = free_port()
        activator = subprocess.Popen(
            ["systemd-socket-activate", "-l", f"127.0.0.1:{port}", "--fdname=registry", REGISTRYD, "--data-dir", data, "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_listener(port)
        if i > 0:  # the first round creates and migrates the database: not counted
            times.append(first_byte_ms(port))
        else:
            first_byte_ms(port)
        activator.send_signal(signal.SIGTERM)
        activator.wait(timeout=20)
    return statistics.median(times)


def wait_for_listener(port):
    """Waits until the port is bound, without connecting (a connection would start the daemon)."""
    needle = f"0100007F:{port:04X}"
    for _ in range(500):
        if any(needle in line and line.split()[3] == "0A" for line in open("/proc/net/tcp")):
            return
        time.sleep(0.01)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def cold_start_distribution(workdir, rounds):
    """distribution cannot adopt an activated socket: time from exec to its first answer."""
    times = []
    for i in range(rounds):
        directory = os.path.join(workdir, f"cold-{i}")
        os.makedirs(directory)
        port = free_port()
        config = os.path.join(directory, "config.yml")
        with open(config, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {directory}/data\nhttp:\n  addr: 127.0.0.1:{port}\n")
        started = time.perf_counter()
        process = subprocess.Popen(["docker-registry", "serve", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while True:
            try:
                first_byte_ms(port)
                break
            except OSError:
                time.sleep(0.001)
        times.append((time.perf_counter() - started) * 1000)
        process.kill()
        process.wait()
    return statistics.median(times)


# ---------------------------------------------------------------- the run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10, help="seconds per request-rate workload")
    parser.add_argument("--quick", action="store_true", help="short run: 3 s workloads, 256 MiB blobs, no skopeo image")
    parser.add_argument("--write-docs", action="store_true", help="write docs/PERFORMANCE.md's table and the chart")
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args()
    duration = 3 if args.quick else args.duration
    big_size = (256 if args.quick else 1024) << 20

    workdir = tempfile.mkdtemp(prefix="registryd-bench-")
    os.chmod(workdir, 0o755)  # nginx's workers read their files as www-data
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine_description(), "passes": {}}
    try:
        big_file = os.path.join(workdir, "big.bin")
        with open(big_file, "wb") as f:
            for _ in range(big_size >> 20):
                f.write(os.urandom(1 << 20))
        digest = "sha256:" + file_sha256(big_file)
        chunks = split(big_file, 64 << 20, workdir)
        # 16 different blobs for the many-clients workloads (64 MiB each; 16 MiB with --quick).
        many = []
        for index in range(16):
            path, data = os.path.join(workdir, f"many-{index:02}.bin"), os.urandom((16 if args.quick else 64) << 20)
            with open(path, "wb") as f:
                f.write(data)
            many.append((path, "sha256:" + hashlib.sha256(data).hexdigest()))
        image = os.path.join(workdir, "image")
        if not args.quick:
            run([sys.executable, os.path.join(ROOT, "scripts", "make-test-image.py"), image, "--layers", "5", "--layer-size", str(40 << 20), "--seed", "7"])

        print("machine limits", flush=True)
        results["limits"] = machine_limits(workdir, big_file, duration, args.quick)
        for name, value in results["limits"].items():
            print(f"  {name:28} {value:12.1f}")

        for auth in (False, True):
            pass_name = "basic auth" if auth else "no auth"
            print(f"\n{pass_name}", flush=True)
            results["passes"][pass_name] = run_pass(workdir, auth, duration, big_file, digest, chunks, many, image if not args.quick else None)

        print("\ncold start", flush=True)
        rounds = 5 if args.quick else 15
        results["cold_start"] = {"registryd": cold_start_registryd(workdir, rounds), "distribution": cold_start_distribution(workdir, rounds)}
        print(f"  {'first byte after connect (ms)':40} {results['cold_start']['registryd']:10.1f} {results['cold_start']['distribution']:10.1f}")

        print("\nS3 (radosgw): registryd against aws s3 cp", flush=True)
        import s3
        results["s3"] = s3.measure(256 if args.quick else 1024)

        if not args.quick:
            print("\nmany connections (registryd with its access log on and off, nginx with its access log on)", flush=True)
            import connections
            results["connections"] = connections.measure()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if args.write_docs:
        import report
        report.write(results, ROOT)


def run_pass(workdir, auth, duration, big_file, digest, chunks, many, image):
    pass_dir = os.path.join(workdir, "auth" if auth else "open")
    for name in ("r", "d"):
        os.makedirs(os.path.join(pass_dir, name))
    servers = [start_registryd(os.path.join(pass_dir, "r"), auth), start_distribution(os.path.join(pass_dir, "d"), auth)]
    metrics = {}
    try:
        fixtures = {server.name: prepare(server) for server in servers}
        nginx, nginx_port = start_nginx(pass_dir, {
            "manifest": fixtures["registryd"]["manifest"], "tags": fixtures["registryd"]["tags"], "blob": os.urandom(1024)})
        try:
            def record(metric, unit, values, better="higher", nginx_value=None, cpu=None):
                metrics[metric] = {"unit": unit, "values": values, "better": better, "nginx": nginx_value, "cpu_us": cpu}
                r, d = values["registryd"], values["distribution"]
                ratio = r / d if better == "higher" else d / r
                extra = f"   nginx {nginx_value:10.1f}" if nginx_value else ""
                cpu_text = f"   cpu/op µs {cpu['registryd']:8.1f} vs {cpu['distribution']:8.1f}" if cpu else ""
                print(f"  {metric:34} {r:12.1f} {d:12.1f} {unit:8} ×{ratio:7.2f}{extra}{cpu_text}", flush=True)

            order = [servers, servers[::-1]]
            # Request rates: manifest GET by tag, tags list, blob HEAD.
            for metric, path, accept in (("manifest GET by tag", "/v2/bench/small/manifests/v1", OCI_MANIFEST),
                                         ("tags list", "/v2/bench/small/tags/list", None)):
                values, cpu, p99 = {}, {}, {}
                for server in order[len(metrics) % 2]:
                    headers = dict(server.pull_headers())
                    if accept:
                        headers["Accept"] = accept
                    wrk(server.base + path, headers, 1)  # warm-up, not measured: caches, connections, allocator
                    load, used = measured(server, lambda: wrk(server.base + path, headers, duration))
                    values[server.name], cpu[server.name], p99[server.name] = load.rate, used / load.total * 1e6, load.p99
                static = "manifest" if accept else "tags"
                nginx_load = wrk(f"http://127.0.0.1:{nginx_port}/{static}", {}, duration)
                record(metric + " req/s", "req/s", values, nginx_value=nginx_load.rate, cpu=cpu)
                # nginx's p99 on the same machine: how much of the tail is the machine's.
                record(metric + " p99", "ms", p99, better="lower", nginx_value=nginx_load.p99)
            values, cpu = {}, {}
            for server in order[len(metrics) % 2]:
                layer = fixtures[server.name]["layer"][0]
                ab_head(f"{server.base}/v2/bench/small/blobs/{layer}", server.pull_headers(), 1)  # warm-up
                load, used = measured(server, lambda: ab_head(f"{server.base}/v2/bench/small/blobs/{layer}", server.pull_headers(), duration))
                values[server.name], cpu[server.name] = load.rate, used / load.total * 1e6
            nginx_load = ab_head(f"http://127.0.0.1:{nginx_port}/blob", {}, duration)
            record("blob HEAD req/s", "req/s", values, nginx_value=nginx_load.rate, cpu=cpu)

            # Small pushes and mounts, 16 concurrent clients.
            config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
            config_tuple = ("sha256:" + hashlib.sha256(config).hexdigest(), len(config), config)
            values, cpu = {}, {}
            for server in order[0]:
                count, used = measured(server, lambda: concurrent(small_push_worker, server.port, duration, config_tuple))
                values[server.name], cpu[server.name] = count / duration, used / max(count, 1) * 1e6
            record("small pushes ops/s", "ops/s", values, cpu=cpu)
            values, cpu = {}, {}
            for server in order[1]:
                layer = fixtures[server.name]["layer"][0]
                count, used = measured(server, lambda: concurrent(mount_worker, server.port, duration, layer))
                values[server.name], cpu[server.name] = count / duration, used / max(count, 1) * 1e6
            record("cross-repository mounts/s", "ops/s", values, cpu=cpu)
        finally:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(timeout=10)

        # Big blobs: MiB/s and server CPU seconds per GiB.
        size_mib = os.path.getsize(big_file) / (1 << 20)
        # A pull from the page cache takes ~0.4 s, and one such sample swung the ratio
        # from ×0.68 to ×1.17 between runs: pulls are the median of three.
        for metric, work, rounds in (("blob push monolithic", lambda s: push_monolithic(s, big_file, digest), 1),
                                     ("blob push 64 MiB chunks", lambda s: push_chunked(s, chunks, digest), 1),
                                     ("blob pull", lambda s: pull(s, digest), 3)):
            values, cpu = {}, {}
            # registryd first in one pass, distribution first in the other: whoever writes
            # first into page cache the VM has not touched yet pays for it in kernel time
            # (see docs/PERFORMANCE.md).
            for server in order[1 if auth else 0]:
                # Each starts with the page cache clean: a push must not wait for the
                # write-out of the bytes pushed before it (the disk is the limit here).
                os.sync()
                samples, used = measured(server, lambda: [work(server) for _ in range(rounds)])
                values[server.name], cpu[server.name] = size_mib / statistics.median(samples), used / rounds / (size_mib / 1024) * 1e6
            record(metric + " MiB/s", "MiB/s", values, cpu=cpu)

        if image:
            values_push, values_pull = {}, {}
            for server in order[1]:
                repo = f"127.0.0.1:{server.port}/bench/skopeo:v1"
                os.sync()
                values_push[server.name] = skopeo(["copy", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{PASSWORD}", f"oci:{image}:latest", f"docker://{repo}"])
                server.make_public("bench/skopeo")
                target = os.path.join(pass_dir, f"pulled-{server.name}")
                os.sync()
                values_pull[server.name] = skopeo(["copy", "--src-tls-verify=false"] + (["--src-creds", f"{USER}:{PASSWORD}"] if auth else [])
                                                  + [f"docker://{repo}", f"oci:{target}:v1"])
            record("skopeo push 200 MiB image", "s", values_push, better="lower")
            record("skopeo pull 200 MiB image", "s", values_pull, better="lower")

        # Peak memory over the whole pass, before the many-clients workloads reset the peak.
        record("peak memory", "MiB", {server.name: server.peak_rss_mib() for server in servers}, better="lower")

        # Many clients at once: 16 blobs of 64 MiB pushed together, then pulled together;
        # the aggregate rate and the server's peak memory during each.
        size_mib = sum(os.path.getsize(path) for path, _ in many) / (1 << 20)
        for metric, work in (("16 pushes of 64 MiB at once", lambda s: many_pushes(s, many)),
                             ("16 pulls of 64 MiB at once", lambda s: many_pulls(s, [digest for _, digest in many]))):
            values, cpu, peaks = {}, {}, {}
            for server in order[1 if auth else 0]:
                os.sync()
                (seconds, used), peaks[server.name] = peak_memory_of(server, lambda: measured(server, lambda: work(server)))
                values[server.name], cpu[server.name] = size_mib / seconds, used / (size_mib / 1024) * 1e6
            record(metric + " MiB/s", "MiB/s", values, cpu=cpu)
            record("peak memory, " + metric.replace(" of 64 MiB", ""), "MiB", peaks, better="lower")
    finally:
        for server in servers:
            server.stop()
        # Gigabytes of blobs: gone before the next pass (Ceph's monitor, started later for
        # the S3 rows, refuses to start on a nearly full disk).
        shutil.rmtree(pass_dir, ignore_errors=True)
    return metrics


def file_sha256(path):
    return run(["sha256sum", path]).split()[0]


def split(path, size, workdir):
    chunks = []
    with open(path, "rb") as f:
        while data := f.read(size):
            chunk = os.path.join(workdir, f"chunk-{len(chunks):03}")
            with open(chunk, "wb") as out:
                out.write(data)
            chunks.append(chunk)
    return chunks


def machine_description():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "unknown CPU")
    memory = next((int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0) / (1 << 20)
    distribution = run(["dpkg-query", "-W", "-f=${Version}", "docker-registry"])
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB; distribution {distribution} (Debian docker-registry)"


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
