"""How well two people fit as co-founders: four factors, each 0-1 with a sentence, combined by
weights that add up to 1 (skill fit 40 %, timezone overlap 20 %, equity / salary 20 %, stage
20 % by default; settings change them). Pure functions: no I/O, no clock unless given.

- Skill fit: the semantic fit of what each seeks with what the other offers (both directions,
  cosine of the embeddings) plus complementarity: the share of the candidate's strength in the
  skill categories the viewer wants (the roles they seek) or lacks, and whether the candidate's
  role is one they seek. A technical founder seeking a business co-founder thus ranks sales and
  fundraising up, not clones of themself.
- Timezone overlap: hours shared by both 9-to-6 working days (not the difference of offsets).
- Equity / salary: how close the compensation mixes are, and the commitments.
- Stage: how close the startup stages each wants are.

Must-have preferences filter (`meets_must_haves`); nice-to-have ones weigh inside the factor
they belong to (roles in skill fit, timezone and work mode in overlap, compensation and commitment
in equity, stages and industries in stage): an unmet one scales its factor by UNMET_NICE_TO_HAVE,
and the factor's sentence says what was met or missed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from openhr.matching.v1 import matching_pb2
from openhr.profile.v1 import profile_pb2

P = profile_pb2
MUST = P.IMPORTANCE_MUST_HAVE
WORKDAY_START, WORKDAY_END = 9, 18
WORKDAY_HOURS = WORKDAY_END - WORKDAY_START
# Cosines of all-MiniLM-L6-v2 between unrelated texts sit near 0.1, between texts about the same
# thing near 0.6: this range maps onto 0-1.
COSINE_FLOOR, COSINE_SPAN = 0.1, 0.5
NEUTRAL = 0.5
# A nice-to-have preference that is not met scales its factor by this.
UNMET_NICE_TO_HAVE = 0.6
TOP_SKILLS = 8

# The skill categories (services/common/skills.py ids) a role brings.
ROLE_CATEGORIES: dict[int, frozenset[str]] = {
    P.ROLE_TECHNICAL_COFOUNDER: frozenset({"engineering", "data_ml"}),
    P.ROLE_EARLY_ENGINEER: frozenset({"engineering", "data_ml"}),
    P.ROLE_BUSINESS_COFOUNDER: frozenset({"sales", "marketing", "finance", "operations", "legal"}),
    P.ROLE_PRODUCT_COFOUNDER: frozenset({"product", "design"}),
    P.ROLE_DESIGN_COFOUNDER: frozenset({"design", "product"}),
}
ALL_CATEGORIES = frozenset().union(*ROLE_CATEGORIES.values())
MODE_NAMES = {P.WORK_MODE_REMOTE: "remote", P.WORK_MODE_IN_PERSON: "in person", P.WORK_MODE_HYBRID: "hybrid"}
STAGE_NAMES = {v: P.StartupStage.Name(v).removeprefix("STARTUP_STAGE_").replace("_", " ").lower() for v in range(1, 7)}
MIX_NAMES = {
    P.COMPENSATION_MIX_EQUITY_ONLY: "equity only",
    P.COMPENSATION_MIX_EQUITY_HEAVY: "mostly equity",
    P.COMPENSATION_MIX_BALANCED: "a balance of equity and salary",
    P.COMPENSATION_MIX_SALARY_HEAVY: "mostly salary",
    P.COMPENSATION_MIX_SALARY_ONLY: "salary only",
}


@dataclass(frozen=True)
class Weights:
    skill_fit: float = 0.4
    timezone_overlap: float = 0.2
    equity_alignment: float = 0.2
    stage_alignment: float = 0.2

    def normalized(self) -> Weights:
        """The same proportions, adding up to 1 (settings may give any non-negative numbers)."""
        values = (self.skill_fit, self.timezone_overlap, self.equity_alignment, self.stage_alignment)
        if min(values) < 0 or sum(values) <= 0:
            raise ValueError("ranking weights must be non-negative and not all zero")
        total = sum(values)
        return Weights(*(v / total for v in values))


@dataclass(frozen=True)
class Skill:
    name: str
    category: str
    proficiency: int


@dataclass(frozen=True)
class Person:
    """What ranking knows of someone (a row of the candidate read model)."""

    user_id: str
    role: int = P.ROLE_UNSPECIFIED
    timezone: str = ""
    skills: tuple[Skill, ...] = ()
    preferences: profile_pb2.Preferences = field(default_factory=profile_pb2.Preferences)

    # Computed once per person: ranking compares the viewer with hundreds of candidates.
    @cached_property
    def wanted(self) -> frozenset[str]:
        return wanted_categories(self)

    @cached_property
    def skill_keys(self) -> frozenset[str]:
        return frozenset(s.name.casefold() for s in self.skills)

    @cached_property
    def industries(self) -> dict[str, str]:
        """The industries they want to work in, casefolded, with the words they used."""
        named = (name.strip() for name in self.preferences.industries.industries)
        return {name.casefold(): name for name in named if name}


# Cosines of a pair's embeddings (unit vectors): my seek with their offer, their seek with my
# offer; None where a vector is missing. Postgres computes them (services/matching/store.py).
Cosines = tuple[float | None, float | None]
NO_COSINES: Cosines = (None, None)


@dataclass(frozen=True)
class FactorResult:
    factor: int  # matching_pb2.Factor
    score: float
    weight: float
    detail: str


@dataclass(frozen=True)
class Fit:
    user_id: str
    score: float
    factors: tuple[FactorResult, ...]
    shared_skills: tuple[str, ...]
    complementary_skills: tuple[str, ...]

    def summary(self) -> str:
        """One line: why they match."""
        parts = []
        if self.complementary_skills:
            parts.append("brings " + ", ".join(self.complementary_skills[:3]))
        if self.shared_skills:
            parts.append("shares " + ", ".join(self.shared_skills[:2]))
        best = max(self.factors, key=lambda f: f.score * f.weight)
        parts.append(best.detail[0].lower() + best.detail[1:])
        text = "; ".join(parts)
        return text[0].upper() + text[1:]


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


def _important(importance: int) -> bool:
    return importance == MUST


# --- skill fit ---------------------------------------------------------------------------


def semantic_fit(cosines: Cosines) -> float | None:
    """0-1 from the cosines of my seek with their offer and their seek with my offer; None when
    neither direction can be computed."""
    known = [c for c in cosines if c is not None]
    if not known:
        return None
    return _clamp((sum(known) / len(known) - COSINE_FLOOR) / COSINE_SPAN)


def _mass(skills: Iterable[Skill]) -> dict[str, float]:
    mass: dict[str, float] = {}
    for skill in skills:
        if skill.category:
            mass[skill.category] = mass.get(skill.category, 0.0) + skill.proficiency
    return mass


def wanted_categories(me: Person) -> frozenset[str]:
    """The categories of the roles I seek; when I seek none, those where I am weak (under a
    fifth of my strength)."""
    sought = [ROLE_CATEGORIES.get(role, frozenset()) for role in me.preferences.roles_sought.roles]
    wanted = frozenset().union(*sought) if sought else frozenset()
    if wanted:
        return wanted
    mine = _mass(me.skills)
    total = sum(mine.values())
    return frozenset(c for c in ALL_CATEGORIES if total == 0 or mine.get(c, 0.0) < 0.2 * total)


def complementarity(me: Person, them: Person) -> float:
    """0-1: the share of their skill strength in the categories I want, and whether their role is
    one I seek (neutral when I seek no role)."""
    wanted = me.wanted
    theirs = _mass(them.skills)
    total = sum(theirs.values())
    cover = sum(m for c, m in theirs.items() if c in wanted) / total if total else NEUTRAL
    sought = set(me.preferences.roles_sought.roles)
    role_match = (1.0 if them.role in sought else 0.0) if sought else NEUTRAL
    return 0.6 * cover + 0.4 * role_match


def skill_words(me: Person, them: Person) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(skills both have, their skills I lack: those in categories I want first), strongest first."""
    mine = me.skill_keys
    ordered = sorted(them.skills, key=lambda s: -s.proficiency)
    shared = tuple(s.name for s in ordered if s.name.casefold() in mine)
    wanted = me.wanted
    others = [s for s in ordered if s.name.casefold() not in mine]
    complementary = tuple(s.name for s in sorted(others, key=lambda s: (s.category not in wanted, -s.proficiency)))
    return shared[:TOP_SKILLS], complementary[:TOP_SKILLS]


