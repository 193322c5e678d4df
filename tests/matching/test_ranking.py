"""The ranking's pure functions: each factor moves the way a user expects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from openhr.matching.v1 import matching_pb2
from openhr.profile.v1 import profile_pb2 as P
from services.matching import ranking
from services.matching.ranking import Person, Skill, Weights

WINTER = datetime(2026, 1, 15, 12, tzinfo=UTC)
SUMMER = datetime(2026, 7, 15, 12, tzinfo=UTC)
ENGINEERING = (Skill("Python", "engineering", 5), Skill("Kubernetes", "engineering", 4), Skill("PyTorch", "data_ml", 3))
BUSINESS = (Skill("Enterprise Sales", "sales", 5), Skill("Fundraising", "finance", 4), Skill("SEO", "marketing", 3))


def prefs(**kwargs) -> P.Preferences:
    return P.Preferences(**kwargs)


def person(user_id: str = "them", **kwargs) -> Person:
    return Person(user_id=user_id, **kwargs)


def factor(fit: ranking.Fit, which: int) -> ranking.FactorResult:
    return next(f for f in fit.factors if f.factor == which)


def test_weights_add_up_to_one_and_refuse_nonsense() -> None:
    assert sum(vars(Weights(2, 1, 1, 0).normalized()).values()) == pytest.approx(1.0)
    assert Weights(2, 1, 1, 0).normalized().skill_fit == pytest.approx(0.5)
    with pytest.raises(ValueError):
        Weights(0, 0, 0, 0).normalized()
    with pytest.raises(ValueError):
        Weights(-1, 1, 1, 1).normalized()


def test_overlap_counts_shared_working_hours_not_offset_difference() -> None:
    assert ranking.overlap_hours(0, 0) == 9
    assert ranking.overlap_hours(1, -2) == 6
    assert ranking.overlap_hours(-8, 1) == 0
    # Across the date line: UTC+12 and UTC-11 are one hour apart.
    assert ranking.overlap_hours(12, -11) == 8


def test_timezone_factor_follows_daylight_saving_and_distance() -> None:
    me = person("me", timezone="Europe/Berlin")
    london, new_york, tokyo = (person(timezone=tz) for tz in ("Europe/London", "America/New_York", "Asia/Tokyo"))
    scores = [ranking.timezone_overlap(me, them, WINTER)[0] for them in (london, new_york, tokyo)]
    assert scores[0] > scores[1] > scores[2]
    assert ranking.timezone_overlap(me, london, WINTER)[1] == "8 hours of overlapping working time"
    assert ranking.timezone_overlap(me, person(timezone=""), WINTER) == (ranking.NEUTRAL, "Timezone not stated", None)
    # Berlin and New York are 6 hours apart most of the year.
    assert ranking.timezone_overlap(me, new_york, SUMMER)[2] == 3


def test_unmet_nice_to_have_overlap_weighs_and_must_have_filters() -> None:
    far = person(timezone="Asia/Tokyo")
    nice = person("me", timezone="Europe/Berlin", preferences=prefs(timezone=P.TimezonePreference(min_overlap_hours=4)))
    plain = person("me", timezone="Europe/Berlin")
    must = person(
        "me",
        timezone="Europe/Berlin",
        preferences=prefs(timezone=P.TimezonePreference(min_overlap_hours=4, importance=P.IMPORTANCE_MUST_HAVE)),
    )
    assert ranking.timezone_overlap(nice, far, WINTER)[0] < ranking.timezone_overlap(plain, far, WINTER)[0]
    assert ranking.meets_must_haves(nice, far, WINTER)
    assert not ranking.meets_must_haves(must, far, WINTER)
    assert ranking.meets_must_haves(must, person(timezone="Europe/Paris"), WINTER)


def test_stage_factor_prefers_the_same_stage_then_neighbours() -> None:
    me = person("me", preferences=prefs(stage=P.StagePreference(stages=[P.STARTUP_STAGE_PRE_SEED])))
    same, next_, far = (
        person(preferences=prefs(stage=P.StagePreference(stages=[s])))
        for s in (P.STARTUP_STAGE_PRE_SEED, P.STARTUP_STAGE_SEED, P.STARTUP_STAGE_GROWTH)
    )
    assert ranking.stage_alignment(me, same) == (1.0, "You both want the pre seed stage")
    assert 1.0 > ranking.stage_alignment(me, next_)[0] > ranking.stage_alignment(me, far)[0]
    assert ranking.stage_alignment(me, person())[0] == ranking.NEUTRAL


def test_equity_factor_prefers_close_compensation_mixes() -> None:
    def wants(mix: int) -> P.Preferences:
        return prefs(compensation=P.CompensationPreference(mix=mix))

    me = person("me", preferences=wants(P.COMPENSATION_MIX_EQUITY_HEAVY))
    same, balanced, salary = (
        person(preferences=wants(m))
        for m in (P.COMPENSATION_MIX_EQUITY_HEAVY, P.COMPENSATION_MIX_BALANCED, P.COMPENSATION_MIX_SALARY_ONLY)
    )
    scores = [ranking.equity_alignment(me, them)[0] for them in (same, balanced, salary)]
    assert scores[0] > scores[1] > scores[2]
    assert ranking.equity_alignment(me, salary)[1] == "You want mostly equity, they want salary only"


def test_a_technical_founder_seeking_business_ranks_sales_above_a_clone() -> None:
    seeking_business = prefs(roles_sought=P.RolePreference(roles=[P.ROLE_BUSINESS_COFOUNDER]))
    me = person("me", role=P.ROLE_TECHNICAL_COFOUNDER, skills=ENGINEERING, preferences=seeking_business)
    seller = person("seller", role=P.ROLE_BUSINESS_COFOUNDER, skills=BUSINESS)
    clone = person("clone", role=P.ROLE_TECHNICAL_COFOUNDER, skills=ENGINEERING)
    ranked = ranking.rank(me, [(clone, ranking.NO_COSINES), (seller, ranking.NO_COSINES)], Weights(), WINTER)
    assert [f.user_id for f in ranked] == ["seller", "clone"]
    seller_fit = ranked[0]
    assert seller_fit.complementary_skills[:2] == ("Enterprise Sales", "Fundraising")
    assert factor(seller_fit, matching_pb2.FACTOR_SKILL_FIT).detail.startswith("Brings what you look for")
    assert ranked[1].shared_skills == ("Python", "Kubernetes", "PyTorch")


def test_without_stated_roles_what_i_lack_counts_as_complementary() -> None:
    me = person("me", skills=ENGINEERING)
    seller, clone = person(skills=BUSINESS), person(skills=ENGINEERING)
    assert ranking.complementarity(me, seller) > ranking.complementarity(me, clone)


def test_semantic_fit_averages_both_directions() -> None:
    assert ranking.semantic_fit((0.6, 0.6)) == 1.0
    assert ranking.semantic_fit((0.1, None)) == 0.0
    assert ranking.semantic_fit((0.6, 0.1)) == pytest.approx(0.5)
    assert ranking.semantic_fit((None, None)) is None
    me, them = person("me"), person()
    close = ranking.fit(me, them, Weights(), WINTER, (0.6, 0.6))
    far = ranking.fit(me, them, Weights(), WINTER, (0.0, 0.0))
    assert close.score > far.score


def test_skill_fit_sentence_names_the_direction_that_exists() -> None:
    """Someone who says nothing of what they look for has no seek vector: the sentence says
    which side's wish was compared, or that neither was stated (no skills in common here)."""
    me, them = person("me"), person()

    def sentence(cosines: ranking.Cosines) -> str:
        return factor(ranking.fit(me, them, Weights(), WINTER, cosines), matching_pb2.FACTOR_SKILL_FIT).detail

    assert sentence((None, None)) == "Neither of you says what you look for yet"
    assert sentence((0.6, None)) == "What they offer is close to what you look for"
    assert sentence((None, 0.6)) == "What you offer is close to what they look for"
    assert sentence((0.1, 0.6)) == "What you offer is close to what they look for"
    assert sentence((None, 0.1)) == "Little overlap of what you offer with what they look for"
    assert sentence((0.1, 0.1)) == "Little overlap with what you look for"
    # The one direction that exists decides the semantic part alone; none is neutral.
    unstated = ranking.fit(me, them, Weights(), WINTER, ranking.NO_COSINES)
    assert ranking.fit(me, them, Weights(), WINTER, (None, 0.6)).score > unstated.score
    assert ranking.fit(me, them, Weights(), WINTER, (None, 0.1)).score < unstated.score


