"""Embedding throughput and latency, side by side in one run:

  service  EmbedTexts on the enrichment service (ONNX Runtime, micro-batching, off the event loop;
           its cache off, ENRICHMENT_EMBED_CACHE_SIZE=0, so every text runs through the model)
  peer     the same RPC served by plain sentence-transformers on torch (bench/embeddings_peer.py)

for short skill phrases and ~60-word summaries (bench/embedding_texts.py), each as
  b1       batch 1, one request in flight: latency p50/p99 and texts/s
  b64      batch 64, one request in flight
  b1x16    batch 1, 16 requests in flight (where micro-batching works)

Rounds interleave the paths (order alternating), so machine noise lands on both; the report
quotes medians across rounds. The vectors of both are compared on the whole fixed text set.
Then the model runs alone in this process (bench/embeddings_floor.py): the floor each path's
CPU cost sets, and the serving path before this one, side by side."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from bench.embedding_texts import SKILL_PHRASES, SUMMARIES, skill_phrases, summaries
from bench.embeddings_floor import FLOOR_PATHS, run_floor
from bench.peer import stop_process
from deploy.local.ephemeral import SHARED_MODEL_CACHE, Mesh, serving
from deploy.local.infra import free_port
from openhr.enrichment.v1 import enrichment_pb2, enrichment_pb2_grpc
from services.common.service_auth import ServiceTokenIssuer

GOAL_RATIO = 2.0
GOAL_P99_MS = 20.0
PATHS = ("service", "peer")
METRICS = ("texts_per_s", "texts_per_cpu_s", "p50_ms", "p99_ms")
MESH_ENV = {"ENRICHMENT_EMBED_CACHE_SIZE": "0"}


@dataclass(frozen=True)
class Cell:
    name: str
    texts: str  # "skills" or "summaries"
    batch: int
    in_flight: int
    requests: int


@dataclass
class EmbeddingsConfig:
    rounds: int = 3
    floor_rounds: int = 2
    cells: tuple[Cell, ...] = (
        Cell("skills b1", "skills", 1, 1, 200),
        Cell("skills b64", "skills", 64, 1, 12),
        Cell("skills b1x16", "skills", 1, 16, 400),
        Cell("summaries b1", "summaries", 1, 1, 100),
        Cell("summaries b64", "summaries", 64, 1, 4),
        Cell("summaries b1x16", "summaries", 1, 16, 160),
    )

    def quick(self) -> EmbeddingsConfig:
        cells = tuple(Cell(c.name, c.texts, c.batch, c.in_flight, max(2, c.requests // 4)) for c in self.cells)
        return EmbeddingsConfig(rounds=1, floor_rounds=1, cells=cells)


def _texts(kind: str, count: int) -> list[str]:
    return skill_phrases(count) if kind == "skills" else summaries(count)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _run_cell(stub, metadata, cell: Cell, pid: int) -> dict:
    pool = _texts(cell.texts, max(64, cell.requests))
    latencies: list[float] = []
    next_request = 0

    async def worker() -> None:
        nonlocal next_request
        while next_request < cell.requests:
            i = next_request
            next_request += 1
            texts = [pool[(i * cell.batch + j) % len(pool)] for j in range(cell.batch)]
            t0 = time.perf_counter()
            await stub.EmbedTexts(enrichment_pb2.EmbedTextsRequest(texts=texts), metadata=metadata(), timeout=120)
            latencies.append(time.perf_counter() - t0)

    started, cpu_before = time.perf_counter(), _cpu_seconds(pid)
    await asyncio.gather(*(worker() for _ in range(cell.in_flight)))
    elapsed, cpu = time.perf_counter() - started, _cpu_seconds(pid) - cpu_before
    latencies.sort()
    return {
        "texts_per_s": cell.requests * cell.batch / elapsed,
        # Texts per CPU-second of the serving process: its efficiency whatever share of the
        # shared cores it got (wall-clock throughput depends on that share).
        "texts_per_cpu_s": cell.requests * cell.batch / max(cpu, 1e-3),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


async def _embed_all(stub, metadata, texts: list[str]) -> np.ndarray:
    rows = []
    for i in range(0, len(texts), 64):
        response = await stub.EmbedTexts(
            enrichment_pb2.EmbedTextsRequest(texts=texts[i : i + 64]), metadata=metadata(), timeout=120
        )
        rows.extend(list(e.values) for e in response.embeddings)
    return np.array(rows, dtype=np.float64)


def _start_peer(mesh: Mesh) -> tuple[subprocess.Popen, int]:
    port = free_port()
    with open(mesh.config.data_dir / "logs" / "embeddings-peer.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.embeddings_peer", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 120
    while True:
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                grpc.channel_ready_future(channel).result(timeout=1)
            return process, port
        except grpc.FutureTimeoutError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the embeddings peer did not start") from None


async def run_embeddings(mesh: Mesh, config: EmbeddingsConfig, log) -> dict:
    assert serving(mesh.config.ports["enrichment"])
    peer, peer_port = _start_peer(mesh)
    # EmbedTexts answers services only (services/common/surface.py INTERNAL_CALLERS): call as profile.
    # Its tokens live a minute; issuer.token() renews them as the run goes.
    issuer = ServiceTokenIssuer.from_dir(mesh.config.service_keys, "profile")

    def metadata() -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {issuer.token()}"),)

    try:
        async with (
            grpc.aio.insecure_channel(mesh.target("enrichment")) as service_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{peer_port}") as peer_channel,
        ):
            pids = {"service": mesh.processes["enrichment"].pid, "peer": peer.pid}
            stubs = {
                "service": enrichment_pb2_grpc.EnrichmentInternalServiceStub(service_channel),
                "peer": enrichment_pb2_grpc.EnrichmentInternalServiceStub(peer_channel),
            }
            fixed = SKILL_PHRASES + SUMMARIES
            vectors = {path: await _embed_all(stubs[path], metadata, fixed) for path in PATHS}  # also warms up
            cosines = np.sum(vectors["service"] * vectors["peer"], axis=1)
            parity = {"texts": len(fixed), "min": float(cosines.min()), "mean": float(cosines.mean())}
            log(f"parity over {len(fixed)} texts: min cosine {parity['min']:.6f}, mean {parity['mean']:.6f}")

            samples: dict[str, dict[str, list[dict]]] = {c.name: {p: [] for p in PATHS} for c in config.cells}
            for round_no in range(config.rounds):
                order = PATHS if round_no % 2 == 0 else tuple(reversed(PATHS))
                for cell in config.cells:
                    for path in order:
                        result = await _run_cell(stubs[path], metadata, cell, pids[path])
                        samples[cell.name][path].append(result)
                        log(
                            f"round {round_no + 1} {cell.name:16} {path:8} {result['texts_per_s']:8.1f} texts/s "
                            f"({result['texts_per_cpu_s']:7.1f}/cpu-s) "
                            f"p50 {result['p50_ms']:7.1f} ms p99 {result['p99_ms']:7.1f} ms"
                        )
    finally:
        stop_process(peer)
    floor = run_floor(Path(SHARED_MODEL_CACHE["ENRICHMENT_MODEL_CACHE"]), config.floor_rounds, log)
    cells = {
        name: {
            path: {key: statistics.median(s[key] for s in runs) for key in METRICS}
            for path, runs in by_path.items()
        }
        for name, by_path in samples.items()
    }
    return {
        "parity": parity,
        "cells": cells,
        "samples": samples,
        "rounds": config.rounds,
        "floor": floor,
        "floor_rounds": config.floor_rounds,
        "load_average_at_end": list(os.getloadavg()),
    }


def markdown(result: dict, machine: dict) -> str:
    lines = [
        "# Embeddings: EmbedTexts (ONNX Runtime) vs sentence-transformers on torch",
        "",
        f"Machine: {machine['nproc']} cores ({machine['cpu_model']}), {machine['memory']}, "
        f"Python {machine['python']}; load average at start {machine['load_average_at_start']}. "
        "The cores are shared with the whole mesh and the benchmark's client.",
        "",
        "Method: `make bench` (`python -m bench --only embeddings`): a throwaway mesh (the enrichment "
        "service with its cache off; services/enrichment/encoder.py: length-sorted chunks, one "
        "single-threaded ONNX Runtime run per core) and the peer, a grpc.aio server running plain "
        "sentence-transformers on torch (bench/embeddings_peer.py), both on all-MiniLM-L6-v2 and called "
        f"over gRPC by the same client; {result['rounds']} interleaved rounds, medians across rounds. "
        "Batch-1 cells send one text per request; b1x16 keeps 16 such requests in flight.",
        "",
        f"Parity: over {result['parity']['texts']} fixed texts the two paths' vectors have cosine "
        f"min {result['parity']['min']:.6f}, mean {result['parity']['mean']:.6f} (bar: 0.999).",
        "",
        "| cell | service texts/s | peer texts/s | ratio | service texts/CPU-s | peer texts/CPU-s | ratio "
        "| service p50 / p99 ms | peer p50 / p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, paths in result["cells"].items():
        service, peer = paths["service"], paths["peer"]
        lines.append(
            f"| {name} | {service['texts_per_s']:.1f} | {peer['texts_per_s']:.1f} | "
            f"{service['texts_per_s'] / peer['texts_per_s']:.2f}x | "
            f"{service['texts_per_cpu_s']:.1f} | {peer['texts_per_cpu_s']:.1f} | "
            f"{service['texts_per_cpu_s'] / peer['texts_per_cpu_s']:.2f}x | "
            f"{service['p50_ms']:.1f} / {service['p99_ms']:.1f} | {peer['p50_ms']:.1f} / {peer['p99_ms']:.1f} |"
        )
    summary_p99 = result["cells"]["summaries b1"]["service"]["p99_ms"]
    ratios = [paths["service"]["texts_per_s"] / paths["peer"]["texts_per_s"] for paths in result["cells"].values()]
    lines += [
        "",
        f"Goals: throughput >= {GOAL_RATIO:.0f}x the peer's at equal vectors: "
        f"{sum(r >= GOAL_RATIO for r in ratios)} of {len(ratios)} cells (ratios "
        f"{min(ratios):.2f}x-{max(ratios):.2f}x); batch-1 p99 for a summary <= {GOAL_P99_MS:.0f} ms: "
        f"{summary_p99:.1f} ms ({'met' if summary_p99 <= GOAL_P99_MS else 'not met'}).",
    ]
    return "\n".join(lines + _floor_lines(result)) + "\n"


def _floor_lines(result: dict) -> list[str]:
    floor = result["floor"]
    lines = [
        "",
        f"Load average at the end: {[round(x, 2) for x in result['load_average_at_end']]}.",
        "",
        "## The model alone (bench/embeddings_floor.py)",
        "",
        f"In the benchmark's process, no gRPC, {result['floor_rounds']} interleaved rounds: torch = the peer's "
        "encode; st-onnx = sentence-transformers' ONNX backend on the same O2 graph, one run on 2 intra-op "
        "threads (the service's path before encoder.py); encoder = the service's path now. torch "
        "measures slower here than in the peer's own process (it shares this one with ONNX Runtime's "
        "threads): compare torch in the table above, and the ONNX paths here.",
        "",
        "| cell | " + " | ".join(f"{p} ms p50" for p in FLOOR_PATHS) + " | "
        + " | ".join(f"{p} texts/CPU-s" for p in FLOOR_PATHS) + " | encoder/st-onnx per CPU-s |",
        "| --- |" + " ---: |" * (2 * len(FLOOR_PATHS) + 1),
    ]
    for name, paths in floor.items():
        lines.append(
            f"| {name} | " + " | ".join(f"{paths[p]['ms_p50']:.1f}" for p in FLOOR_PATHS) + " | "
            + " | ".join(f"{paths[p]['texts_per_cpu_s']:.1f}" for p in FLOOR_PATHS)
            + f" | {paths['encoder']['texts_per_cpu_s'] / paths['st-onnx']['texts_per_cpu_s']:.2f}x |"
        )
    def ratio(cell: str, a: str, b: str) -> str:
        return f"{floor[cell][a]['texts_per_cpu_s'] / floor[cell][b]['texts_per_cpu_s']:.2f}x"

    summary_ms = 1000 / floor["summaries b1"]["encoder"]["texts_per_cpu_s"]
    lines += [
        "",
        "## Why",
        "",
        "- Texts per CPU-second is the figure that survives a shared machine: wall-clock texts/s follows "
        "the share of the 2 cores each process gets among everything else running (torch's OpenMP threads "
        "spin-wait and keep theirs; the service's threads sleep between runs).",
        "- Batch 64: both paths spend it in the same fp32 matrix multiplications (6 layers of 1.77 M "
        "weights: ~21 MFLOP per token, ~1.5 GFLOP for a 68-token summary), "
        "which torch (oneDNN) and ONNX Runtime (MLAS) both run as tuned GEMM kernels: "
        "in-process at load 3 they took about the same time (skills b64 51 vs 56 ms, summaries b64 761 vs "
        "628 ms, torch vs ONNX on 2 intra-op threads). So >= 2x at batch 64 on a quiet machine needs less "
        "arithmetic per text, and all that does less failed the 0.999 parity bar on the fixed set: dynamic "
        "int8 of all MatMuls 0.982 (per-channel) / 0.903 (per-tensor), of only the 6 feed-forward MatMuls "
        "0.987; torch bf16 weights 0.998. torch bf16 autocast (AMX) keeps 0.99996 but measured 1.4x torch "
        "fp32 and 1.15x ONNX fp32 in texts per CPU-second for summaries b64, and no gain for skills b64.",
        "- The service's gain over its former path (st-onnx: one run on 2 intra-op threads) comes from "
        "running a batch's length-sorted chunks at once, one single-threaded run per core: no per-operator "
        "hand-off between threads (a BERT layer is ~10 parallel sections, each waiting for the slower "
        f"thread). Model alone, encoder vs st-onnx per CPU-second: skills b64 "
        f"{ratio('skills b64', 'encoder', 'st-onnx')}, summaries b64 {ratio('summaries b64', 'encoder', 'st-onnx')}.",
        "- Batch 1: torch's per-call overhead (module dispatch, thread wake-ups) dominates a short text; "
        "ONNX Runtime's is small, so short texts and concurrent requests are where >= 2x holds.",
        f"- Summary batch-1 p99 <= 20 ms: one summary costs {summary_ms:.1f} ms of CPU in the model alone in "
        "this run, single-threaded (~1.5 GFLOP: ~75 GFLOP/s, a fair share of one core's fp32 peak), and a "
        "lone text is one chunk, so it runs on one core: the goal is at or below one core's floor on this "
        "CPU (p50 alone is about that), and under load p99 is set by waiting for a core. Running a lone "
        "text on 2 intra-op threads instead was measured side by side (in-process, load 7, 40 calls "
        "each): p50 20.2 vs 23.2 ms, but p90 41.7 vs 35.4 ms, for +100 MB (a second session); not taken. "
        "If the quiet run shows the encoder's summaries-b1 time above 20 ms and st-onnx's (2 intra-op "
        "threads) well below, take it.",
    ]
    return lines
