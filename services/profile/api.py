"""The profile service's gRPC servicers: thin translation between protos and the store."""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from openhr.profile.v1 import profile_pb2, profile_pb2_grpc
from services.common import errors
from services.common.auth import current_principal
from services.common.db import Database, Tx
from services.common.fanout import StreamFanout, events_or_heartbeats
from services.common.logging import current_request_id
from services.common.outbox import add_event, new_event
from services.profile import rules, store
from services.profile.skills import SkillNormalizer
from services.profile.validation import (
    completeness,
    parse_uuid,
    validate_note,
    validate_skill,
    validate_update_mask,
)

SERVICE = "profile"
MAX_BATCH = 500
DEFAULT_DISCOVERY_PAGE, MAX_DISCOVERY_PAGE = 500, 1000


def _caller() -> str:
    return current_principal().user_id


async def _emit_changed(tx: Tx, profile: profile_pb2.Profile, changed: list[str], *, created: bool = False) -> None:
    request_id = current_request_id()
    event = new_event(SERVICE, profile.user_id, request_id)
    event.profile_changed.profile.CopyFrom(profile)
    event.profile_changed.changed_fields.extend(changed)
    event.profile_changed.created = created
    await add_event(tx, store.SCHEMA, "profile", event)


async def _refresh_after_skill_change(tx: Tx, profile_id: str, changed: str) -> None:
    profile = await store.get_by_id(tx, profile_id)
    await store.touch_profile(tx, profile_id, completeness(profile, len(profile.skills)))
    profile = await store.get_by_id(tx, profile_id)
    await _emit_changed(tx, profile, [changed])


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