def test_score_is_the_weighted_sum_and_ties_order_by_user_id() -> None:
    me = person("me", timezone="UTC")
    twins = [person(uid, timezone="UTC") for uid in ("b", "a")]
    ranked = ranking.rank(me, [(p, ranking.NO_COSINES) for p in (*twins, me)], Weights(), WINTER)
    assert [f.user_id for f in ranked] == ["a", "b"]
    first = ranked[0]
    assert first.score == pytest.approx(sum(f.score * f.weight for f in first.factors))
    assert [f.weight for f in first.factors] == [0.4, 0.2, 0.2, 0.2]
    assert ranking.rank(me, [(p, ranking.NO_COSINES) for p in twins], Weights(), WINTER, min_score=0.99) == []


def test_a_nice_to_have_work_mode_weighs_in_the_overlap_factor_and_is_explained() -> None:
    def works(*modes: int, importance: int = P.IMPORTANCE_UNSPECIFIED) -> P.Preferences:
        return prefs(work_mode=P.WorkModePreference(modes=modes, importance=importance))

    me = person("me", timezone="Europe/Berlin", preferences=works(P.WORK_MODE_REMOTE))
    remote = person("remote", timezone="Europe/Berlin", preferences=works(P.WORK_MODE_REMOTE, P.WORK_MODE_HYBRID))
    office = person("office", timezone="Europe/Berlin", preferences=works(P.WORK_MODE_IN_PERSON))
    unstated = person("unstated", timezone="Europe/Berlin")
    met, unmet = (factor(ranking.fit(me, them, Weights(), WINTER), matching_pb2.FACTOR_TIMEZONE_OVERLAP)
                  for them in (remote, office))  # fmt: skip
    assert met.score == 1.0
    assert unmet.score == pytest.approx(ranking.UNMET_NICE_TO_HAVE)
    assert met.detail == "9 hours of overlapping working time; you both work remote"
    assert unmet.detail == "9 hours of overlapping working time; they work in person, you want remote"
    # Only what both stated is compared; the whole score follows the factor.
    assert ranking.working_together(me, unstated, WINTER)[:2] == (1.0, "9 hours of overlapping working time")
    ranked = ranking.rank(me, [(office, ranking.NO_COSINES), (remote, ranking.NO_COSINES)], Weights(), WINTER)
    assert [f.user_id for f in ranked] == ["remote", "office"]
    # A must-have is a filter (in SQL, candidates.filters_for), so it does not weigh here too.
    strict = person("me", timezone="Europe/Berlin", preferences=works(P.WORK_MODE_REMOTE, importance=ranking.MUST))
    assert factor(ranking.fit(strict, office, Weights(), WINTER), matching_pb2.FACTOR_TIMEZONE_OVERLAP).score == 1.0


