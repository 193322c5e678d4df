"""What would make the Envoy REST path meet its goal? `python -m bench.variants` measures variants of the
profile service (bench/service_variant.py) and of its Envoy, each pair as its own processes (the mesh's
rendered edge config with the profile cluster pointed at the variant service), as REST through that Envoy,
against the FastAPI peer, interleaved in rounds like bench/get_profile.py.
Results: bench/results/get_profile_variants.{md,json}.

A variant is `SERVICE[@ENVOY]`: SERVICE is one or more of bench/service_variant.py's changes joined by '+'
(as-is, no-rpc-log, uvloop, asyncio-loop, canned); ENVOY one or more of:

  nolog    the edge config without the access log
  minimal  only the transcoder and the router filters (no CORS, grpc-web, ext_proc, access log)
  c1       envoy --concurrency 1 (one worker thread instead of one per core)

    python -m bench.variants                                 # the default set below (~3 minutes)
    python -m bench.variants as-is no-rpc-log@c1             # any set
    python -m bench.variants --rounds 5 as-is no-rpc-log     # more rounds (default 3)
"""

from __future__ import annotations

import asyncio
import sys
import time

from bench import report
from bench.edge import ExtraEnvoy, combine, minimal_filters, point_cluster, without_access_log
from bench.get_profile import Bench, Config, PathDef, summarize
from bench.load import Http1Session
from bench.machine import describe
from bench.machine import markdown as machine_markdown
from bench.service_variant import VARIANTS
from deploy.local.ephemeral import Mesh, serving, start_mesh
from deploy.local.infra import free_port
from services.common.settings import REPO_ROOT

DEFAULT = (
    "as-is",
    "no-rpc-log",
    "asyncio-loop",
    "canned",
    "as-is@nolog",
    "as-is@minimal",
    "as-is@c1",
    "no-rpc-log@c1",
)
ENVOY_CHANGES = {"nolog": without_access_log, "minimal": minimal_filters, "c1": None}


def parse(spec: str) -> tuple[str, list[str], list[str]]:
    service, _, envoy = spec.partition("@")
    service_parts = [p for p in service.split("+") if p] or ["as-is"]
    envoy_parts = [p for p in envoy.split("+") if p]
    for part in service_parts:
        if part not in VARIANTS:
            raise SystemExit(f"unknown service variant {part!r}; known: {', '.join(VARIANTS)}")
    for part in envoy_parts:
        if part not in ENVOY_CHANGES:
            raise SystemExit(f"unknown envoy variant {part!r}; known: {', '.join(ENVOY_CHANGES)}")
    return "+".join(service_parts), service_parts, envoy_parts