class ProfileApi(profile_pb2_grpc.ProfileServiceServicer):
    def __init__(
        self, db: Database, normalizer: SkillNormalizer, changes: StreamFanout, heartbeat_seconds: float
    ) -> None:
        self._db, self._normalizer, self._changes = db, normalizer, changes
        self._heartbeat = heartbeat_seconds

    async def CreateProfile(self, request, context):
        user_id = _caller()
        profile = rules.new_profile(request.profile)
        request_id = parse_uuid(request.request_id, "request_id") if request.request_id else None
        async with self._db.transaction(user_id) as tx:
            profile_id = await store.insert_profile(tx, user_id, profile, completeness(profile, 0), request_id)
            if profile_id is None:
                if request_id and await store.request_id_of(tx, user_id) == request_id:
                    return profile_pb2.CreateProfileResponse(profile=await store.get_by_user(tx, user_id))
                raise errors.already_exists("a profile for this user")
            created = await store.get_by_id(tx, profile_id)
            await _emit_changed(tx, created, ["*"], created=True)
        return profile_pb2.CreateProfileResponse(profile=created)

    async def GetMyProfile(self, request, context):
        user_id = _caller()
        async with self._db.transaction(user_id) as tx:
            profile = await store.get_by_user(tx, user_id)
        if profile is None:
            raise errors.not_found("profile (create it with POST /v1/profiles)")
        return profile_pb2.GetMyProfileResponse(profile=profile)

    async def GetProfile(self, request, context):
        profile_id = parse_uuid(request.profile_id, "profile_id")
        caller = _caller()
        async with self._db.transaction(caller) as tx:
            profile = await store.get_by_id(tx, profile_id)
            if profile is None:
                raise errors.not_found("profile")
            connected = await store.connected_to(tx, caller, [profile.user_id])
        view = rules.view_for(profile, caller, bool(connected))
        return profile_pb2.GetProfileResponse(profile=rules.shown(profile, view), view=view)

    async def UpdateProfile(self, request, context):
        paths = validate_update_mask(request.update_mask)
        profile_id = parse_uuid(request.profile.profile_id, "profile.profile_id")
        async with self._db.transaction(_caller()) as tx:
            await rules.lock_own_profile(tx, profile_id)
            profile = rules.updated_profile(await store.get_by_id(tx, profile_id), request.profile, paths)
            await store.write_profile(tx, profile, completeness(profile, len(profile.skills)))
            updated = await store.get_by_id(tx, profile_id)
            await _emit_changed(tx, updated, paths)
        return profile_pb2.UpdateProfileResponse(profile=updated)

    async def WatchMyProfile(self, request, context):
        user_id = _caller()
        # Subscribe before reading, so that no change between the two is missed.
        async with self._changes.subscribe(user_id) as changes:
            async with self._db.transaction(user_id) as tx:
                profile = await store.get_by_user(tx, user_id)
            if profile is None:
                raise errors.not_found("profile (create it with POST /v1/profiles)")
            yield profile_pb2.WatchMyProfileResponse(profile=profile)
            sent = profile
            async for event in events_or_heartbeats(changes, self._heartbeat):
                if event is None:
                    yield profile_pb2.WatchMyProfileResponse(heartbeat=_now())
                    continue
                changed = event.profile_changed.profile
                # Older, or what the client already has (an event committed before the snapshot
                # was read). Endorsements change a profile without bumping its version (the
                # endorser may not write the owner's row), hence the content comparison.
                if changed.version < sent.version or changed == sent:
                    continue
                sent = changed
                yield profile_pb2.WatchMyProfileResponse(profile=changed)

    async def ListSkills(self, request, context):
        profile_id = parse_uuid(request.profile_id, "profile_id")
        async with self._db.transaction(_caller()) as tx:
            if await store.visible_owner(tx, profile_id) is None:
                raise errors.not_found("profile")
            skills = await store.list_skills(tx, profile_id)
        return profile_pb2.ListSkillsResponse(skills=skills)

    async def AddSkill(self, request, context):
        profile_id = parse_uuid(request.profile_id, "profile_id")
        name = validate_skill(request.name, request.proficiency)
        normalized = await self._normalizer.normalize(name)
        async with self._db.transaction(_caller()) as tx:
            await rules.lock_own_profile(tx, profile_id)
            await rules.ensure_room_for_skill(tx, profile_id)
            skill = await store.upsert_skill(
                tx,
                profile_id=profile_id,
                user_id=_caller(),
                name=normalized.name,
                taxonomy_id=normalized.taxonomy_id,
                category=normalized.category,
                proficiency=request.proficiency,
                source=profile_pb2.SKILL_SOURCE_MANUAL,
            )
            await _refresh_after_skill_change(tx, profile_id, "skills")
        return profile_pb2.AddSkillResponse(skill=skill)

    async def RemoveSkill(self, request, context):
        profile_id = parse_uuid(request.profile_id, "profile_id")
        skill_id = parse_uuid(request.skill_id, "skill_id")
        async with self._db.transaction(_caller()) as tx:
            await rules.lock_own_profile(tx, profile_id)
            if not await store.delete_skill(tx, profile_id, skill_id):
                raise errors.not_found("skill")
            await _refresh_after_skill_change(tx, profile_id, "skills")
        return profile_pb2.RemoveSkillResponse()

    async def ListEndorsements(self, request, context):
        profile_id = parse_uuid(request.profile_id, "profile_id")
        async with self._db.transaction(_caller()) as tx:
            if await store.visible_owner(tx, profile_id) is None:
                raise errors.not_found("profile")
            endorsements = await store.list_endorsements(tx, profile_id)
        return profile_pb2.ListEndorsementsResponse(endorsements=endorsements)

    async def CreateEndorsement(self, request, context):
        profile_id = parse_uuid(request.profile_id, "profile_id")
        skill_id = parse_uuid(request.skill_id, "skill_id")
        validate_note(request.note)
        caller = _caller()
        async with self._db.transaction(caller) as tx:
            owner = await store.skill_owner(tx, profile_id, skill_id)
            if owner is None:
                raise errors.not_found("skill")
            rules.ensure_may_endorse(owner, caller, bool(await store.connected_to(tx, caller, [owner])))
            endorsement = await store.insert_endorsement(
                tx,
                profile_id=profile_id,
                skill_id=skill_id,
                owner_user_id=owner,
                endorser_user_id=caller,
                note=request.note,
            )
            if endorsement is None:
                raise errors.already_exists("your endorsement of this skill")
            await _emit_changed(tx, await store.get_by_id(tx, profile_id), ["skills.endorsement_count"])
        return profile_pb2.CreateEndorsementResponse(endorsement=endorsement)


