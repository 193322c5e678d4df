"""python -m bench (what `make bench` runs): the taxonomy search benchmark, then GET profile by id through
Envoy REST (with and without the edge's jwt_authn + rate-limit call), direct gRPC and the FastAPI peer, then
sign-in throughput, on a throwaway mesh, then embedding throughput and latency (EmbedTexts vs plain
sentence-transformers on torch); then GitHub import wall time and chat delivery latency on meshes of their own.
Results in bench/results/.

    python -m bench                      # everything (about 3.5 minutes)
    python -m bench --only taxonomy      # just the in-process taxonomy search
    python -m bench --only signin        # just sign-in throughput (mesh, no profiles)
    python -m bench --only github_import # just the GitHub import (20 repositories, local GitHub stand-in)
    python -m bench --only messaging     # just chat delivery latency (mesh + a second messaging replica)
    python -m bench --only embeddings    # just EmbedTexts vs sentence-transformers (mesh + peer)
    python -m bench --only matching      # ListMatches, recall, index builds at 100,000 profiles (mesh of its own)
    python -m bench --quick              # 2 rounds, shorter cells, 300 profiles: a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from bench import report
from bench.embeddings import MESH_ENV as EMBEDDINGS_MESH_ENV
from bench.embeddings import EmbeddingsConfig, run_embeddings
from bench.embeddings import markdown as embeddings_markdown
from bench.get_profile import Config, run_get_profile
from bench.github_import import markdown as github_markdown
from bench.github_import import run_github_import
from bench.machine import describe
from bench.machine import markdown as machine_markdown
from bench.messaging import MessagingConfig, run_messaging
from bench.messaging import markdown as messaging_markdown
from bench.signin import SigninConfig, run_signin
from bench.signin import markdown as signin_markdown
from bench.taxonomy import run_taxonomy
from services.common.settings import REPO_ROOT


def log(message: str) -> None:
    print(message, flush=True)


def run_matching_bench(quick: bool, machine: dict) -> None:
    from bench.matching import MatchingConfig, run_matching
    from bench.matching import markdown as matching_markdown
    from deploy.local.ephemeral import start_mesh

    config = MatchingConfig()
    if quick:
        config = MatchingConfig(
            profiles=5_000, seconds=3.0, warmup_seconds=1.0, recall_users=20, recompute_users=200,
            faiss_recompute_users=50,
        )
    mesh = start_mesh(REPO_ROOT / ".data" / "bench-matching")
    try:
        result = asyncio.run(run_matching(mesh, config, log))
    finally:
        mesh.stop(remove_data=True)
    result["machine"] = machine
    report.write("matching", matching_markdown(result, machine_markdown(machine)), result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only", choices=["taxonomy", "get_profile", "signin", "embeddings", "github_import", "messaging", "matching"]
    )
    parser.add_argument("--profiles", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer profiles, rounds and seconds")
    parser.add_argument("--no-diagnostics", action="store_true", help="only the three main paths")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    machine = describe()
    log(f"machine: {machine['nproc']} cores, {machine['cpu_model']}, {machine['memory']}; "
        f"Python {machine['python']}, grpcio {machine['grpcio']}, Envoy {machine['envoy']}")  # fmt: skip

    if args.only in (None, "taxonomy"):
        log("taxonomy search: 1,000 mixed queries x 5 repeats")
        taxonomy = run_taxonomy(log)
        report.write("taxonomy", report.taxonomy_markdown(taxonomy, machine), {"machine": machine, **taxonomy})
        log(f"taxonomy: median {taxonomy['median_us']} us/query, p99 {taxonomy['p99_us']} us")

    if args.only in (None, "get_profile", "signin", "embeddings"):
        config = Config(profiles=args.profiles, rounds=args.rounds, diagnostics=not args.no_diagnostics)
        if args.quick:
            config = Config(
                profiles=min(args.profiles, 300), rounds=2, seconds_c1=0.8, seconds_cn=1.2, seconds_open=1.2,
                warmup_seconds=0.5,
                diagnostics=not args.no_diagnostics,
            )  # fmt: skip
        signin_config = SigninConfig(rounds=2, seconds=2.0, warmup_seconds=0.5) if args.quick else SigninConfig()
        from deploy.local.ephemeral import start_mesh

        log("starting the mesh (embedded Postgres, Redis, services, Envoy)")
        t0 = time.perf_counter()
        # The services at their default log level (a test mesh logs every RPC: DEBUG).
        mesh = start_mesh(REPO_ROOT / ".data" / "bench", extra_env={**EMBEDDINGS_MESH_ENV, "OPENHR_LOG_LEVEL": "INFO"})
        try:
            log(f"mesh up in {time.perf_counter() - t0:.1f}s; edge {mesh.edge_url}")
            result = signin = embeddings = None
            if args.only in (None, "get_profile"):
                result = asyncio.run(run_get_profile(mesh, config, log))
            if args.only in (None, "signin"):
                log("sign-in: POST /v1/auth/login through the edge")
                signin = asyncio.run(run_signin(mesh, signin_config, log))
            if args.only in (None, "embeddings"):
                log("embeddings: EmbedTexts vs sentence-transformers on torch")
                embeddings_config = EmbeddingsConfig().quick() if args.quick else EmbeddingsConfig()
                embeddings = asyncio.run(run_embeddings(mesh, embeddings_config, log))
        finally:
            log("stopping the mesh")
            mesh.stop()
        if result is not None:
            result["machine"] = machine
            report.print_get_profile(result)
            findings_path = report.RESULTS_DIR / "get_profile_findings.md"
            findings = findings_path.read_text() if findings_path.exists() else ""
            report.write("get_profile", report.get_profile_markdown(result, machine, findings), result)
        if signin is not None:
            signin["machine"] = machine
            markdown = signin_markdown(signin, machine)
            print("\n" + markdown.split("## Results", 1)[1].split("## Raw data", 1)[0].strip())
            report.write("signin", markdown, signin)
        if embeddings is not None:
            embeddings["machine"] = machine
            markdown = embeddings_markdown(embeddings, machine)
            print("\n" + markdown)
            report.write("embeddings", markdown, embeddings)

    if args.only in (None, "github_import"):
        imports = run_github_import(log, rounds=3 if args.quick else 7)
        imports["machine"] = machine
        report.write("enrichment_jobs", github_markdown(imports, machine_markdown(machine)), imports)
        log(f"github import: median cold {imports['median_s']['cold']} s, warm {imports['median_s']['warm']} s, "
            f"peer {imports['median_s']['peer']} s")  # fmt: skip

    if args.only in (None, "messaging"):
        from deploy.local.ephemeral import start_mesh

        messaging_config = (
            MessagingConfig(streams=200, rates=(25.0, 50.0), seconds=3.0, warmup_seconds=1.0)
            if args.quick
            else MessagingConfig()
        )
        log(f"chat delivery: {messaging_config.streams} streams across 2 messaging replicas")
        mesh = start_mesh(REPO_ROOT / ".data" / "bench-messaging")
        try:
            chat = asyncio.run(run_messaging(mesh, messaging_config, log))
        finally:
            mesh.stop()
        chat["machine"] = machine
        findings_path = report.RESULTS_DIR / "messaging_findings.md"
        findings = findings_path.read_text() if findings_path.exists() else ""
        markdown = messaging_markdown(chat, machine, findings)
        print("\n" + markdown.split("## Results", 1)[1].split("## Raw data", 1)[0].strip())
        report.write("messaging", markdown, chat)

    if args.only in (None, "matching"):
        run_matching_bench(args.quick, machine)

    log(f"\ndone in {time.perf_counter() - started:.0f}s; results in {report.RESULTS_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
