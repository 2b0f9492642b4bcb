"""Turns one benchmark run into docs/PERFORMANCE.md's results and the ratio chart.

The results go between the `<!-- results:begin -->` and `<!-- results:end -->` markers of
docs/PERFORMANCE.md, so the prose around them stays hand-written.
"""
import os

# metric -> (ratio target without auth, with basic auth); ratios are "times better than
# distribution" (for lower-is-better metrics, distribution's value over registryd's).
RATIO_TARGETS = {
    "manifest GET by tag req/s": (20, 60),
    "tags list req/s": (20, 60),
    "blob HEAD req/s": (20, 60),
    "small pushes ops/s": (5, 5),
    "cross-repository mounts/s": (6, 6),
    "blob push monolithic MiB/s": (3, 3),
    "blob push 64 MiB chunks MiB/s": (3, 3),
    "blob pull MiB/s": (1.1, 1.1),
    "16 pushes of 64 MiB at once MiB/s": (2, 2),
    "16 pulls of 64 MiB at once MiB/s": (2, 2),
    "peak memory, 16 pushes at once": (2, 2),
    "peak memory, 16 pulls at once": (2, 2),
    "peak memory": (2, 2),
}
BIG_PUSHES = ("blob push monolithic MiB/s", "blob push 64 MiB chunks MiB/s")
REQUEST_RATE_METRICS = ("manifest GET by tag req/s", "tags list req/s", "blob HEAD req/s")


def ratio(metric):
    r, d = metric["values"]["registryd"], metric["values"]["distribution"]
    return r / d if metric["better"] == "higher" else d / r


def checks(name, metric, pass_index, limits, metrics):
    """Every target that applies to this metric (`metrics`: the whole pass), as (text, met)."""
    found = []
    if name in RATIO_TARGETS:
        target = RATIO_TARGETS[name][pass_index]
        found.append((f"≥ {target}× distribution", ratio(metric) >= target))
    registryd = metric["values"]["registryd"]
    if name in REQUEST_RATE_METRICS:
        if metric.get("nginx"):
            found.append((f"≥ 50% of nginx ({metric['nginx']:,.0f})", registryd >= 0.5 * metric["nginx"]))
        if metric.get("cpu_us"):
            found.append((f"≤ 30 µs CPU/req ({metric['cpu_us']['registryd']:.1f})", metric["cpu_us"]["registryd"] <= 30))
    if name.endswith(" p99"):
        nginx = f" (nginx: {metric['nginx']:.1f} ms)" if metric.get("nginx") else ""
        found.append((f"p99 ≤ 5 ms{nginx}", registryd <= 5))
    if name in BIG_PUSHES:
        # The hashing core's limit, or the disk's where that is lower.
        floor = min(0.6 * limits["sha256_mib_s"], 0.9 * limits["disk_fsync_mib_s"])
        found.append((f"≥ min(60% SHA-256, 90% disk) ({floor:,.0f})", registryd >= floor))
        seconds = metric["cpu_us"]["registryd"] * 1e-6
        found.append((f"≤ 1.0 s CPU/GiB ({seconds:.2f})", seconds <= 1.0))
    if name == "blob push 64 MiB chunks MiB/s" and "blob push monolithic MiB/s" in metrics:
        monolithic = metrics["blob push monolithic MiB/s"]["values"]["registryd"]
        found.append((f"within 15% of monolithic ({registryd / monolithic:.0%})", registryd >= 0.85 * monolithic))
    if name == "blob pull MiB/s":
        found.append((f"≥ 95% of loopback ({0.95 * limits['loopback_mib_s']:,.0f})", registryd >= 0.95 * limits["loopback_mib_s"]))
    return found