def test_a_nice_to_have_industry_weighs_in_the_stage_factor_and_a_must_have_filters() -> None:
    def wants(*industries: str, importance: int = P.IMPORTANCE_UNSPECIFIED) -> P.Preferences:
        return prefs(
            stage=P.StagePreference(stages=[P.STARTUP_STAGE_SEED]),
            industries=P.IndustryPreference(industries=industries, importance=importance),
        )

    me = person("me", preferences=wants("Fintech", "climate"))
    fintech = person("fintech", preferences=wants("fintech"))
    retail = person("retail", preferences=wants("retail"))
    met, unmet = ranking.stage_alignment(me, fintech), ranking.stage_alignment(me, retail)
    assert met == (1.0, "You both want the seed stage, in Fintech")
    assert unmet == (ranking.UNMET_NICE_TO_HAVE, "You both want the seed stage; they want retail, you Fintech, climate")
    ranked = ranking.rank(me, [(retail, ranking.NO_COSINES), (fintech, ranking.NO_COSINES)], Weights(), WINTER)
    assert [f.user_id for f in ranked] == ["fintech", "retail"]
    assert ranked[0].score - ranked[1].score == pytest.approx(0.2 * (1 - ranking.UNMET_NICE_TO_HAVE))
    strict = person("me", preferences=wants("fintech", importance=ranking.MUST))
    assert ranking.meets_must_haves(strict, fintech, WINTER)
    assert not ranking.meets_must_haves(strict, retail, WINTER)
    assert not ranking.meets_must_haves(strict, person(), WINTER)
    assert ranking.meets_must_haves(me, retail, WINTER)
    assert [f.user_id for f in ranking.rank(strict, [(retail, ranking.NO_COSINES)], Weights(), WINTER)] == []
