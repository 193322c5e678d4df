"""Profiles get offer and seek vectors: a profile created or edited through the profile service
yields ProfileEmbedded with both; only the newest version counts; a change of fields that are
not embedded re-embeds nothing."""

from __future__ import annotations

import uuid

import grpc
import numpy as np

from deploy.local.ephemeral import Mesh
from openhr.enrichment.v1 import enrichment_pb2
from openhr.profile.v1 import profile_pb2, profile_pb2_grpc
from services.common.outbox import new_event
from services.enrichment.models import DEFAULT_MODEL
from services.enrichment.profile_texts import profile_texts
from tests.enrichment.support import cosine, enrichment_events, service_metadata, wait_for_embedded
from tests.events import publish
from tests.users import new_user

PROFILE = {
    "displayName": "Ada",
    "role": "ROLE_TECHNICAL_COFOUNDER",
    "headline": "Compilers, now fintech",
    "summary": "Ten years of payment systems in Go; led a team of six through a series A.",
    "yearsExperience": 10,
    "lookingFor": "A business co-founder who sells to banks in Europe.",
    "preferences": {"rolesSought": {"roles": ["ROLE_BUSINESS_COFOUNDER"]}},
}


async def test_created_and_edited_profile_gets_offer_and_seek_vectors(mesh: Mesh, rest, internal) -> None:
    user = new_user(mesh, "embed")
    created = (await rest.post("/v1/profiles", json=PROFILE, headers=user.headers)).json()["profile"]
    first = await wait_for_embedded(mesh, user.user_id, lambda e: e.profile_version == int(created["version"]))
    assert first.model_id == DEFAULT_MODEL and first.dimensions == 384
    assert first.profile_id == created["profileId"]
    assert len(first.offer_embedding) == len(first.seek_embedding) == 384

    base = f"/v1/profiles/{created['profileId']}"
    await rest.post(f"{base}/skills", json={"name": "k8s", "proficiency": 5}, headers=user.headers)
    edit = {"lookingFor": "A designer"}
    edited = (await rest.patch(base, params={"updateMask": "lookingFor"}, json=edit, headers=user.headers)).json()
    edited = edited["profile"]
    latest = await wait_for_embedded(mesh, user.user_id, lambda e: e.profile_version == int(edited["version"]))

    # The vectors are those of the profile's offer and seek texts, as EmbedTexts gives them.
    async with grpc.aio.insecure_channel(mesh.target("profile")) as channel:
        profile = (
            await profile_pb2_grpc.ProfileServiceStub(channel).GetMyProfile(
                profile_pb2.GetMyProfileRequest(), metadata=user.metadata, timeout=10
            )
        ).profile
    texts = profile_texts(profile)
    assert "Kubernetes" in texts.offer and "A designer" in texts.seek
    expected = await internal.EmbedTexts(
        enrichment_pb2.EmbedTextsRequest(texts=[texts.offer, texts.seek]), metadata=service_metadata(mesh), timeout=30
    )
    assert cosine(latest.offer_embedding, expected.embeddings[0].values) > 0.9999
    assert cosine(latest.seek_embedding, expected.embeddings[1].values) > 0.9999
    assert cosine(latest.seek_embedding, first.seek_embedding) < 0.99  # the seek text changed


async def test_unchanged_embedded_fields_do_not_re_embed(mesh: Mesh, rest, db) -> None:
    user = new_user(mesh, "embed-same")
    created = (await rest.post("/v1/profiles", json=PROFILE, headers=user.headers)).json()["profile"]
    base = f"/v1/profiles/{created['profileId']}"
    await wait_for_embedded(mesh, user.user_id, lambda e: e.profile_version == int(created["version"]))
    moved = (
        await rest.patch(base, params={"updateMask": "timezone"}, json={"timezone": "Asia/Tokyo"}, headers=user.headers)
    ).json()["profile"]
    renamed = (
        await rest.patch(base, params={"updateMask": "headline"}, json={"headline": "Payments"}, headers=user.headers)
    ).json()["profile"]
    await wait_for_embedded(mesh, user.user_id, lambda e: e.profile_version == int(renamed["version"]))

    versions = [e.profile_version for e in await enrichment_events(mesh, user.user_id)]
    assert int(moved["version"]) not in versions  # the timezone change embedded nothing
    assert versions == [int(created["version"]), int(renamed["version"])]
    rows = await db.fetch(
        "SELECT kind, profile_version FROM enrichment.profile_vectors WHERE user_id = $1", uuid.UUID(user.user_id)
    )
    newest = int(renamed["version"])
    assert {(r["kind"], r["profile_version"]) for r in rows} == {("offer", newest), ("seek", newest)}


async def _publish(mesh: Mesh, user_id: str, version: int, headline: str, event_id: str | None = None) -> str:
    """A ProfileChanged on the profile stream, as the profile service's relay writes it (signed)."""
    event = new_event("profile", user_id)
    if event_id:
        event.event_id = event_id
    event.profile_changed.profile.CopyFrom(
        profile_pb2.Profile(
            profile_id=str(uuid.uuid4()), user_id=user_id, display_name="T", headline=headline, version=version
        )
    )
    event.profile_changed.changed_fields.append("headline")
    await publish(mesh, "profile", event)
    return event.event_id


async def test_only_the_newest_version_counts_and_redeliveries_are_ignored(mesh: Mesh, db) -> None:
    user_id = str(uuid.uuid4())
    third = await _publish(mesh, user_id, 3, "Rust and embedded firmware")
    await wait_for_embedded(mesh, user_id, lambda e: e.profile_version == 3)
    await _publish(mesh, user_id, 2, "Pastry chef")  # older: arrived late
    await _publish(mesh, user_id, 3, "Rust and embedded firmware", event_id=third)  # delivered again
    await _publish(mesh, user_id, 4, "Rust, embedded firmware and PCB design")
    await wait_for_embedded(mesh, user_id, lambda e: e.profile_version == 4)

    assert [e.profile_version for e in await enrichment_events(mesh, user_id)] == [3, 4]
    stored = await db.fetchrow(
        "SELECT profile_version, offer_text FROM enrichment.profile_texts WHERE user_id = $1", uuid.UUID(user_id)
    )
    assert stored["profile_version"] == 4 and "PCB design" in stored["offer_text"]
    vectors = await db.fetch(
        "SELECT kind, embedding::real[] AS e FROM enrichment.profile_vectors WHERE user_id = $1", uuid.UUID(user_id)
    )
    assert [r["kind"] for r in vectors] == ["offer"]  # no seek text: no seek vector
    assert np.isclose(np.linalg.norm(vectors[0]["e"]), 1.0, atol=1e-4)


async def test_a_profile_with_nothing_to_embed_publishes_empty_vectors(mesh: Mesh) -> None:
    user_id = str(uuid.uuid4())
    await _publish(mesh, user_id, 1, "Founder")
    await wait_for_embedded(mesh, user_id, lambda e: e.profile_version == 1)
    await _publish(mesh, user_id, 2, "")
    cleared = await wait_for_embedded(mesh, user_id, lambda e: e.profile_version == 2)
    assert list(cleared.offer_embedding) == [] and list(cleared.seek_embedding) == []