def _semantic_detail(cosines: Cosines) -> str:
    """The sentence for the semantic part of skill fit, naming the direction that exists."""
    mine, theirs = cosines
    if mine is None and theirs is None:
        return "Neither of you says what you look for yet"
    if mine is not None and semantic_fit((mine, None)) >= 0.5:
        return "What they offer is close to what you look for"
    if theirs is not None and semantic_fit((None, theirs)) >= 0.5:
        return "What you offer is close to what they look for"
    if mine is None:
        return "Little overlap of what you offer with what they look for"
    return "Little overlap with what you look for"


def skill_fit(
    me: Person, them: Person, cosines: Cosines, words: tuple[tuple[str, ...], tuple[str, ...]]
) -> tuple[float, str]:
    """Semantic fit (the seek-offer directions that exist; neutral when neither does) and
    complementarity, half each."""
    semantic = semantic_fit(cosines)
    comp = complementarity(me, them)
    score = 0.5 * (NEUTRAL if semantic is None else semantic) + 0.5 * comp
    roles = me.preferences.roles_sought
    if roles.roles and them.role not in roles.roles and not _important(roles.importance):
        score *= UNMET_NICE_TO_HAVE
    shared, complementary = words
    if complementary and comp >= 0.5:
        detail = f"Brings what you look for: {', '.join(complementary[:3])}"
    elif shared:
        detail = f"Shares your skills: {', '.join(shared[:3])}"
    else:
        detail = _semantic_detail(cosines)
    return _clamp(score), detail


