"""What a valid profile is. Limits are stated once here and in the proto comments."""

from __future__ import annotations

import ipaddress
import re
import uuid
import zoneinfo
from functools import cache
from urllib.parse import urlparse

from google.protobuf import field_mask_pb2
from google.protobuf.descriptor import EnumDescriptor

from openhr.profile.v1 import profile_pb2
from services.common.errors import FieldViolation, invalid_argument
from services.common.skills import MAX_SKILL_NAME
from services.common.text import CONTROL_PROBLEM, has_control_characters

MAX_DISPLAY_NAME = 80
MAX_HEADLINE = 140
MAX_SUMMARY = 4000
MAX_LOOKING_FOR = 1000
MAX_CITY = 100
MAX_URL = 300
MAX_YEARS = 70
MAX_NOTE = 280
MAX_INDUSTRIES = 20
MAX_INDUSTRY = 60
MAX_HOURS_PER_WEEK = 80
MAX_OVERLAP_HOURS = 12
MAX_MASK_PATHS = 64

_GITHUB_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")

# Paths a client may name in UpdateProfile's update_mask (sub-paths of these are allowed too).
UPDATABLE = frozenset(
    {
        "role",
        "display_name",
        "headline",
        "summary",
        "location",
        "timezone",
        "years_experience",
        "looking_for",
        "links",
        "visibility",
        "preferences",
        "avatar_url",
    }
)


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def parse_uuid(value: str, field: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError):
        raise invalid_argument(FieldViolation(field, "must be a UUID")) from None


def _text(violations: list[FieldViolation], field: str, value: str, limit: int, *, required: bool = False) -> None:
    if required and not value.strip():
        violations.append(FieldViolation(field, "is required"))
    elif len(value) > limit:
        violations.append(FieldViolation(field, f"must be at most {limit} characters"))
    elif has_control_characters(value):
        violations.append(FieldViolation(field, CONTROL_PROBLEM))


def validate_note(note: str) -> None:
    v: list[FieldViolation] = []
    _text(v, "note", note, MAX_NOTE)
    if v:
        raise invalid_argument(*v)


def _enum(violations: list[FieldViolation], field: str, value: int, descriptor: EnumDescriptor) -> None:
    if value not in descriptor.values_by_number:
        violations.append(FieldViolation(field, f"unknown {descriptor.name} value {value}"))


def _public_host(host: str) -> bool:
    """Not an IP literal of a private, loopback, link-local (cloud metadata) or reserved range."""
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return True  # a name: the server never resolves or fetches it


def _url(violations: list[FieldViolation], field: str, value: str) -> None:
    """Links and avatars are shown to people, never fetched by the server. Still: no user-info
    (`user:pass@`, a phishing device and a credential leak) and no IP literal that points
    inside a network (169.254.169.254 and friends), in case a client ever fetches them."""
    if not value:
        return
    try:
        parsed = urlparse(value)
        host = parsed.hostname or ""
    except ValueError:
        parsed, host = None, ""
    if len(value) > MAX_URL or parsed is None or parsed.scheme not in ("http", "https") or not host:
        violations.append(FieldViolation(field, f"must be an http(s) URL of at most {MAX_URL} characters"))
    elif "@" in parsed.netloc or has_control_characters(value):
        violations.append(FieldViolation(field, "must not contain a user name, password or control characters"))
    elif not _public_host(host):
        violations.append(FieldViolation(field, "must not point to a private, loopback or link-local address"))


def _preferences(violations: list[FieldViolation], prefs: profile_pb2.Preferences) -> None:
    p = "profile.preferences"
    for name in ("stage", "roles_sought", "commitment", "compensation", "work_mode", "timezone", "industries"):
        _enum(violations, f"{p}.{name}.importance", getattr(prefs, name).importance, profile_pb2.Importance.DESCRIPTOR)
    for i, stage in enumerate(prefs.stage.stages):
        _enum(violations, f"{p}.stage.stages[{i}]", stage, profile_pb2.StartupStage.DESCRIPTOR)
    for i, role in enumerate(prefs.roles_sought.roles):
        _enum(violations, f"{p}.roles_sought.roles[{i}]", role, profile_pb2.Role.DESCRIPTOR)
    for i, mode in enumerate(prefs.work_mode.modes):
        _enum(violations, f"{p}.work_mode.modes[{i}]", mode, profile_pb2.WorkMode.DESCRIPTOR)
    _enum(violations, f"{p}.commitment.commitment", prefs.commitment.commitment, profile_pb2.Commitment.DESCRIPTOR)
    _enum(violations, f"{p}.compensation.mix", prefs.compensation.mix, profile_pb2.CompensationMix.DESCRIPTOR)
    if not 0 <= prefs.commitment.hours_per_week <= MAX_HOURS_PER_WEEK:
        violations.append(FieldViolation(f"{p}.commitment.hours_per_week", f"must be 0-{MAX_HOURS_PER_WEEK}"))
    if not 0 <= prefs.timezone.min_overlap_hours <= MAX_OVERLAP_HOURS:
        violations.append(FieldViolation(f"{p}.timezone.min_overlap_hours", f"must be 0-{MAX_OVERLAP_HOURS}"))
    if len(prefs.industries.industries) > MAX_INDUSTRIES:
        violations.append(FieldViolation(f"{p}.industries.industries", f"at most {MAX_INDUSTRIES} industries"))
    for i, industry in enumerate(prefs.industries.industries):
        _text(violations, f"{p}.industries.industries[{i}]", industry, MAX_INDUSTRY, required=True)