def table(results):
    limits = results["limits"]
    lines = [
        f"Run of {results['date']} on {results['machine']}.",
        "",
        "Machine limits in the same run: SHA-256 on one core "
        f"{limits['sha256_mib_s']:,.0f} MiB/s (`openssl speed -evp sha256`, 16 KiB blocks), loopback TCP "
        f"{limits['loopback_mib_s']:,.0f} MiB/s (`iperf3`, 1 GiB), disk write with fsync {limits['disk_fsync_mib_s']:,.0f} MiB/s (`dd conv=fsync`).",
        "",
    ]
    for index, (pass_name, metrics) in enumerate(results["passes"].items()):
        lines += [f"### {pass_name}", "",
                  "| metric | registryd | distribution | ratio | server CPU per op (registryd / distribution) | targets |",
                  "|---|---:|---:|---:|---|---|"]
        for name, metric in metrics.items():
            values = metric["values"]
            cpu = metric.get("cpu_us")
            unit = "s/GiB" if name.endswith("MiB/s") else "µs"
            scale = 1e-6 if unit == "s/GiB" else 1
            cpu_text = f"{cpu['registryd'] * scale:,.1f} / {cpu['distribution'] * scale:,.1f} {unit}" if cpu else ""
            targets = "; ".join(f"{'✅' if met else '❌'} {text}" for text, met in checks(name, metric, index, limits, metrics))
            lines.append(f"| {name} | {values['registryd']:,.1f} {metric['unit']} | {values['distribution']:,.1f} {metric['unit']} "
                         f"| ×{ratio(metric):,.2f} | {cpu_text} | {targets} |")
        lines.append("")
    cold = results.get("cold_start")
    if cold:
        lines += ["### cold start", "",
                  f"registryd under `systemd-socket-activate`, no process running: first byte of the `/v2/` answer "
                  f"{cold['registryd']:.1f} ms after the client connects (median) — "
                  f"{'✅' if cold['registryd'] <= 25 else '❌'} target ≤ 25 ms. distribution cannot adopt an activated socket; "
                  f"started by hand it answers its first `/v2/` {cold['distribution']:.1f} ms after exec (median).", ""]
    lines.append("![registryd / distribution ratios](performance-ratios.png)")
    if results.get("s3"):
        lines += ["", "### S3 (radosgw on this machine)", "",
                  "The same file through registryd on radosgw and with `aws s3 cp` to and from the same radosgw "
                  "(its defaults: 8 MiB parts, 10 in flight); the median of three rounds.", "", s3_table(results["s3"])]
    if results.get("connections"):
        lines += ["", "### many connections", "",
                  "Manifest GET by tag (wrk -t2) and blob HEAD (ab -k) with basic auth; each cell the median of "
                  "five rounds that interleave the servers; CPU per request is registryd's own.", "",
                  connections_table(results["connections"]), "",
                  "![registryd / nginx at many connections](performance-connections.png)"]
    return "\n".join(lines)