def start_variant(mesh: Mesh, service: str, timeout: float = 60) -> tuple[int, int]:
    """Starts the variant service; returns (pid, port)."""
    port = free_port()
    env = {"PROFILE_PORT": str(port), "PROFILE_METRICS_PORT": str(free_port())}
    if "no-rpc-log" in service.split("+"):
        env["OPENHR_LOG_LEVEL"] = "WARNING"
    name = f"variant-{service}"
    process = mesh.start_process(name, [sys.executable, "-m", "bench.service_variant", service], env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if serving(port):
            return process.pid, port
        if process.poll() is not None:
            break
        time.sleep(0.3)
    raise RuntimeError(f"variant {service} did not start:\n{mesh.log(name)[-3000:]}")


async def run_variants(mesh: Mesh, specs: list[str], config: Config, log) -> dict:
    bench = Bench(mesh, config, log)
    envoys: list[ExtraEnvoy] = []
    services: dict[str, tuple[int, int]] = {}
    try:
        setup = await bench.setup()
        paths = [PathDef("fastapi", "FastAPI + asyncpg peer (uvicorn)", True, config.concurrencies)]
        labels = {"fastapi": paths[0].label}
        for spec in specs:
            service, _, envoy_parts = parse(spec)
            if service not in services:
                services[service] = start_variant(mesh, service)
            pid, port = services[service]
            changes = [ENVOY_CHANGES[p] for p in envoy_parts if ENVOY_CHANGES[p] is not None]
            args = ["--concurrency", "1"] if "c1" in envoy_parts else []
            envoy = ExtraEnvoy(
                mesh.config.data_dir / "envoy.yaml", f"to-{spec}".replace("@", "-").replace("+", "-"),
                combine(point_cluster("profile", port), *changes), mesh.config.data_dir / "logs", args,
            ).start()  # fmt: skip
            envoys.append(envoy)
            name = f"v:{spec}"
            bench.openers[name] = lambda c, p=envoy.port: Http1Session(
                "127.0.0.1", p, "/v1/profiles/", bench.tokens, c
            ).open()
            bench.cpu_groups[f"service:{service}"] = [pid]
            bench.cpu_groups[f"envoy:{spec}"] = [envoy.process.pid]
            paths.append(PathDef(name, f"REST via Envoy -> profile service [{spec}]", True, config.concurrencies))
            labels[name] = paths[-1].label
            log(f"variant {spec}: service :{port}, envoy :{envoy.port}")
        measured = await bench.run(paths)
    finally:
        for envoy in envoys:
            envoy.stop()
        bench.close()
    summary = summarize(measured["cells"], extra_pairs=[(f"v:{v}", "v:as-is") for v in specs if v != "as-is"])
    return {"config": vars(config), "variants": specs, "labels": labels, "setup": setup, **measured, **summary}


def variants_markdown(result: dict, machine: dict) -> str:
    lines = [
        "# GET profile: profile-service variants behind Envoy vs the FastAPI peer",
        "",
        machine_markdown(machine),
        "## Method",
        "",
        "- `python -m bench.variants`: the same throwaway mesh, seed data, peer, client and interleaved rounds as "
        "`bench/results/get_profile.md`; each variant of the profile service (`bench/service_variant.py`: only "
        "GetProfile or the process setup changes) runs as its own process behind its own Envoy (the mesh's rendered "
        "config, profile cluster pointed at it), measured as REST through that Envoy.",
        f"- {result['config']['rounds']} rounds, concurrencies {result['config']['concurrencies']}, "
        f"{result['config']['seconds_c1']} s / {result['config']['seconds_cn']} s per cell; medians across rounds; "
        "ratios paired per round. The client shares the 2 cores. The peer runs in its same-work mode (see "
        "bench/peer.py). A service variant shared by several Envoy variants runs once; its CPU is per request of "
        "the path being measured.",
        "",
        "## Results",
        "",
        "| path | in flight | req/s | p50 ms | p99 ms | / FastAPI | / as-is | service CPU us/req | Envoy CPU us/req "
        "| Postgres CPU us/req | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for concurrency in result["config"]["concurrencies"]:
        for name, label in result["labels"].items():
            cell = result["paths"].get(name, {}).get(str(concurrency))
            if not cell:
                continue
            variant = name.removeprefix("v:")
            service_name = variant.partition("@")[0] or "as-is"
            cpu = cell["cpu_us_per_request"]
            vs_peer = result["ratios"].get(f"{name}/fastapi@{concurrency}", {}).get("median")
            vs_asis = result["ratios"].get(f"{name}/v:as-is@{concurrency}", {}).get("median")
            service = cpu.get(f"service:{service_name}", cpu.get("fastapi") if name == "fastapi" else None)
            lines.append(
                f"| {label} | {concurrency} | {cell['rps']:,.1f} | {cell['p50_ms']:.2f} | {cell['p99_ms']:.2f} | "
                f"{'-' if vs_peer is None else f'{vs_peer:.2f}'} | {'-' if vs_asis is None else f'{vs_asis:.2f}'} | "
                f"{'-' if service is None else f'{service:,.0f}'} | "
                f"{cpu.get(f'envoy:{variant}', 0):,.0f} | {cpu.get('postgres', 0):,.0f} | {cell['errors']} |"
            )
    lines += [
        "",
        "Variants `SERVICE@ENVOY`: "
        + "; ".join(
            [
                "`as-is` the service unchanged (control)",
                "`no-rpc-log` OPENHR_LOG_LEVEL=WARNING (no JSON line per RPC)",
                "`uvloop` / `asyncio-loop` the service's event loop forced to uvloop / asyncio's default",
                "`canned` no database at all (upper bound)",
                "`@nolog` Envoy without the access log",
                "`@minimal` Envoy with only transcoder + router filters",
                "`@c1` Envoy with one worker thread (`--concurrency 1`)",
            ]
        )
        + ".",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    rounds = 3
    if "--rounds" in argv:
        at = argv.index("--rounds")
        rounds = int(argv[at + 1])
        argv = argv[:at] + argv[at + 2 :]
    variants = argv or list(DEFAULT)
    config = Config(
        rounds=rounds,
        concurrencies=(1, 32),
        seconds_c1=1.2,
        seconds_cn=2.0,
        warmup_seconds=1.0,
        diagnostics=False,
        open_rates=(),
    )
    machine = describe()
    mesh = start_mesh(REPO_ROOT / ".data" / "bench")
    try:
        result = asyncio.run(run_variants(mesh, variants, config, lambda m: print(m, flush=True)))
    finally:
        mesh.stop()
    result["machine"] = machine
    markdown = variants_markdown(result, machine)
    print(markdown)
    report.write("get_profile_variants", markdown, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
