"""EmbedTexts over gRPC with the real model: vectors with their model and dimensions, equal
to sentence-transformers' own, batched under concurrency, and bad input refused by field."""

from __future__ import annotations

import asyncio
import re
import urllib.request
import uuid

import grpc
import numpy as np
import pytest

from bench.embedding_texts import SKILL_PHRASES, SUMMARIES
from deploy.local.ephemeral import Mesh
from openhr.enrichment.v1 import enrichment_pb2
from services.enrichment.models import DEFAULT_MODEL, reference_model
from tests.enrichment.support import cosine, service_metadata, violations

PARITY = 0.999


async def embed(internal, mesh: Mesh, texts: list[str], model_id: str = "") -> enrichment_pb2.EmbedTextsResponse:
    request = enrichment_pb2.EmbedTextsRequest(texts=texts, model_id=model_id)
    return await internal.EmbedTexts(request, metadata=service_metadata(mesh), timeout=60)


def _matrix(response: enrichment_pb2.EmbedTextsResponse) -> np.ndarray:
    return np.array([list(e.values) for e in response.embeddings], dtype=np.float32)


async def test_vectors_carry_model_and_dimensions_and_mean_something(internal, mesh: Mesh) -> None:
    response = await embed(internal, mesh, ["Kubernetes", "container orchestration", "pastry baking"])
    assert response.model_id == DEFAULT_MODEL
    assert response.dimensions == 384
    vectors = _matrix(response)
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2


async def test_served_vectors_equal_sentence_transformers_on_torch(internal, mesh: Mesh) -> None:
    """The ONNX Runtime path keeps cosine >= 0.999 with the reference on a fixed text set."""
    texts = SKILL_PHRASES[:32] + SUMMARIES
    served = np.concatenate([_matrix(await embed(internal, mesh, texts[i : i + 64])) for i in range(0, len(texts), 64)])
    reference = await asyncio.to_thread(
        reference_model(DEFAULT_MODEL).encode, texts, normalize_embeddings=True, convert_to_numpy=True
    )
    similarities = np.sum(served * reference, axis=1)
    assert similarities.min() >= PARITY, sorted(zip(similarities, texts, strict=True))[:3]


def _runs(mesh: Mesh) -> float:
    """Model runs so far, from the service's Prometheus metrics."""
    url = f"http://127.0.0.1:{mesh.config.metrics_ports['enrichment']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    match = re.search(r'^openhr_embedding_batch_texts_count\{model="[^"]+"\} ([0-9.e+]+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_concurrent_requests_share_model_runs_and_get_their_own_vectors(internal, mesh: Mesh) -> None:
    tag = uuid.uuid4().hex[:8]  # fresh texts: no cache hits
    texts = [f"{phrase} ({tag})" for phrase in SKILL_PHRASES[:32]]
    before = await asyncio.to_thread(_runs, mesh)
    responses = await asyncio.gather(*(embed(internal, mesh, [text]) for text in texts))
    runs = await asyncio.to_thread(_runs, mesh) - before
    assert runs < len(texts)  # micro-batched: fewer model runs than requests
    together = _matrix(await embed(internal, mesh, texts))  # cached now: the same vectors
    for i, response in enumerate(responses):
        assert cosine(_matrix(response)[0], together[i]) > 0.9999


@pytest.mark.parametrize(
    ("texts", "model_id", "field"),
    [
        ([], "", "texts"),
        (["skill"] * 65, "", "texts"),
        (["fine", "x" * 8001], "", "texts[1]"),
        (["fine", "   "], "", "texts[1]"),
        (["fine"], "word2vec", "model_id"),
        (["fine"], "all-mpnet-base-v2", "model_id"),
    ],
    ids=["empty-list", "too-many", "too-long", "blank", "unknown-model", "model-not-served-here"],
)
async def test_bad_input_is_refused_naming_the_field(internal, mesh: Mesh, texts, model_id, field) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await embed(internal, mesh, texts, model_id)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(raised.value)


async def test_needs_a_caller(internal) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await internal.EmbedTexts(enrichment_pb2.EmbedTextsRequest(texts=["x"]), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