# --- timezone ----------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


@lru_cache(maxsize=4096)
def _offset(timezone: str, hour: int) -> float | None:
    zone = _zone(timezone)
    if zone is None:
        return None
    offset = datetime.fromtimestamp(hour * 3600, zone).utcoffset()
    return offset.total_seconds() / 3600 if offset is not None else None


def utc_offset_hours(timezone: str, at: datetime) -> float | None:
    """The zone's offset at `at` (to the hour: offsets change on the hour)."""
    return _offset(timezone, int(at.timestamp()) // 3600)


def overlap_hours(offset_a: float, offset_b: float) -> float:
    """Hours both 9-to-6 local working days share: the windows are equally long, so the
    overlap is the day length minus the (circular) distance of the offsets."""
    distance = abs(offset_a - offset_b) % 24
    distance = min(distance, 24 - distance)
    return max(0.0, WORKDAY_HOURS - distance)


def timezone_overlap(me: Person, them: Person, at: datetime) -> tuple[float, str, float | None]:
    """(score, detail, hours of overlap or None when a timezone is unknown)."""
    mine, theirs = utc_offset_hours(me.timezone, at), utc_offset_hours(them.timezone, at)
    if mine is None or theirs is None:
        return NEUTRAL, "Timezone not stated", None
    hours = overlap_hours(mine, theirs)
    score = hours / WORKDAY_HOURS
    wanted = me.preferences.timezone
    if wanted.min_overlap_hours and hours < wanted.min_overlap_hours and not _important(wanted.importance):
        score *= UNMET_NICE_TO_HAVE
    shown = f"{hours:g}"
    return _clamp(score), f"{shown} hour{'' if hours == 1 else 's'} of overlapping working time", hours


def _mode_words(modes: Iterable[int]) -> str:
    return " or ".join(MODE_NAMES[m] for m in sorted(modes) if m in MODE_NAMES)


def working_together(me: Person, them: Person, at: datetime) -> tuple[float, str, float | None]:
    """The timezone overlap factor with my work-mode preference: unmet when we share no mode
    (a nice-to-have scales the factor, a must-have was filtered in SQL); (score, detail, hours)."""
    score, detail, hours = timezone_overlap(me, them, at)
    mine, theirs = set(me.preferences.work_mode.modes) - {0}, set(them.preferences.work_mode.modes) - {0}
    if not mine or not theirs:
        return score, detail, hours
    shared = mine & theirs
    if shared:
        return score, f"{detail}; you both work {_mode_words(shared)}", hours
    if not _important(me.preferences.work_mode.importance):
        score *= UNMET_NICE_TO_HAVE
    return score, f"{detail}; they work {_mode_words(theirs)}, you want {_mode_words(mine)}", hours


# --- equity / salary ---------------------------------------------------------------------


def _commitment_closeness(a: int, b: int) -> float:
    if not a or not b:
        return NEUTRAL
    if a == b:
        return 1.0
    return 0.4 if P.COMMITMENT_ADVISORY not in (a, b) else 0.2


def equity_alignment(me: Person, them: Person) -> tuple[float, str]:
    mine, theirs = me.preferences.compensation.mix, them.preferences.compensation.mix
    if mine and theirs:
        mix = 1.0 - abs(mine - theirs) / 4
        if mine == theirs:
            detail = f"You both want {MIX_NAMES[mine]}"
        else:
            detail = f"You want {MIX_NAMES[mine]}, they want {MIX_NAMES[theirs]}"
        if mix < 0.75 and not _important(me.preferences.compensation.importance):
            mix *= UNMET_NICE_TO_HAVE
    else:
        mix, detail = NEUTRAL, "Compensation expectations not stated"
    commitment = me.preferences.commitment
    closeness = _commitment_closeness(commitment.commitment, them.preferences.commitment.commitment)
    if closeness < 1.0 and commitment.commitment and not _important(commitment.importance):
        closeness *= UNMET_NICE_TO_HAVE
    return _clamp(0.75 * mix + 0.25 * closeness), detail


# --- stage -------------------------------------------------------------------------------


def _stages(me: Person, them: Person) -> tuple[float, str]:
    mine = [s for s in me.preferences.stage.stages if s]
    theirs = [s for s in them.preferences.stage.stages if s]
    if not mine or not theirs:
        return NEUTRAL, "Startup stage not stated"
    score, a, b = max((max(0.0, 1 - abs(x - y) / 3), x, y) for x in mine for y in theirs)
    if a == b:
        detail = f"You both want the {STAGE_NAMES[a]} stage"
    else:
        detail = f"Closest stages: you {STAGE_NAMES[a]}, they {STAGE_NAMES[b]}"
    return score, detail


def stage_alignment(me: Person, them: Person) -> tuple[float, str]:
    """The venture each wants: how close the stages are, with my industry preference (unmet when
    we name no common industry: a nice-to-have scales the factor, a must-have filters)."""
    score, detail = _stages(me, them)
    mine, theirs = me.industries, them.industries
    if not mine or not theirs:
        return score, detail
    shared = [mine[key] for key in mine if key in theirs]
    if shared:
        return score, f"{detail}, in {', '.join(shared[:2])}"
    if not _important(me.preferences.industries.importance):
        score *= UNMET_NICE_TO_HAVE
    wanted, offered = ", ".join(list(mine.values())[:2]), ", ".join(list(theirs.values())[:2])
    return score, f"{detail}; they want {offered}, you {wanted}"


# --- must-haves and the whole ------------------------------------------------------------


def meets_must_haves(me: Person, them: Person, at: datetime) -> bool:
    """My must-have preferences that SQL does not check (roles, stages, commitment and work
    modes are filtered there, see candidates.filters_for): timezone overlap, compensation and
    industries."""
    prefs = me.preferences
    if _important(prefs.industries.importance) and me.industries and not me.industries.keys() & them.industries:
        return False
    if _important(prefs.timezone.importance) and prefs.timezone.min_overlap_hours:
        _score, _detail, hours = timezone_overlap(me, them, at)
        if hours is None or hours < prefs.timezone.min_overlap_hours:
            return False
    if _important(prefs.compensation.importance) and prefs.compensation.mix:
        theirs = them.preferences.compensation.mix
        if not theirs or abs(theirs - prefs.compensation.mix) > 1:
            return False
    return True


def fit(me: Person, them: Person, weights: Weights, at: datetime, cosines: Cosines = NO_COSINES) -> Fit:
    """How well `them` fits `me`, from my point of view (my preferences weigh)."""
    words = skill_words(me, them)
    skill_score, skill_detail = skill_fit(me, them, cosines, words)
    tz_score, tz_detail, _hours = working_together(me, them, at)
    equity_score, equity_detail = equity_alignment(me, them)
    stage_score, stage_detail = stage_alignment(me, them)
    factors = (
        FactorResult(matching_pb2.FACTOR_SKILL_FIT, skill_score, weights.skill_fit, skill_detail),
        FactorResult(matching_pb2.FACTOR_TIMEZONE_OVERLAP, tz_score, weights.timezone_overlap, tz_detail),
        FactorResult(matching_pb2.FACTOR_EQUITY_ALIGNMENT, equity_score, weights.equity_alignment, equity_detail),
        FactorResult(matching_pb2.FACTOR_STAGE_ALIGNMENT, stage_score, weights.stage_alignment, stage_detail),
    )
    shared, complementary = words
    score = round(_clamp(sum(f.score * f.weight for f in factors)), 6)
    return Fit(them.user_id, score, factors, shared, complementary)


def rank(
    me: Person, pool: Iterable[tuple[Person, Cosines]], weights: Weights, at: datetime, min_score: float = 0.0
) -> list[Fit]:
    """Best first; ties by user id, so the order is stable."""
    eligible = ((them, c) for them, c in pool if them.user_id != me.user_id and meets_must_haves(me, them, at))
    fits = [f for f in (fit(me, them, weights, at, c) for them, c in eligible) if f.score >= min_score]
    fits.sort(key=lambda f: (-f.score, f.user_id))
    return fits