class ProfileInternalApi(profile_pb2_grpc.ProfileInternalServiceServicer):
    """Reads and writes for other services (service tokens only, surface.INTERNAL_CALLERS): a
    read sees what an anonymous reader sees; a merge acts for the user the request names."""

    def __init__(self, db: Database, normalizer: SkillNormalizer) -> None:
        self._db, self._normalizer = db, normalizer

    async def BatchGetProfiles(self, request, context):
        if len(request.user_ids) > MAX_BATCH:
            raise errors.invalid_field("user_ids", f"at most {MAX_BATCH}")
        user_ids = [parse_uuid(u, f"user_ids[{i}]") for i, u in enumerate(request.user_ids)]
        caller = _caller()
        async with self._db.transaction(caller) as tx:
            found = await store.get_many_by_user(tx, user_ids)
            connected = await store.connected_to(tx, caller, [p.user_id for p in found]) if caller else set()
        return profile_pb2.BatchGetProfilesResponse(
            profiles=[rules.shown(p, rules.view_for(p, caller, p.user_id in connected)) for p in found]
        )

    async def ListDiscoverableProfiles(self, request, context):
        if not 0 <= request.page_size <= MAX_DISCOVERY_PAGE:
            raise errors.invalid_field("page_size", f"must be 1-{MAX_DISCOVERY_PAGE}")
        size = request.page_size or DEFAULT_DISCOVERY_PAGE
        after = parse_uuid(request.page_token, "page_token") if request.page_token else None
        async with self._db.transaction(None) as tx:
            await store.enter_discovery(tx)
            page = await store.discoverable_page(tx, after, size + 1)
        return profile_pb2.ListDiscoverableProfilesResponse(
            profiles=page[:size], next_page_token=page[size - 1].user_id if len(page) > size else ""
        )

    async def MergeEnrichedSkills(self, request, context):
        """For enrichment's background jobs, under its service token (surface.INTERNAL_CALLERS:
        no user calls it) acting for `user_id`. Only skills enrichment found (GitHub, résumé); a
        manually entered skill keeps its source and proficiency; new skills are added while the
        profile holds fewer than rules.MAX_SKILLS, the rest come back in not_added."""
        user_id = parse_uuid(request.user_id, "user_id")
        rules.ensure_enriched_sources(request.skills)
        names = [validate_skill(s.name, s.proficiency, f"skills[{i}].") for i, s in enumerate(request.skills)]
        normalized = await self._normalizer.normalize_many(names) if names else []
        merged, not_added, changed = [], [], False
        async with self._db.transaction(user_id) as tx:
            profile = await store.get_by_user(tx, user_id)
            if profile is None:
                raise errors.not_found("profile")
            await rules.lock_own_profile(tx, profile.profile_id)
            count = await store.count_skills(tx, profile.profile_id)
            for s, n in zip(request.skills, normalized, strict=True):
                fields = {
                    "profile_id": profile.profile_id,
                    "user_id": user_id,
                    "name": n.name,
                    "taxonomy_id": n.taxonomy_id,
                    "category": n.category,
                    "proficiency": s.proficiency,
                    "source": s.source,
                }
                found = await store.merge_enriched_skill(tx, **fields)
                if found is not None:
                    merged.append(found[0])
                    changed = changed or found[1]
                elif count < rules.MAX_SKILLS:
                    merged.append(await store.upsert_skill(tx, **fields))
                    count, changed = count + 1, True
                else:
                    not_added.append(s)
            if changed:
                await _refresh_after_skill_change(tx, profile.profile_id, "skills")
        return profile_pb2.MergeEnrichedSkillsResponse(skills=merged, not_added=not_added)