def s3_table(results):
    """registryd on radosgw against `aws s3 cp` to and from the same radosgw."""
    aws, registryd, cpu = results["aws"], results["registryd"], results["registryd_cpu"]
    written = results.get("store_writes", {})
    size = f"{results['size_mib'] / 1024:g} GiB" if results["size_mib"] >= 1024 else f"{results['size_mib']} MiB"
    # (name, registryd MiB/s, aws MiB/s, CPU, rate target against aws, bytes the store wrote per byte
    # pushed and its most: the upload itself plus at most one copy of each byte)
    rows = [
        (f"{size} push, monolithic", registryd["push"], aws["push"], cpu["push"], 0.9, written.get("push"), None),
        (f"{size} push, 64 MiB chunks", registryd["push_chunked"], aws["push"], cpu["push_chunked"], None, written.get("push_chunked"), 2.0),
        (f"{size} pull", registryd["pull"], aws["pull"], cpu["pull"], 1.0, None, None),
    ]
    lines = ["| workload | registryd | `aws s3 cp` | registryd / aws | registryd CPU per GiB | store writes per byte pushed | target |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for name, mine, theirs, seconds, target, stored, most in rows:
        checks = []
        if target:
            checks.append(f"{'✅' if mine >= target * theirs else '❌'} ≥ {target:.0%} of aws")
        if most is not None and stored is not None:
            checks.append(f"{'✅' if stored <= most else '❌'} store writes ≤ {most:g}× (each byte copied at most once)")
        stored_text = f"{stored:.2f}×" if stored is not None else ""
        lines.append(f"| {name} | {mine:,.0f} MiB/s | {theirs:,.0f} MiB/s | {mine / theirs:.0%} | {seconds:.2f} s | {stored_text} | {'; '.join(checks)} |")
    if "aws push" in written:
        lines.append("")
        lines.append(f"`aws s3 cp`'s upload made the store write {written['aws push']:.2f}× the file.")
    return "\n".join(lines)


def paired_bars(axis, names, series, annotate):
    """Two bars per row, one per series (label, values, targets); each bar labelled where
    `annotate(value)` says ((x, text)), and a black tick at the series' target for the row
    where it has one (`None`: no target)."""
    height = 0.38
    for index, (label, values, targets) in enumerate(series):
        positions = [i + (index - 0.5) * height for i in range(len(names))]
        axis.barh(positions, values, height=height, label=label)
        for y, value, target in zip(positions, values, targets):
            x, text = annotate(value)
            axis.text(x, y, text, va="center", fontsize=7)
            if target is not None:
                axis.plot([target, target], [y - height / 2, y + height / 2], color="black", linewidth=1.5)
    axis.axvline(1, color="grey", linestyle=":")
    axis.set_yticks(range(len(names)))
    axis.set_yticklabels(names, fontsize=8)
    axis.invert_yaxis()


def chart(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    passes = list(results["passes"].items())
    names = [name for name in passes[0][1] if not name.endswith(" p99")] + [name for name in passes[0][1] if name.endswith(" p99")]
    figure, axis = plt.subplots(figsize=(10, 0.45 * len(names) + 1.5))
    series = [(pass_name, [ratio(metrics[name]) if name in metrics else 0 for name in names],
               [RATIO_TARGETS[name][index] if name in RATIO_TARGETS else None for name in names])
              for index, (pass_name, metrics) in enumerate(passes)]
    paired_bars(axis, names, series, lambda value: (value * 1.05, f"×{value:.1f}"))
    axis.set_xscale("log")
    axis.set_xlabel("times better than CNCF distribution (log scale; black ticks: targets)")
    axis.set_title(f"registryd vs distribution, {results['date']}")
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


# The connection rows' servers (scripts/bench/connections.py).
LOG_ON, LOG_OFF, NGINX = "registryd (access log on)", "registryd (access log off)", "nginx (access log on)"


def connection_checks(workload, row):
    """The targets of one connections row, as (text, met): at 1,000 and 4,000 connections
    throughput ≥ nginx's, p99 ≤ 1.5× nginx's, no more timeouts; at 64 and 1,000 the access
    log's p99 within 20% of the same server's without it."""
    on, off, nginx = row[LOG_ON], row[LOG_OFF], row[NGINX]
    found = []
    if not workload.endswith(" 64 connections"):
        found.append((f"≥ nginx ({on[0] / nginx[0]:.0%})", on[0] >= nginx[0]))
        found.append((f"p99 ≤ 1.5× nginx ({on[1] / nginx[1]:.2f}×)", on[1] <= 1.5 * nginx[1]))
        found.append((f"timeouts ≤ nginx's ({on[3]} / {nginx[3]})", on[3] <= nginx[3]))
    if not workload.endswith(" 4,000 connections"):
        found.append((f"p99 log on ≤ 1.2× off ({on[1] / off[1]:.2f}×)", on[1] <= 1.2 * off[1]))
    return found


def connections_table(results):
    """The many-connections section: one row per workload, registryd with its access log on
    and off beside nginx with its access log on, then idle connections and the accept storm."""
    lines = ["| workload | registryd, access log on | registryd, access log off | nginx, access log on | targets |",
             "|---|---|---|---|---|"]
    for workload, row in results["rows"].items():
        cells = []
        for name in (LOG_ON, LOG_OFF, NGINX):
            rate, p99, maximum, timeouts, cpu = row[name]
            cells.append(f"{rate:,.0f} req/s, p99 {p99:.1f} ms, max {maximum:.0f} ms"
                         + (f", {timeouts} timeouts" if timeouts else "") + (f", {cpu:.0f} µs" if cpu else ""))
        targets = "; ".join(f"{'✅' if met else '❌'} {text}" for text, met in connection_checks(workload, row))
        lines.append(f"| {workload} | " + " | ".join(cells) + f" | {targets} |")
    per_connection = results["idle_kib_per_connection"]
    before, after = results["idle_rss_mib"]
    lines += ["",
              f"10,000 idle keep-alive connections (each made one request): RSS {before:.1f} → {after:.1f} MiB, "
              f"{per_connection:.1f} KiB per connection — {'✅' if per_connection <= 16 else '❌'} target ≤ 16 KiB. "
              f"Accept storm: {results['storm_answered']:,} of 4,000 connections opened at once answered, the last "
              f"{results['storm_seconds']:.2f} s after the first connect — {'✅' if results['storm_answered'] == 4000 else '❌'} all served."]
    return "\n".join(lines)


def connections_chart(results, path, date):
    """registryd's rate and p99 with its access log on, as ratios to nginx's (above 1: ahead)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(results["rows"])
    rates = [results["rows"][w][LOG_ON][0] / results["rows"][w][NGINX][0] for w in workloads]
    latencies = [results["rows"][w][NGINX][1] / results["rows"][w][LOG_ON][1] for w in workloads]
    figure, axis = plt.subplots(figsize=(10, 0.5 * len(workloads) + 2))
    # No rate target at 64 connections.
    rate_targets = [None if w.endswith(" 64 connections") else 1.0 for w in workloads]
    series = [("requests/s: registryd / nginx", rates, rate_targets), ("p99: nginx / registryd", latencies, [1 / 1.5] * len(workloads))]
    paired_bars(axis, workloads, series, lambda value: (value + 0.01, f"×{value:.2f}"))
    axis.set_xlim(0, max(rates + latencies) * 1.15)
    axis.set_xlabel("registryd (access log on) against nginx (access log on); black ticks: targets")
    axis.set_title(f"many connections, {date}")
    handles, labels = axis.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)
    figure.tight_layout(rect=(0, 0.1, 1, 1))
    figure.savefig(path, dpi=110)


def write(results, root):
    document = os.path.join(root, "docs", "PERFORMANCE.md")
    text = open(document).read()
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(document, "w") as f:
        f.write(head + begin + "\n" + table(results) + "\n" + end + tail)
    chart(results, os.path.join(root, "docs", "performance-ratios.png"))
    if results.get("connections"):
        connections_chart(results["connections"], os.path.join(root, "docs", "performance-connections.png"), results["date"])
    print(f"wrote {document} and the charts in docs/")