def validate_profile(profile: profile_pb2.Profile) -> None:
    """Raises INVALID_ARGUMENT naming every bad field of a complete profile."""
    v: list[FieldViolation] = []
    _enum(v, "profile.role", profile.role, profile_pb2.Role.DESCRIPTOR)
    _enum(v, "profile.visibility", profile.visibility, profile_pb2.Visibility.DESCRIPTOR)
    _text(v, "profile.display_name", profile.display_name, MAX_DISPLAY_NAME, required=True)
    _text(v, "profile.headline", profile.headline, MAX_HEADLINE)
    _text(v, "profile.summary", profile.summary, MAX_SUMMARY)
    _text(v, "profile.looking_for", profile.looking_for, MAX_LOOKING_FOR)
    _text(v, "profile.location.city", profile.location.city, MAX_CITY)
    if profile.location.country_code and not _COUNTRY.match(profile.location.country_code):
        v.append(FieldViolation("profile.location.country_code", "must be an ISO 3166-1 alpha-2 code such as DE"))
    if not -90 <= profile.location.latitude <= 90:
        v.append(FieldViolation("profile.location.latitude", "must be between -90 and 90"))
    if not -180 <= profile.location.longitude <= 180:
        v.append(FieldViolation("profile.location.longitude", "must be between -180 and 180"))
    if profile.timezone and profile.timezone not in _timezones():
        v.append(FieldViolation("profile.timezone", "must be an IANA time zone such as Europe/Berlin"))
    if not 0 <= profile.years_experience <= MAX_YEARS:
        v.append(FieldViolation("profile.years_experience", f"must be 0-{MAX_YEARS}"))
    if profile.links.github_username and not _GITHUB_LOGIN.match(profile.links.github_username):
        v.append(FieldViolation("profile.links.github_username", "is not a valid GitHub username"))
    _url(v, "profile.links.website_url", profile.links.website_url)
    _url(v, "profile.links.linkedin_url", profile.links.linkedin_url)
    _url(v, "profile.avatar_url", profile.avatar_url)
    _preferences(v, profile.preferences)
    if v:
        raise invalid_argument(*v)


def validate_update_mask(mask: field_mask_pb2.FieldMask) -> list[str]:
    """The mask's paths, checked against Profile and the updatable fields."""
    if not mask.paths:
        raise invalid_argument(FieldViolation("update_mask", "is required: name the fields to change, e.g. headline"))
    if len(mask.paths) > MAX_MASK_PATHS:
        raise invalid_argument(FieldViolation("update_mask", f"at most {MAX_MASK_PATHS} paths"))
    if not mask.IsValidForDescriptor(profile_pb2.Profile.DESCRIPTOR):
        raise invalid_argument(FieldViolation("update_mask", f"unknown field in {', '.join(mask.paths)}"))
    fixed = sorted({p for p in mask.paths if p.split(".")[0] not in UPDATABLE})
    if fixed:
        raise invalid_argument(FieldViolation("update_mask", f"cannot be changed: {', '.join(fixed)}"))
    return list(mask.paths)


def validate_skill(name: str, proficiency: int, field_prefix: str = "") -> str:
    cleaned = " ".join(name.split())
    v: list[FieldViolation] = []
    if not cleaned:
        v.append(FieldViolation(f"{field_prefix}name", "is required"))
    elif len(cleaned) > MAX_SKILL_NAME:
        v.append(FieldViolation(f"{field_prefix}name", f"must be at most {MAX_SKILL_NAME} characters"))
    elif has_control_characters(cleaned):
        v.append(FieldViolation(f"{field_prefix}name", CONTROL_PROBLEM))
    if not 1 <= proficiency <= 5:
        v.append(FieldViolation(f"{field_prefix}proficiency", "must be 1-5"))
    if v:
        raise invalid_argument(*v)
    return cleaned


def completeness(profile: profile_pb2.Profile, skill_count: int) -> int:
    """0-100: the share of what makes a good match card that is filled in."""
    parts = [
        (10, profile.role != profile_pb2.ROLE_UNSPECIFIED),
        (10, bool(profile.display_name)),
        (10, bool(profile.headline)),
        (15, len(profile.summary) >= 80),
        (5, bool(profile.location.city or profile.location.country_code)),
        (10, bool(profile.timezone)),
        (5, profile.years_experience > 0),
        (10, bool(profile.looking_for)),
        (5, bool(profile.links.github_username or profile.links.website_url or profile.links.linkedin_url)),
        (10, profile.HasField("preferences") and profile.preferences.ByteSize() > 0),
        (10, skill_count >= 3),
    ]
    return sum(weight for weight, filled in parts if filled)
