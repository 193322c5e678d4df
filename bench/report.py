"""Results as a console table, markdown (bench/results/*.md) and raw JSON (bench/results/*.json)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.machine import markdown as machine_markdown

RESULTS_DIR = Path(__file__).resolve().parent / "results"

CPU_GROUPS = ("client", "envoy", "envoy_nolog", "profile", "fastapi", "postgres", "other")


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def _rows(result: dict, main: bool) -> list[tuple[str, int, dict]]:
    names = [n for n in result["labels"] if (n in result["main_paths"]) == main and n in result["paths"]]
    rows = []
    for concurrency in result["config"]["concurrencies"]:
        for name in names:
            cell = result["paths"][name].get(str(concurrency))
            if cell:
                rows.append((name, concurrency, cell))
    return rows


def table_lines(result: dict, main: bool = True) -> list[str]:
    header = "| path | in flight | req/s (median) | req/s min-max | p50 ms | p99 ms | errors |"
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|"]
    for name, concurrency, cell in _rows(result, main):
        lines.append(
            f"| {result['labels'][name]} | {concurrency} | {_fmt(cell['rps'])} | "
            f"{_fmt(cell['rps_min'], 0)}-{_fmt(cell['rps_max'], 0)} | {_fmt(cell['p50_ms'], 2)} | "
            f"{_fmt(cell['p99_ms'], 2)} | {cell['errors']} |"
        )
    return lines


def cpu_lines(result: dict) -> list[str]:
    groups = [g for g in CPU_GROUPS if any(g in c["cpu_us_per_request"] for p in result["paths"].values() for c in p.values())]
    lines = [
        "| path | in flight | " + " | ".join(groups) + " | sum (excl. other) | machine busy % |",
        "|---|---:|" + "---:|" * (len(groups) + 2),
    ]
    for main in (True, False):
        for name, concurrency, cell in _rows(result, main):
            cpu = cell["cpu_us_per_request"]
            total = sum(v for k, v in cpu.items() if k in groups and k != "other")
            lines.append(
                f"| {result['labels'][name]} | {concurrency} | "
                + " | ".join(_fmt(cpu.get(g), 0) for g in groups)
                + f" | {_fmt(total, 0)} | {_fmt(cell['machine_busy_pct'])} |"
            )
    return lines


def ratio_lines(result: dict) -> list[str]:
    lines = ["| ratio (req/s, paired per round) | median | min-max over rounds |", "|---|---:|---:|"]
    for key, ratio in result["ratios"].items():
        lines.append(f"| {key} | {ratio['median']:.2f} | {ratio['min']:.2f}-{ratio['max']:.2f} |")
    return lines


def print_get_profile(result: dict) -> None:
    print("\nGET profile by id - medians across rounds")
    print("\n".join(table_lines(result, True)))
    print("\ndiagnostic paths")
    print("\n".join(table_lines(result, False)))
    print("\nratios")
    print("\n".join(ratio_lines(result)))
    goal = result["goal"]
    print(
        f"\ngoal: {goal['statement']}\n  -> ratio {goal['ratio']}, p99 {goal['p99_ms']} ms: "
        f"{'MET' if goal['met'] else 'NOT MET'}"
    )


def get_profile_markdown(result: dict, machine: dict, findings: str = "") -> str:
    config, setup, goal = result["config"], result["setup"], result["goal"]
    parity = setup["parity"]
    r32 = result["ratios"].get("envoy_rest/fastapi@32", {})
    g32 = result["ratios"].get("grpc_direct/fastapi@32", {})
    r1 = result["ratios"].get("envoy_rest/fastapi@1", {})
    g1 = result["ratios"].get("grpc_direct/fastapi@1", {})
    lines = [
        "# GET profile by id: Envoy REST vs direct gRPC vs FastAPI peer",
        "",
        machine_markdown(machine),
        "## Method",
        "",
        f"- `make bench` (`python -m bench`) starts a throwaway mesh (`deploy.local.ephemeral.start_mesh`: embedded "
        f"Postgres 18 + pgvector, Redis, profile + enrichment services, Envoy, free ports), seeds "
        f"{setup['profiles']} profiles through gRPC (each by its own user, 2-8 skills, endorsements on ~30%; "
        f"{setup['seed_seconds']} s), starts the FastAPI peer (`bench/peer.py`: uvicorn, 1 worker, its defaults "
        f"uvloop + httptools + access log) on the same Postgres, and a second Envoy with the mesh's rendered config "
        f"minus the access log (diagnostic).",
        "- Every path reads the same rows with the same work: JWT (EdDSA) verified in the handler, one transaction "
        "per request that sets `role=profile_app` and `app.user_id` in one statement (RLS applies), then the "
        "profile row, its skills and the endorsement counts (3 queries, as `store.get_by_id`). Payload parity: "
        f"{parity['identical']}/{parity['checked']} sampled profiles returned identical JSON documents through "
        f"Envoy and the peer (median body {parity['median_body_bytes'].get('envoy_rest', '?')} vs "
        f"{parity['median_body_bytes'].get('fastapi', '?')} bytes).",
        f"- Closed loop: N workers with one request in flight each (N = in flight), for a fixed time "
        f"({config['seconds_per_cell']['1']} s at 1, {config['seconds_per_cell']['n']} s at 32) and at most "
        f"{config['max_requests_per_cell']:,} requests per cell; readers are 64 different bench users, profile ids "
        f"in a shuffled order that is the same for every path within a round. Warm-up "
        f"{config['warmup_seconds']} s per path first.",
        f"- Interleaved: {config['rounds']} rounds; each round runs every path at every concurrency, path order "
        "rotated per round. Figures are medians across rounds; ratios are paired per round (same round, "
        "adjacent in time) and their median is quoted.",
        "- Clients (one process, `python -m bench`, standard asyncio loop): HTTP/1.1 paths use `bench/http1.py` "
        "(one keep-alive connection per worker, httptools parser); gRPC paths use `grpc.aio` (one channel, calls "
        "multiplexed). **The client shares the 2 cores with every server**: its CPU per request is in the CPU table, "
        "and the httpx row shows what a heavier client costs.",
        "- CPU per request: user+system CPU of each process group (from /proc, all threads and child processes) over "
        "the cell divided by the successful requests. `other` is machine busy time not in a named group (other "
        "processes on the box, kernel softirq, Redis, the enrichment service).",
        "",
        "## Results",
        "",
        *table_lines(result, True),
        "",
        f"**Ratios (throughput, paired per round, median):** Envoy REST / FastAPI = **{r32.get('median', '-')}** at 32 "
        f"in flight ({r1.get('median', '-')} at 1); direct gRPC / FastAPI = **{g32.get('median', '-')}** at 32 "
        f"({g1.get('median', '-')} at 1).",
        "",
        "### Goal",
        "",
        f"> {goal['statement']}",
        "",
        f"This run: ratio **{goal['ratio']}** ({'met' if goal['ratio_met'] else 'missed'}), p99 at 32 in flight "
        f"**{goal['p99_ms']} ms** ({'met' if goal['p99_met'] else 'missed'}) - goal "
        f"**{'MET' if goal['met'] else 'NOT MET'}**.",
        "",
        "### Diagnostic paths",
        "",
        *table_lines(result, False),
        "",
        *ratio_lines(result),
        "",
        "### CPU per request (microseconds, median across rounds)",
        "",
        *cpu_lines(result),
        "",
    ]
    if findings:
        lines += ["## Findings", "", findings.strip(), ""]
    lines += [
        "## Raw data",
        "",
        "`bench/results/get_profile.json`: every cell of every round (req/s, p50/p90/p99/max, errors, CPU per "
        "request per process group, machine busy %), the summary and the machine description.",
        "",
    ]
    return "\n".join(lines)


def taxonomy_markdown(result: dict, machine: dict) -> str:
    lines = [
        "# Skills taxonomy search",
        "",
        machine_markdown(machine),
        "## Method",
        "",
        f"- `services/enrichment/taxonomy.py` `default_taxonomy().search(q)` in process (no gRPC), "
        f"{result['skills']} skills; {result['queries']} queries built from the bundled data with a fixed seed, "
        f"mix: {', '.join(f'{k} {v}' for k, v in result['mix'].items())}; {result['queries_with_results']} of them "
        "return at least one hit.",
        f"- Each query timed on its own (`perf_counter_ns`), {result['repeats']} repeats of the whole set after one "
        "warm-up pass; figures are medians across repeats. Run before the mesh starts, in the bench process.",
        f"- Taxonomy load (first `default_taxonomy()`): {result['load_ms']} ms.",
        "",
        "## Results",
        "",
        "| metric | value |",
        "|---|---:|",
        f"| median per query | {result['median_us']} us |",
        f"| mean per query | {result['mean_us']} us |",
        f"| p99 per query | {result['p99_us']} us |",
        f"| queries per second (one thread) | {result['queries_per_second']:,} |",
        "",
        "| query kind | median us | p99 us |",
        "|---|---:|---:|",
        *(
            f"| {kind} | {result['per_kind_median_us'][kind]} | {result['per_kind_p99_us'][kind]} |"
            for kind in result["per_kind_median_us"]
        ),
        "",
        "| repeat | median us | mean us | p99 us | total ms |",
        "|---:|---:|---:|---:|---:|",
        *(
            f"| {r['repeat']} | {r['median_us']} | {r['mean_us']} | {r['p99_us']} | {r['total_ms']} |"
            for r in result["per_repeat"]
        ),
        "",
        f"Example queries: {', '.join(repr(q) for q in result['examples'])}",
        "",
    ]
    return "\n".join(lines)


def write(name: str, markdown: str, data: dict) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}.md").write_text(markdown)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
