#!/usr/bin/env python3
"""Turns bench/results/* (written by bench/run.sh) into bench/report.md,
bench/results/summary.csv and the throughput-vs-connections chart.

Repeated measurements are summarised by their median; the spread (min-max)
is shown next to it. Ratios compare medians taken in the same run.
"""

import argparse
import csv
import json
import statistics
from pathlib import Path

MIB = 1024.0


def jsonl(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def wrk_stats(rows, phase, target, conns):
    runs = [r for r in rows if r["phase"] == phase and r["target"] == target and r["conns"] == conns]
    if not runs:
        return None
    rps = [r["wrk"]["rps"] for r in runs]
    errors = sum(sum(r["wrk"]["errors"].values()) for r in runs)
    return {
        "n": len(runs),
        "rps": med(rps),
        "rps_min": min(rps),
        "rps_max": max(rps),
        "p50": med([r["wrk"]["latency_us"]["p50"] for r in runs]),
        "p99": med([r["wrk"]["latency_us"]["p99"] for r in runs]),
        "p999": med([r["wrk"]["latency_us"]["p999"] for r in runs]),
        "requests": sum(r["wrk"]["requests"] for r in runs),
        "errors": errors,
        "cpu": med([r.get("server_cpu_us_per_req", float("nan")) for r in runs]),
        "busy": max(r["busy_before_pct"] for r in runs),
        "load": max(r["load1"] for r in runs),
    }


def fmt_rps(x):
    return f"{x:,.0f}"


def fmt_us(x):
    return f"{x / 1000:.2f} ms" if x >= 1000 else f"{x:.0f} µs"


def verdict(ok):
    return "**met**" if ok else "**missed**"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--report", type=Path, required=True)
    ap.add_argument("--chart", type=Path, required=True)
    args = ap.parse_args()
    res = args.results

    env = json.loads((res / "env.json").read_text())
    binary = json.loads((res / "binary.json").read_text())
    bodies = json.loads((res / "bodies.json").read_text())
    wrk = jsonl(res / "wrk.jsonl")
    ossl = jsonl(res / "openssl.jsonl")
    cold = {r["label"]: r for r in jsonl(res / "coldstart.jsonl")}
    mem = {r["label"]: r for r in jsonl(res / "memory.jsonl")}

    c = {}
    for phase, target in [("cached", "miemu"), ("cached", "floor"), ("mint", "mint"), ("mint", "peer")]:
        for conns in (64, 1):
            c[(target, conns)] = wrk_stats(wrk, phase, target, conns)
    sign = [r["sign_per_s"] for r in ossl]
    sign_med = med(sign)

    def cold_ms(label):
        return cold[label]["result"]["median_ms"] if label in cold else float("nan")

    def mem_mib(label, field="hwm_kib"):
        return mem[label][field] / MIB if label in mem else float("nan")

    m64, f64, mint64, peer64 = c[("miemu", 64)], c[("floor", 64)], c[("mint", 64)], c[("peer", 64)]
    targets = [
        ("cached path req/s at 64 connections", "≥ 0.9 × minimal axum",
         f"{fmt_rps(m64['rps'])} vs {fmt_rps(f64['rps'])}", m64["rps"] / f64["rps"], 0.9, ">="),
        ("minting req/s, cache off (64 connections)", "≥ 0.85 × `openssl speed -multi 2 rsa2048` sign/s",
         f"{fmt_rps(mint64['rps'])} vs {fmt_rps(sign_med)}", mint64["rps"] / sign_med, 0.85, ">="),
        ("cold start with key on disk", "≤ 3 × minimal axum's",
         f"{cold_ms('miemu-key-on-disk'):.2f} ms vs {cold_ms('floor'):.2f} ms",
         cold_ms("miemu-key-on-disk") / cold_ms("floor"), 3.0, "<="),
        ("cold start with key on disk", "under 15 ms", f"{cold_ms('miemu-key-on-disk'):.2f} ms",
         cold_ms("miemu-key-on-disk"), 15.0, "<"),
        ("cold start generating a key", "under 250 ms", f"{cold_ms('miemu-key-generated'):.2f} ms",
         cold_ms("miemu-key-generated"), 250.0, "<"),
        ("idle RSS (peak, VmHWM)", "≤ 8 MiB", f"{mem_mib('miemu-idle'):.2f} MiB", mem_mib("miemu-idle"), 8.0, "<="),
        ("RSS under load (1) (peak, VmHWM)", "≤ 16 MiB", f"{mem_mib('miemu-load'):.2f} MiB",
         mem_mib("miemu-load"), 16.0, "<="),
        ("vs `oauth2-mock-server`, minting (64 conns)", "≥ 2.5 × its req/s",
         f"{fmt_rps(mint64['rps'])} vs {fmt_rps(peer64['rps'])}", mint64["rps"] / peer64["rps"], 2.5, ">="),
        ("vs `oauth2-mock-server`, cached (64 conns)", "≥ 30 × its req/s",
         f"{fmt_rps(m64['rps'])} vs {fmt_rps(peer64['rps'])}", m64["rps"] / peer64["rps"], 30.0, ">="),
    ]

    out = []
    w = out.append
    w("# miemu benchmark report")
    w("")
    w(f"Written by `bench/run.sh` on {env['date']}; miemu commit `{env['miemu_commit']}`. "
      "Medians of the repeated runs; every ratio compares figures measured side by side in this one run.")
    w("")
    w(f"- machine: {env['cpus']} × {env['cpu']}, {env['mem_gib']} GiB, Linux {env['kernel']}; "
      f"load average at start {env['load_at_start']}")
    w(f"- tools: {env['rustc']}; {env['wrk']}; {env['openssl']}; node {env['node']}; {env['peer']}")
    w(f"- settings: wrk {env['duration_s']} s per run, {env['repeats']} repeats interleaved "
      f"(miemu, floor, miemu, floor, ...), 2 threads (1 at 1 connection); sweep {env['sweep_duration_s']} s per point; "
      f"cold start median of {env['cold_runs']} runs")
    w(f"- response bodies: miemu {bodies['miemu_body_bytes']} B, floor {bodies['floor_body_bytes']} B, "
      f"peer {bodies['peer_body_bytes']} B")
    w("")
    w("## Targets (issue 6)")
    w("")
    w("| figure | target | measured | ratio / value | verdict |")
    w("|---|---|---|---|---|")
    summary_rows = []
    for name, target, measured, value, limit, op in targets:
        ok = {">=": value >= limit, "<=": value <= limit, "<": value < limit}[op]
        shown = f"{value:.2f} ×" if "×" in target else f"{value:.2f}"
        w(f"| {name} | {target} | {measured} | {shown} | {verdict(ok)} |")
        summary_rows.append([name, target, measured, f"{value:.4f}", "met" if ok else "missed"])
    w("")

    w("## 1. Cached token path and 2. minting path (wrk)")
    w("")
    w("| server | path | conns | req/s (median) | min–max | p50 | p99 | p99.9 | server CPU / req | requests | errors | busy before |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    names = {"miemu": ("miemu", "cached"), "floor": ("axum floor", "fixed body"),
             "mint": ("miemu", "minting (cache off)"), "peer": ("oauth2-mock-server", "client credentials")}
    for target in ("miemu", "floor", "mint", "peer"):
        for conns in (64, 1):
            s = c[(target, conns)]
            if not s:
                continue
            w(f"| {names[target][0]} | {names[target][1]} | {conns} | {fmt_rps(s['rps'])} | "
              f"{fmt_rps(s['rps_min'])}–{fmt_rps(s['rps_max'])} | {fmt_us(s['p50'])} | {fmt_us(s['p99'])} | "
              f"{fmt_us(s['p999'])} | {s['cpu']:.1f} µs | {s['requests']:,} | {s['errors']} | {s['busy']}% |")
    w("")
    m1, f1 = c[("miemu", 1)], c[("floor", 1)]
    w("*server CPU / req* is the server process's user + system CPU time during the run divided by the "
      "requests it answered (from /proc/PID/stat): unlike req/s it barely moves when other work shares the machine. "
      "*busy before* is the highest share of CPU the rest of the machine used in the second before a run "
      "(the script waits up to QUIET_WAIT s for it to drop under QUIET_BUSY %).")
    w("")
    mc, fc = c[("miemu", 64)]["cpu"], c[("floor", 64)]["cpu"]
    w(f"Server CPU per cached request at 64 connections: miemu {mc:.1f} µs, floor {fc:.1f} µs ({mc / fc:.2f} ×).")
    w("")
    w(f"At 1 connection miemu's cached path does {m1['rps'] / f1['rps']:.2f} × the floor's req/s "
      f"(p50 {fmt_us(m1['p50'])} vs {fmt_us(f1['p50'])}, p99 {fmt_us(m1['p99'])} vs {fmt_us(f1['p99'])}).")
    w("")
    w(f"`openssl speed -seconds 5 -multi 2 rsa2048`: {', '.join(fmt_rps(x) for x in sign)} sign/s "
      f"(median {fmt_rps(sign_med)}).")
    w("")

    w("## 3. Cold start (exec → first 200 on a token request)")
    w("")
    w("| what | median | min | max | × floor | busy before |")
    w("|---|---|---|---|---|---|")
    for label, r in cold.items():
        rr = r["result"]
        w(f"| {label} | {rr['median_ms']:.2f} ms | {rr['min_ms']:.2f} ms | {rr['max_ms']:.2f} ms | "
          f"{rr['median_ms'] / cold_ms('floor'):.1f} | {r['busy_before_pct']}% |")
    w("")

    w("## 4. Memory and size")
    w("")
    w("| process | when | VmRSS | VmHWM (peak) |")
    w("|---|---|---|---|")
    whens = {"idle": "idle (after start and one token request)", "load": "after the 64- and 1-connection runs",
             "sweep": "after the sweep (up to 256 connections)"}
    for label, r in mem.items():
        who, when = label.rsplit("-", 1)
        who = {"miemu": "miemu (cache on)", "mint": "miemu (cache off)", "floor": "axum floor",
               "peer": "oauth2-mock-server"}[who]
        w(f"| {who} | {whens[when]} | {r['rss_kib'] / MIB:.2f} MiB | {r['hwm_kib'] / MIB:.2f} MiB |")
    w("")
    w(f"Release binary (stripped): miemu {binary['miemu_bytes'] / MIB / MIB:.2f} MiB, "
      f"floor {binary['floor_bytes'] / MIB / MIB:.2f} MiB.")
    w("")

    w("## 6. Throughput vs connections")
    w("")
    conns_list = sorted({r["conns"] for r in wrk if r["phase"] == "sweep"})
    series = [("miemu", "miemu (cached)"), ("floor", "axum floor"), ("mint", "miemu (minting)"),
              ("peer", "oauth2-mock-server")]
    w("| conns | " + " | ".join(label for _, label in series) + " |")
    w("|---" * (len(series) + 1) + "|")
    sweep = {}
    for t, _ in series:
        for n in conns_list:
            s = wrk_stats(wrk, "sweep", t, n)
            sweep[(t, n)] = s["rps"] if s else float("nan")
    for n in conns_list:
        w(f"| {n} | " + " | ".join(fmt_rps(sweep[(t, n)]) for t, _ in series) + " |")
    w("")
    w(f"![throughput vs connections](../docs/{args.chart.name})")
    w("")
    args.report.write_text("\n".join(out))

    with open(res / "summary.csv", "w", newline="") as f:
        cw = csv.writer(f)
        cw.writerow(["figure", "target", "measured", "value", "verdict"])
        cw.writerows(summary_rows)
    with open(res / "sweep.csv", "w", newline="") as f:
        cw = csv.writer(f)
        cw.writerow(["conns"] + [t for t, _ in series])
        for n in conns_list:
            cw.writerow([n] + [f"{sweep[(t, n)]:.1f}" for t, _ in series])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    styles = {"miemu": ("C0", "o", "-"), "floor": ("C7", "s", "--"), "mint": ("C1", "^", "-"),
              "peer": ("C3", "D", ":")}
    for t, label in series:
        ys = [sweep[(t, n)] for n in conns_list]
        color, marker, ls = styles[t]
        ax.plot(conns_list, ys, color=color, marker=marker, linestyle=ls, label=label)
    if sign:
        ax.axhline(sign_med, color="C2", linewidth=1, linestyle="-.",
                   label="openssl speed -multi 2 rsa2048 (sign/s)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(conns_list)
    ax.set_xticklabels([str(n) for n in conns_list])
    ax.set_xlabel("concurrent connections (wrk)")
    ax.set_ylabel("requests per second (log scale)")
    ax.set_title(f"Token endpoint throughput, {env['cpus']} cores, loopback "
                 f"({env['sweep_duration_s']} s per point)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.chart)


if __name__ == "__main__":
    main()
