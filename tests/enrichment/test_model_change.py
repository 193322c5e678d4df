"""Changing the model (ENRICHMENT_MODEL) re-embeds every profile in the background, without
downtime: a replica with the new model publishes the new vectors while the old model's stay
in place (and keep serving) until replaced; the two are never mixed."""

from __future__ import annotations

import asyncio
import sys
import uuid

import grpc

from deploy.local.ephemeral import Mesh, serving
from deploy.local.infra import free_port
from openhr.enrichment.v1 import enrichment_pb2, enrichment_pb2_grpc
from tests.enrichment.support import service_metadata, wait_for_embedded
from tests.users import new_user
from tests.waiting import eventually

NEW_MODEL = "all-mpnet-base-v2"


async def test_a_replica_with_another_model_re_embeds_in_the_background(mesh: Mesh, rest, db) -> None:
    user = new_user(mesh, "model-change")
    profile = {"displayName": "Max", "headline": "Supply chain for restaurants", "lookingFor": "A data engineer"}
    created = (await rest.post("/v1/profiles", json=profile, headers=user.headers)).json()["profile"]
    version = int(created["version"])
    old = await wait_for_embedded(mesh, user.user_id, lambda e: e.profile_version == version)

    port = free_port()
    name = f"enrichment-{NEW_MODEL}"
    mesh.start_process(
        name,
        [sys.executable, "-m", "services.enrichment"],
        env={"ENRICHMENT_PORT": str(port), "ENRICHMENT_METRICS_PORT": str(free_port()), "ENRICHMENT_MODEL": NEW_MODEL},
    )
    try:
        # The first start exports the model to ONNX (~10 s idle).
        await eventually(lambda: asyncio.to_thread(serving, port), within=300, message=lambda: mesh.log(name)[-2000:])
        new = await wait_for_embedded(
            mesh, user.user_id, lambda e: e.model_id == NEW_MODEL and e.profile_version == version, within=120
        )
        assert new.dimensions == len(new.offer_embedding) == len(new.seek_embedding) == 768
        assert old.model_id == "all-MiniLM-L6-v2" and len(old.offer_embedding) == 384

        rows = await db.fetch(
            "SELECT model_id, kind, dimensions, profile_version FROM enrichment.profile_vectors WHERE user_id = $1",
            uuid.UUID(user.user_id),
        )
        assert sorted((r["model_id"], r["kind"], r["dimensions"], r["profile_version"]) for r in rows) == [
            ("all-MiniLM-L6-v2", "offer", 384, version),
            ("all-MiniLM-L6-v2", "seek", 384, version),
            (NEW_MODEL, "offer", 768, version),
            (NEW_MODEL, "seek", 768, version),
        ]

        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = await enrichment_pb2_grpc.EnrichmentInternalServiceStub(channel).EmbedTexts(
                enrichment_pb2.EmbedTextsRequest(texts=["Kubernetes"]), metadata=service_metadata(mesh), timeout=60
            )
        assert (answer.model_id, answer.dimensions, len(answer.embeddings[0].values)) == (NEW_MODEL, 768, 768)
    finally:
        mesh.stop_process(name)
