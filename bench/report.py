"""Results as a console table, markdown (bench/results/*.md) and raw JSON (bench/results/*.json)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from bench.machine import markdown as machine_markdown

RESULTS_DIR = Path(__file__).resolve().parent / "results"

CPU_GROUPS = (
    "client", "envoy", "envoy_noauth", "identity", "profile", "fastapi", "fastapi_naive", "postgres", "redis",
    "other",
)  # fmt: skip


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def _rows(result: dict, main: bool) -> list[tuple[str, int, dict]]:
    names = [n for n in result["labels"] if (n in result["main_paths"]) == main and n in result["paths"]]
    rows = []
    loads = result["config"].get("loads") or [str(c) for c in result["config"]["concurrencies"]]
    for load in loads:
        for name in names:
            cell = result["paths"][name].get(load)
            if cell:
                rows.append((name, load_label(load, result), cell))
    return rows


def load_label(load: str, result: dict) -> str:
    if load.endswith("/s"):
        return f"open loop {load}, <= {result['config'].get('open_max_in_flight', 32)} conn."
    return load


def table_lines(result: dict, main: bool = True) -> list[str]:
    header = "| path | in flight / load | req/s (median) | req/s min-max | p50 ms | p99 ms | errors |"
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|"]
    for name, concurrency, cell in _rows(result, main):
        lines.append(
            f"| {result['labels'][name]} | {concurrency} | {_fmt(cell['rps'])} | "
            f"{_fmt(cell['rps_min'], 0)}-{_fmt(cell['rps_max'], 0)} | {_fmt(cell['p50_ms'], 2)} | "
            f"{_fmt(cell['p99_ms'], 2)} | {cell['errors']} |"
        )
    return lines


def cpu_lines(result: dict) -> list[str]:
    cells = [c for p in result["paths"].values() for c in p.values()]
    groups = [g for g in CPU_GROUPS if any(g in c["cpu_us_per_request"] for c in cells)]
    lines = [
        "| path | in flight / load | " + " | ".join(groups) + " | sum (excl. other) | machine busy % |",
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


def analysis_lines(result: dict, concurrency: int = 32) -> list[str]:
    """Where the time went in this run, computed from its own figures (nothing hand-written)."""
    paths, ratios, c = result["paths"], result["ratios"], str(concurrency)

    def cell(name: str) -> dict:
        return paths.get(name, {}).get(c, {})

    def cpu(name: str, group: str) -> float:
        return cell(name).get("cpu_us_per_request", {}).get(group, 0.0)

    def ratio(key: str) -> str:
        value = ratios.get(key, {}).get("median")
        return "-" if value is None else f"{value:.2f}"

    lines = []
    rest, peer, direct = cell("envoy_rest"), cell("fastapi"), cell("grpc_direct")
    stolen = other_cores(result)
    if stolen is not None:
        lines.append(
            f"- **Machine noise:** CPU outside the named groups (other people's processes, kernel threads, "
            f"the enrichment service) took a median of {stolen:.2f} cores during the cells (highest per-path median "
            f"{max_other_cores(result):.2f})"
            + (
                ": a busy run - paired ratios hold up better than single figures, and paths that need the second "
                "core (Envoy) suffer most."
                if stolen >= 0.2
                else ": a quiet run."
            )
        )
    if rest and peer and direct:
        service_cores = direct.get("rps", 0) * cpu("grpc_direct", "profile") / 1e6
        peer_cores = peer.get("rps", 0) * cpu("fastapi", "fastapi") / 1e6
        predicted = cpu("fastapi", "fastapi") / cpu("grpc_direct", "profile") if cpu("grpc_direct", "profile") else 0
        busy = rest.get("machine_busy_pct", 0)
        others = (
            f"Envoy ({cpu('envoy_rest', 'envoy'):,.0f} us/request, multi-threaded), Postgres "
            f"({cpu('envoy_rest', 'postgres'):,.0f} us) and the client ({cpu('envoy_rest', 'client'):,.0f} us) share "
            "the other core"
        )
        others += (
            ", and it is (nearly) full: on the REST path Envoy's threads compete with the service for CPU time."
            if busy >= 80
            else ", which still had room."
        )
        lines.append(
            f"- **The limit is one Python process on one core.** At {concurrency} in flight the profile service "
            f"used {service_cores:.2f} cores (req/s x its CPU per request, direct gRPC) and the peer "
            f"{peer_cores:.2f}; the machine was {busy:.0f}% / {peer.get('machine_busy_pct', 0):.0f}% busy (of "
            f"{result['machine']['nproc']} cores) during the Envoy REST / peer cells. Each server is one asyncio "
            "process, so its throughput is about 1 / (its CPU per request): "
            f"{cpu('fastapi', 'fastapi'):,.0f} us (peer) / {cpu('grpc_direct', 'profile'):,.0f} us (service) "
            f"predicts a ratio of {predicted:.2f}; measured {ratio(f'grpc_direct/fastapi@{concurrency}')} direct "
            f"and {ratio(f'envoy_rest/fastapi@{concurrency}')} through Envoy. {others}"
        )
    if direct and rest:
        lines.append(
            f"- **How the gap splits:** envoy_rest / fastapi = {ratio(f'envoy_rest/fastapi@{concurrency}')} is "
            f"(service stack: grpc_direct / fastapi = {ratio(f'grpc_direct/fastapi@{concurrency}')}) x (Envoy hop: "
            f"envoy_rest / grpc_direct = {ratio(f'envoy_rest/grpc_direct@{concurrency}')}) at {concurrency} in "
            f"flight; at 1 in flight {ratio('grpc_direct/fastapi@1')} x {ratio('envoy_rest/grpc_direct@1')}. "
            f"The service spends {cpu('grpc_direct', 'profile'):,.0f} us CPU per GetProfile against the peer's "
            f"{cpu('fastapi', 'fastapi'):,.0f} us for the same token check, transaction and query (same-work peer)."
        )
    if cell("grpc_envoy"):
        transcoding = cpu("envoy_rest", "envoy") - cpu("grpc_envoy", "envoy")
        lines.append(
            f"- **Envoy's share:** {cpu('envoy_rest', 'envoy'):,.0f} us CPU per REST request; gRPC through the same "
            f"Envoy costs it {cpu('grpc_envoy', 'envoy'):,.0f} us, so JSON transcoding + HTTP/1.1 is about "
            f"{transcoding:,.0f} us of it. It runs on Envoy's own threads, so it costs throughput once the "
            "second core is full."
        )
    if cell("envoy_rest_noauth"):
        noauth = ratios.get(f"envoy_rest_noauth/envoy_rest@{concurrency}", {})
        spread = f"{noauth.get('min', 0):.2f}-{noauth.get('max', 0):.2f} over rounds"
        verdict = (
            "within the round-to-round spread"
            if noauth and noauth["min"] <= 1.0 <= noauth["max"]
            else "outside the round-to-round spread"
        )
        lines.append(
            f"- **Edge auth + rate limits:** the same config without jwt_authn and the rate-limit filters gives "
            f"{ratio(f'envoy_rest_noauth/envoy_rest@{concurrency}')}x the throughput of the mesh's Envoy ({spread}, "
            f"{verdict}); Envoy CPU {cpu('envoy_rest_noauth', 'envoy_noauth'):,.0f} vs "
            f"{cpu('envoy_rest', 'envoy'):,.0f} us per request, and identity (the global rate-limit service, asked "
            f"for sign-in and sign-up only) spends {cpu('envoy_rest', 'identity'):,.0f} us of its CPU per read (vs "
            f"{cpu('envoy_rest_noauth', 'identity'):,.0f} us without it). Latency: see 'Edge auth + rate limit "
            "cost'."
        )
    if cell("fastapi_naive"):
        lines.append(
            f"- **The peer as naively written** (JWT verified on every request, 6 round trips) reaches "
            f"{ratio(f'fastapi_naive/fastapi@{concurrency}')}x the same-work peer at {concurrency} in flight "
            f"({cpu('fastapi_naive', 'fastapi_naive'):,.0f} us CPU per request); the Envoy REST path reaches "
            f"{_quotient(ratios, f'envoy_rest/fastapi@{concurrency}', f'fastapi_naive/fastapi@{concurrency}')}x it."
        )
    if cell("envoy_rest_httpx"):
        lines.append(
            f"- **Client overhead:** `bench/http1.py` spends {cpu('envoy_rest', 'client'):,.0f} us of client CPU per "
            f"REST request, httpx {cpu('envoy_rest_httpx', 'client'):,.0f} us on the same path; with httpx the same "
            f"Envoy path measured {cell('envoy_rest_httpx').get('rps', 0):,.0f} req/s instead of "
            f"{rest.get('rps', 0):,.0f} (p99 {cell('envoy_rest_httpx').get('p99_ms', 0):,.0f} ms): httpx would "
            "measure itself. grpc.aio's client costs "
            f"{cpu('grpc_direct', 'client'):,.0f} us per call, which the gRPC rows carry."
        )
    open_loads = [load for load in result["config"].get("loads", []) if load.endswith("/s")]
    for load in open_loads:
        row = {name: paths.get(name, {}).get(load) for name in ("envoy_rest", "grpc_direct", "fastapi")}
        if all(row.values()):
            lines.append(
                f"- **Latency at a fixed {load} (open loop):** p50 / p99 = {row['envoy_rest']['p50_ms']:.1f} / "
                f"{row['envoy_rest']['p99_ms']:.1f} ms through Envoy REST, {row['grpc_direct']['p50_ms']:.1f} / "
                f"{row['grpc_direct']['p99_ms']:.1f} ms direct gRPC, {row['fastapi']['p50_ms']:.1f} / "
                f"{row['fastapi']['p99_ms']:.1f} ms for the peer."
            )
    if peer:
        needed = concurrency / (GOAL_P99_MS_FOR_NOTE / 1000)
        lines.append(
            f"- **The p99 target at {concurrency} in flight is a throughput target.** With {concurrency} requests "
            f"always in flight, mean latency = {concurrency} / throughput (Little's law), so p99 <= "
            f"{GOAL_P99_MS_FOR_NOTE:g} ms needs at least {needed:,.0f} req/s. The FastAPI peer itself reaches "
            f"{peer.get('rps', 0):,.0f} req/s here (p99 {peer.get('p99_ms', 0):,.1f} ms): on this machine no "
            "path meets the p99 part in a closed loop at 32 in flight."
        )
    return lines


GOAL_P99_MS_FOR_NOTE = 20.0


def _other_cores_per_cell(result: dict) -> list[float]:
    return [
        c["cpu_us_per_request"].get("other", 0.0) * c["ok"] / c["seconds"] / 1e6
        for c in result.get("cells", [])
        if c.get("ok") and c.get("seconds")
    ]


def other_cores(result: dict) -> float | None:
    """Median cores used by processes outside the benchmark (the `other` CPU group) over all cells."""
    values = _other_cores_per_cell(result)
    return statistics.median(values) if values else None


def max_other_cores(result: dict) -> float:
    by_path: dict[str, list[float]] = {}
    for c in result.get("cells", []):
        if c.get("ok") and c.get("seconds"):
            by_path.setdefault(c["path"], []).append(
                c["cpu_us_per_request"].get("other", 0.0) * c["ok"] / c["seconds"] / 1e6
            )
    return max((statistics.median(v) for v in by_path.values()), default=0.0)


def _quotient(ratios: dict, numerator: str, denominator: str) -> str:
    a, b = ratios.get(numerator, {}).get("median"), ratios.get(denominator, {}).get("median")
    return "-" if not a or not b else f"{a / b:.2f}"


def auth_cost_lines(result: dict) -> list[str]:
    cost = result.get("auth_cost") or {}
    if not cost:
        return []
    lines = [
        "| in flight / load | with: p50 ms | with: p99 ms | without: p50 ms | without: p99 ms | "
        "**added p50 ms** | **added p99 ms** | added p50 per round | req/s with / without |",
        "|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for load, c in cost.items():
        lines.append(
            f"| {load_label(load, result)} | {c['with_p50_ms']:.2f} | {c['with_p99_ms']:.2f} | "
            f"{c['without_p50_ms']:.2f} | {c['without_p99_ms']:.2f} | **{c['added_p50_ms']:+.2f}** | "
            f"**{c['added_p99_ms']:+.2f}** | {', '.join(f'{v:+.2f}' for v in c['added_p50_ms_per_round'])} | "
            f"{_fmt(c['with_rps'])} / {_fmt(c['without_rps'])} |"
        )
    return lines


def print_get_profile(result: dict) -> None:
    print("\nGET profile by id - medians across rounds")
    print("\n".join(table_lines(result, True)))
    print("\ndiagnostic paths")
    print("\n".join(table_lines(result, False)))
    if result.get("auth_cost"):
        print("\nedge auth + rate limit cost (envoy_rest minus envoy_rest_noauth, medians across rounds)")
        print("\n".join(auth_cost_lines(result)))
    print("\nratios")
    print("\n".join(ratio_lines(result)))
    print("\nwhere the time goes")
    print("\n".join(analysis_lines(result)))
    goal = result["goal"]
    print(
        f"\ngoal: {goal['statement']}\n  -> REST/peer {goal['ratio']}, gRPC/peer {goal['grpc_ratio']}, "
        f"open-loop p99 gap {goal['p99_gap_ms']} ms: {'MET' if goal['met'] else 'NOT MET'}"
    )


def get_profile_markdown(result: dict, machine: dict, findings: str = "") -> str:
    config, setup, goal = result["config"], result["setup"], result["goal"]
    open_loads = [load for load in config.get("loads", []) if load.endswith("/s")]
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
        "uvloop + httptools + access log, asyncpg pool of 10 like the service) on the same Postgres, with the "
        "edge's per-address and per-user limits (the `limits` library, fixed windows on the mesh's Redis, the "
        "mesh's values) and, for diagnosis, a second peer in its naive mode and a second Envoy with the mesh's "
        "rendered config minus jwt_authn and the rate-limit filters (`envoy_rest_noauth`). The services run at "
        "their default log level (INFO: no line per successful RPC).",
        "- **Same work on every path.** The peer (same-work mode) checks the token with the service's own "
        "`TokenVerifier` (PyJWT, EdDSA, the mesh's JWKS, verified tokens cached until expiry) and runs the "
        "service's own transaction and SQL, imported from `services/common/db.py` and `services/profile/store.py`: "
        "BEGIN + `set_config('role','profile_app')` + `set_config('app.user_id', caller)` in one round trip (RLS "
        "applies), one query for the profile with its skills and endorsement counts, COMMIT. Only the stack "
        "differs: Envoy + grpc.aio + protobuf vs uvicorn + FastAPI + JSON. The naive peer (diagnostic) verifies "
        "the JWT on every request and runs BEGIN, set_config, 3 selects, COMMIT. Payload parity: "
        f"{parity['identical']}/{parity['checked']} sampled profiles returned identical JSON documents through "
        f"Envoy and the peer (naive peer: {parity.get('naive_identical', '-')}/{parity['checked']}; median body "
        f"{parity['median_body_bytes'].get('envoy_rest', '?')} vs {parity['median_body_bytes'].get('fastapi', '?')} "
        "bytes).",
        f"- Closed loop: N workers with one request in flight each (N = in flight), for a fixed time "
        f"({config['seconds_per_cell']['1']} s at 1, {config['seconds_per_cell']['n']} s at 32) and at most "
        f"{config['max_requests_per_cell']:,} requests per cell; readers are 64 different bench users, profile ids "
        f"in a shuffled order that is the same for every path within a round. Warm-up "
        f"{config['warmup_seconds']} s per path first.",
        f"- Open loop (main paths): requests arrive at a fixed rate ({', '.join(open_loads) or '-'}, "
        f"Poisson, fixed seed) for {config['seconds_per_cell'].get('open', '-')} s on at most "
        f"{config.get('open_max_in_flight', 32)} connections; latency counts from the scheduled arrival (waiting "
        "for a free connection included). This shows latency at a load every path can carry. Its req/s column is "
        "the arrivals actually drawn (the same fixed-seed draw for every path), not a capacity.",
        f"- Interleaved: {config['rounds']} rounds; each round runs every path at every concurrency, path order "
        "rotated per round. Figures are medians across rounds; ratios are paired per round (same round, "
        "adjacent in time) and their median is quoted.",
        "- Clients (one process, `python -m bench`, standard asyncio loop): HTTP/1.1 paths use `bench/http1.py` "
        "(one keep-alive connection per worker, httptools parser); gRPC paths use `grpc.aio` (one channel, calls "
        "multiplexed). **The client shares the 2 cores with every server**: its CPU per request is in the CPU table, "
        "and the httpx row shows what a heavier client costs.",
        "- CPU per request: user+system CPU of each process group (from /proc, all threads and child processes) over "
        "the cell divided by the successful requests. `other` is machine busy time not in a named group (other "
        "processes on the box, kernel softirq, the enrichment service).",
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
        f"This run: REST / peer **{goal['ratio']}** ({'met' if goal['ratio_met'] else 'missed'}), direct gRPC / "
        f"peer **{goal['grpc_ratio']}** ({'met' if goal['grpc_met'] else 'missed'}), REST p99 minus the peer's at "
        f"the open-loop rate **{goal['p99_gap_ms']} ms** ({'met' if goal['p99_met'] else 'missed'}) - goal "
        f"**{'MET' if goal['met'] else 'NOT MET'}**.",
        "",
        "### Edge auth + rate limit cost",
        "",
        "What `envoy.filters.http.jwt_authn` (token verified at the edge, EdDSA against identity's JWKS) and "
        "the rate limits (`local_ratelimit` token buckets per address and per user in Envoy; the global "
        "`ratelimit` call to identity is made for sign-in and sign-up only) add to an authenticated "
        "`GET /v1/profiles/{id}`: `envoy_rest` (the mesh's Envoy) against "
        "`envoy_rest_noauth`, a second Envoy from the same rendered config minus those filters, their "
        "local-reply mappers and the `edge_jwks` cluster (the profile service still verifies the token), "
        "measured in the same rounds. Added = with minus without, per round (same round, same ids), median "
        "across rounds. The bench mesh lifts the limits (`deploy/local/ephemeral.py` UNLIMITED_RATES) so "
        "nothing is refused, but every request is counted. At 32 in flight the closed-loop "
        "latency follows throughput (Little's law); the open-loop row is latency at a load both carry.",
        "",
        *auth_cost_lines(result),
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
    lines += ["## Where the time goes (computed from this run)", "", *analysis_lines(result), ""]
    if findings:
        lines += [findings.strip(), ""]
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
        "| letters/digits typed | queries | median us | p99 us |",
        "|---|---:|---:|---:|",
        *(
            f"| {bucket} | {v['queries']} | {v['median_us']} | {v['p99_us']} |"
            for bucket, v in result.get("per_length", {}).items()
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
