"""The benchmark's output: terminal tables, the raw JSON, and the summary in docs/benchmarks.md."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"

LABELS = {
    "cspgraph": "cspgraph sync (SQLite)",
    "cspgraph-fetch": "cspgraph client, fetch only",
    "raw-delta": "raw limit, sync's plan",
    "raw-list": "raw limit, list plan",
    "raw-httpx-delta": "raw client on httpx, sync's plan",
    "sample": "docs sample (MSAL+requests)",
    "sdk": "msgraph-sdk",
}


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "-"
    return f"{value / reference:.2f}×"


def run_rows(runs: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    reference = next((r for r in runs if r["runner"] == "cspgraph" and r["ok"]), None)
    ref_wall = reference["wall_s"] if reference else None
    ref_cpu10k = reference["cpu_s_per_10k_items"] if reference else None
    header = [
        "client", "customers", "wall s", "client CPU s", "CPU s / 10k items",
        "work CPU s / 10k", "peak RSS MB", "emulator CPU s",
        "requests", "429s", "items", "complete", "wall ÷ cspgraph", "CPU/item ÷ cspgraph",
    ]  # fmt: skip
    rows = []
    for r in runs:
        label = LABELS.get(r["runner"], r["runner"])
        wall, cpu, requests, customers = (
            r["wall_s"],
            r["cpu_s"],
            r["requests_graph"],
            r["customers"],
        )
        items = r["items"]
        if r.get("sampled"):
            s = r["scaled"]
            label += f" ({r['customers']}-customer sample, scaled ×{r['scale_factor']:.1f})"
            wall, cpu, requests, customers, items = (
                s["wall_s"], s["cpu_s"], s["requests_graph"], s["customers"], s["items"]
            )  # fmt: skip
        rows.append(
            [
                label,
                _fmt(customers),
                _fmt(wall),
                _fmt(cpu),
                _fmt(r["cpu_s_per_10k_items"], 3),
                _fmt(r.get("work_cpu_s_per_10k_items"), 3),
                _fmt(r["peak_rss_mb"], 0),
                _fmt(r.get("emulator_cpu_s")) + (" (sample)" if r.get("sampled") else ""),
                _fmt(requests),
                _fmt(r["throttled_429"]),
                _fmt(items),
                "yes" if r["ok"] else "NO: " + "; ".join(r["problems"])[:120],
                _ratio(wall, ref_wall),
                _ratio(r["cpu_s_per_10k_items"], ref_cpu10k),
            ]
        )
    return header, rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)


def regime_text(regime: dict[str, Any], markdown: bool) -> str:
    header, rows = run_rows(regime["runs"])
    table = markdown_table(header, rows) if markdown else text_table(header, rows)
    loads = [r["load_before"][0] for r in regime["runs"]]
    parts = [table, ""]
    parts.append(
        f"Load average (1 min) before each run: {', '.join(f'{x:.2f}' for x in loads)} "
        f"on {regime.get('nproc', '?')} cores."
    )
    best = regime.get("best_possible")
    if best:
        parts.append(
            f"Best possible time: {best['seconds']:.2f} s = max(throughput limit "
            f"{best['throughput_limit_s']:.2f} s, budget arithmetic {best['budget_bound_s']:.2f} s "
            f"[{best['binding']}]; {best['resource_units']:,.0f} RU, "
            f"{best['intune_requests']:,.0f} Intune requests, budgets × {best['scale']})."
        )
    return "\n".join(parts)


def targets_text(targets: list[dict[str, Any]], markdown: bool) -> str:
    header = ["target", "measured", "status"]
    rows = [[t["target"], t["measured"], t["status"]] for t in targets]
    return markdown_table(header, rows) if markdown else text_table(header, rows)


def startup_text(startup: dict[str, Any], markdown: bool) -> str:
    header = ["command", "median wall s", "min wall s", "net of interpreter s"]
    net = startup.get("net_of_interpreter_s", {})
    rows = [
        [name, _fmt(v, 3), _fmt(startup["wall_min_s"][name], 3), _fmt(net.get(name), 3)]
        for name, v in startup["wall_median_s"].items()
    ]
    body = markdown_table(header, rows) if markdown else text_table(header, rows)
    it = startup.get("importtime_s", {})
    return body + (
        f"\n\n`-X importtime` cumulative: cspgraph {_fmt(it.get('cspgraph'), 3)} s, "
        f"msgraph {_fmt(it.get('msgraph'), 3)} s (median of 5)."
    )


def memory_text(memory: dict[str, Any], markdown: bool) -> str:
    header = ["customers", "items", "wall s", "client CPU s", "peak RSS MB", "complete"]
    rows = [
        [_fmt(m["customers"]), _fmt(m["items"]), _fmt(m["wall_s"]), _fmt(m["cpu_s"]),
         _fmt(m["peak_rss_mb"], 0), "yes" if m["ok"] else "NO"]
        for m in memory["runs"]
    ]  # fmt: skip
    body = markdown_table(header, rows) if markdown else text_table(header, rows)
    if memory.get("ratio") is not None:
        body += f"\n\nPeak RSS ratio (largest ÷ smallest fleet): {memory['ratio']:.2f}."
    return body


def rps_text(rps: dict[str, Any], markdown: bool) -> str:
    header = [
        "concurrency",
        "requests/s",
        "p50 ms",
        "p99 ms",
        "emulator CPU ms/request",
        "statuses",
    ]
    rows = [
        [str(r["concurrency"]), _fmt(r["rps"], 0), _fmt(r["p50_ms"]), _fmt(r["p99_ms"]),
         _fmt(r["emulator_cpu_ms_per_request"], 3), json.dumps(r["statuses"])]
        for r in rps["levels"]
    ]  # fmt: skip
    body = markdown_table(header, rows) if markdown else text_table(header, rows)
    return (
        f"`GET {rps['url']}` (a tenant with {rps['tenant_users']} users), keep-alive TLS, "
        f"token validated on every request:\n\n" + body
    )


def profile_text(profile: dict[str, Any], markdown: bool, top: int = 15) -> str:
    if profile.get("tool") == "py-spy":
        header = ["function (own time)", "own %", "inclusive %"]
        rows = [
            [r["function"], f"{r['share'] * 100:.1f}", f"{r['inclusive'] * 100:.1f}"]
            for r in profile["by_own"][:top]
        ]
        first = markdown_table(header, rows) if markdown else text_table(header, rows)
        header = ["function (inclusive time)", "inclusive %"]
        rows = [[r["function"], f"{r['share'] * 100:.1f}"] for r in profile["by_inclusive"][:top]]
        second = markdown_table(header, rows) if markdown else text_table(header, rows)
        return f"py-spy, {profile['samples']:,} samples.\n\n{first}\n\n{second}"
    header = ["function", "calls", "own s", "own %", "cumulative %"]
    rows = [
        [r["function"], _fmt(r["calls"]), _fmt(r["tottime_s"], 3),
         f"{(r['tottime_share'] or 0) * 100:.1f}", f"{(r['cumtime_share'] or 0) * 100:.1f}"]
        for r in profile["by_tottime"][:top]
    ]  # fmt: skip
    return "cProfile (inflates many small calls).\n\n" + (
        markdown_table(header, rows) if markdown else text_table(header, rows)
    )


def areas_text(profile: dict[str, Any], markdown: bool) -> str:
    header = ["area", "share of CPU samples"]
    rows = [[a["area"], f"{a['share'] * 100:.1f} %"] for a in profile.get("areas", [])]
    return markdown_table(header, rows) if markdown else text_table(header, rows)


def full_text(results: dict[str, Any], markdown: bool) -> str:
    m = results["machine"]
    h = "### " if markdown else "== "
    out = [
        f"{h}Run of {results['date']}",
        "",
        f"Command: `{results['command']}`. Machine: {m['nproc']} cores, {m['cpu_model']}, "
        f"Python {m['python']}, {m['memory_gb']} GB; load average at start "
        f"{', '.join(str(x) for x in m['load_at_start'])} (other jobs share this machine).",
        f"Fleet: {results['fleet']['customers']} customers, seed {results['fleet']['seed']}: "
        + ", ".join(f"{k} {v:,}" for k, v in results["fleet"]["totals"].items())
        + f" ({results['fleet']['items']:,} items).",
        "",
    ]
    for name, regime in results.get("regimes", {}).items():
        out += [f"{h}Throttling {name}", "", regime_text(regime, markdown), ""]
    if results.get("targets"):
        out += [f"{h}Targets", "", targets_text(results["targets"], markdown), ""]
    if results.get("startup"):
        out += [f"{h}Start-up", "", startup_text(results["startup"], markdown), ""]
    if results.get("memory"):
        out += [f"{h}Memory: peak RSS of cspgraph sync by fleet size", "",
                memory_text(results["memory"], markdown), ""]  # fmt: skip
    if results.get("rps"):
        out += [f"{h}Emulator: requests per second", "", rps_text(results["rps"], markdown), ""]
        if results["rps"].get("profile"):
            out += [
                f"{h}Emulator profile: pages of users, concurrency 16",
                "",
                profile_text(results["rps"]["profile"], markdown),
                "",
            ]
    if results.get("profile_sync") and not results["profile_sync"].get("error"):
        out += [
            f"{h}cspgraph sync profile (py-spy --gil: Python CPU only)",
            "",
            areas_text(results["profile_sync"], markdown),
            "",
            profile_text(results["profile_sync"], markdown),
            "",
        ]
    if results.get("profile_fleet"):
        out += [
            f"{h}Emulator profile: the raw client's fleet pull (the sync's plan)",
            "",
            profile_text(results["profile_fleet"], markdown),
            "",
        ]
    return "\n".join(out)


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def update_docs(results: dict[str, Any], path: Path = DOCS) -> None:
    """Replace the generated block of docs/benchmarks.md with this run's figures."""
    block = f"{BEGIN}\n{full_text(results, markdown=True)}\n{END}"
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text = text.rstrip() + f"\n\n{BEGIN}\n{END}\n"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    path.write_text(pattern.sub(lambda _m: block, text))
