"""The profile service's rules, apart from input validation (validation.py) and SQL (store.py):
who may change a profile, how many skills it holds, who may endorse, and how a profile is
tidied before it is stored."""

from __future__ import annotations

from google.protobuf import field_mask_pb2

from openhr.profile.v1 import profile_pb2
from services.common import errors
from services.common.db import Tx
from services.profile import store
from services.profile.validation import validate_profile

MAX_SKILLS = 100
# Set by the service, never by the client.
OUTPUT_ONLY = ("profile_id", "user_id", "skills", "completeness", "version", "create_time", "update_time")


def tidy(profile: profile_pb2.Profile) -> profile_pb2.Profile:
    """What every stored profile looks like: a trimmed display name, PUBLIC unless chosen otherwise."""
    profile.display_name = profile.display_name.strip()
    if profile.visibility == profile_pb2.VISIBILITY_UNSPECIFIED:
        profile.visibility = profile_pb2.VISIBILITY_PUBLIC
    return profile


def new_profile(requested: profile_pb2.Profile) -> profile_pb2.Profile:
    """A profile to create from what the client sent: output-only fields dropped, validated, tidied."""
    profile = profile_pb2.Profile()
    profile.CopyFrom(requested)
    for name in OUTPUT_ONLY:
        profile.ClearField(name)
    validate_profile(profile)
    return tidy(profile)


def updated_profile(profile: profile_pb2.Profile, patch: profile_pb2.Profile, paths: list[str]) -> profile_pb2.Profile:
    """`profile` with the masked fields of `patch` applied, validated and tidied."""
    mask = field_mask_pb2.FieldMask(paths=paths)
    mask.MergeMessage(patch, profile, replace_message_field=True, replace_repeated_field=True)
    validate_profile(profile)
    return tidy(profile)


async def lock_own_profile(tx: Tx, profile_id: str) -> None:
    """Only the owner changes a profile: locks the caller's profile for the transaction;
    NOT_FOUND if the caller cannot see it, PERMISSION_DENIED if it is someone else's."""
    if await store.lock_profile(tx, profile_id):
        return
    if await store.visible_owner(tx, profile_id) is None:
        raise errors.not_found("profile")
    raise errors.permission_denied("only the owner can change this profile")


async def ensure_room_for_skill(tx: Tx, profile_id: str) -> None:
    if await store.count_skills(tx, profile_id) >= MAX_SKILLS:
        raise errors.failed_precondition(f"a profile can list at most {MAX_SKILLS} skills")


async def ensure_skill_count_within_limit(tx: Tx, profile_id: str) -> None:
    """After a merge (which may add many): the profile holds at most MAX_SKILLS."""
    if await store.count_skills(tx, profile_id) > MAX_SKILLS:
        raise errors.failed_precondition(f"a profile can list at most {MAX_SKILLS} skills")


# What enrichment may write: skills it found, never ones it claims the user typed.
ENRICHED_SOURCES = (profile_pb2.SKILL_SOURCE_GITHUB, profile_pb2.SKILL_SOURCE_RESUME)


def ensure_enriched_sources(skills) -> None:
    bad = [
        errors.FieldViolation(f"skills[{i}].source", "must be SKILL_SOURCE_GITHUB or SKILL_SOURCE_RESUME")
        for i, skill in enumerate(skills)
        if skill.source not in ENRICHED_SOURCES
    ]
    if bad:
        raise errors.invalid_argument(*bad)


def ensure_may_endorse(owner_user_id: str, endorser_user_id: str, connected: bool) -> None:
    """Only matched users endorse each other (RLS checks it again)."""
    if owner_user_id == endorser_user_id:
        raise errors.permission_denied("you cannot endorse your own skills")
    if not connected:
        raise errors.permission_denied("only people you matched with can be endorsed")


# What a viewer who is not matched with the owner sees: name, avatar, role, headline, city and
# country, timezone, top skills and what they look for (as on a match card).
LIMITED_FIELDS = ("profile_id", "user_id", "role", "display_name", "headline", "timezone", "looking_for",
                  "visibility", "avatar_url", "version", "create_time", "update_time")
TOP_SKILLS = 8


def view_for(profile: profile_pb2.Profile, caller: str, connected: bool) -> int:
    if profile.user_id == caller:
        return profile_pb2.PROFILE_VIEW_OWNER
    return profile_pb2.PROFILE_VIEW_MATCHED if connected else profile_pb2.PROFILE_VIEW_LIMITED


def shown(profile: profile_pb2.Profile, view: int) -> profile_pb2.Profile:
    """The profile as `view` shows it: the limited view keeps only LIMITED_FIELDS, the city and
    country (never the coordinates) and the strongest skills."""
    if view != profile_pb2.PROFILE_VIEW_LIMITED:
        return profile
    limited = profile_pb2.Profile()
    for name in LIMITED_FIELDS:
        field = profile_pb2.Profile.DESCRIPTOR.fields_by_name[name]
        if field.message_type is None:
            setattr(limited, name, getattr(profile, name))
        elif profile.HasField(name):
            getattr(limited, name).CopyFrom(getattr(profile, name))
    limited.location.city = profile.location.city
    limited.location.country_code = profile.location.country_code
    limited.skills.extend(profile.skills[:TOP_SKILLS])
    return limited
