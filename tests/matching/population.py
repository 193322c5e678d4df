"""A generated population of varied founder profiles with realistic text (random vectors make
every ANN index look broken: the enrichment service embeds these with the real model).
Deterministic per seed.

Also used by bench/matching.py, which combines the embeddings of these phrase pools to make
100,000 profiles cheaply."""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field

from openhr.profile.v1 import profile_pb2 as P

# (role, skills with categories, headline templates, summary templates)
ARCHETYPES = {
    "technical": (
        P.ROLE_TECHNICAL_COFOUNDER,
        [
            ("Python", "engineering"),
            ("Go", "engineering"),
            ("Kubernetes", "engineering"),
            ("PostgreSQL", "engineering"),
            ("React", "engineering"),
            ("TypeScript", "engineering"),
            ("AWS", "engineering"),
            ("Rust", "engineering"),
            ("Distributed Systems", "engineering"),
        ],
        [
            "Backend engineer who has scaled {thing} to millions of users",
            "Full-stack developer shipping {thing} end to end",
            "Infrastructure engineer, built the platform behind {thing}",
            "Former staff engineer at a {industry} scale-up",
        ],
    ),
    "ml": (
        P.ROLE_TECHNICAL_COFOUNDER,
        [
            ("Machine Learning", "data_ml"),
            ("PyTorch", "data_ml"),
            ("Natural Language Processing", "data_ml"),
            ("Computer Vision", "data_ml"),
            ("Data Engineering", "data_ml"),
            ("Python", "engineering"),
            ("SQL", "data_ml"),
        ],
        [
            "Machine learning engineer building {thing} with large language models",
            "Data scientist turning {industry} data into products",
            "Applied researcher in computer vision for {industry}",
        ],
    ),
    "business": (
        P.ROLE_BUSINESS_COFOUNDER,
        [
            ("Enterprise Sales", "sales"),
            ("Business Development", "sales"),
            ("Fundraising", "finance"),
            ("Financial Modeling", "finance"),
            ("Go-to-Market Strategy", "marketing"),
            ("Partnerships", "sales"),
            ("Negotiation", "sales"),
            ("Operations", "operations"),
        ],
        [
            "Sales leader who grew {industry} revenue from zero to eight figures",
            "Commercial founder, raised a seed round for a {industry} startup",
            "Business developer with a network across {industry} buyers",
            "Former investment banker turned operator in {industry}",
        ],
    ),
    "growth": (
        P.ROLE_BUSINESS_COFOUNDER,
        [
            ("Growth Marketing", "marketing"),
            ("SEO", "marketing"),
            ("Content Marketing", "marketing"),
            ("Brand Strategy", "marketing"),
            ("Community Building", "marketing"),
            ("Customer Success", "sales"),
        ],
        [
            "Growth marketer who built communities around {thing}",
            "Marketing lead for consumer apps in {industry}",
        ],
    ),
    "product": (
        P.ROLE_PRODUCT_COFOUNDER,
        [
            ("Product Management", "product"),
            ("User Research", "product"),
            ("Roadmapping", "product"),
            ("Product Analytics", "product"),
            ("Figma", "design"),
            ("A/B Testing", "product"),
        ],
        [
            "Product manager who launched {thing} used by thousands of teams",
            "Product lead obsessed with customer discovery in {industry}",
        ],
    ),
    "design": (
        P.ROLE_DESIGN_COFOUNDER,
        [
            ("Figma", "design"),
            ("UX Design", "design"),
            ("Interaction Design", "design"),
            ("Design Systems", "design"),
            ("Prototyping", "design"),
            ("User Research", "product"),
        ],
        [
            "Product designer crafting delightful {thing}",
            "UX designer who rebuilt the design system of a {industry} company",
        ],
    ),
}
# What each archetype tends to look for (by archetype name) and how they say it.
SEEKS = {
    "technical": ["business", "growth", "product"],
    "ml": ["business", "product"],
    "business": ["technical", "ml"],
    "growth": ["technical", "product"],
    "product": ["technical", "design", "ml"],
    "design": ["technical", "product"],
}
SEEK_PHRASES = {
    "technical": "a technical co-founder who can build the product and lead engineering",
    "ml": "a machine learning expert to build our AI models",
    "business": "a business co-founder to lead sales, fundraising and partnerships",
    "growth": "a growth marketer to find our first thousand customers",
    "product": "a product co-founder to own discovery and the roadmap",
    "design": "a designer to craft the user experience",
}
THINGS = [
    "payments infrastructure",
    "a developer tools platform",
    "a telehealth app",
    "logistics software",
    "a climate analytics product",
    "an edtech marketplace",
    "a B2B SaaS for accountants",
    "a recruiting platform",
]
INDUSTRIES = ["fintech", "healthcare", "logistics", "climate", "education", "retail", "HR tech", "cybersecurity"]
PLACES = [
    ("Berlin", "DE", "Europe/Berlin"),
    ("London", "GB", "Europe/London"),
    ("Lisbon", "PT", "Europe/Lisbon"),
    ("Warsaw", "PL", "Europe/Warsaw"),
    ("New York", "US", "America/New_York"),
    ("San Francisco", "US", "America/Los_Angeles"),
    ("Austin", "US", "America/Chicago"),
    ("Toronto", "CA", "America/Toronto"),
    ("São Paulo", "BR", "America/Sao_Paulo"),
    ("Bangalore", "IN", "Asia/Kolkata"),
    ("Singapore", "SG", "Asia/Singapore"),
    ("Tokyo", "JP", "Asia/Tokyo"),
    ("Sydney", "AU", "Australia/Sydney"),
    ("Nairobi", "KE", "Africa/Nairobi"),
]
NAMES = ["Ada", "Grace", "Linus", "Ken", "Barbara", "Alan", "Margaret", "Dennis", "Frances", "Tim", "Radia", "Guido"]


@dataclass
class Generated:
    """A profile to create (through the real API) and its skills (name, category, proficiency)."""

    archetype: str
    profile: P.Profile
    skills: list[tuple[str, str, int]] = field(default_factory=list)


def generate(count: int, seed: int = 7) -> list[Generated]:
    rng = random.Random(seed)
    names = list(ARCHETYPES)
    people = []
    for i in range(count):
        archetype = names[i % len(names)]
        role, skill_pool, headlines = ARCHETYPES[archetype]
        thing, industry = rng.choice(THINGS), rng.choice(INDUSTRIES)
        city, country, timezone = rng.choice(PLACES)
        sought = rng.sample(SEEKS[archetype], k=rng.randint(1, 2))
        stages = rng.sample(range(1, 7), k=rng.randint(1, 2))
        prefs = P.Preferences(
            stage=P.StagePreference(stages=sorted(stages)),
            roles_sought=P.RolePreference(roles=sorted({ARCHETYPES[s][0] for s in sought})),
            commitment=P.CommitmentPreference(commitment=rng.choice([1, 1, 1, 2, 3])),
            compensation=P.CompensationPreference(mix=rng.randint(1, 5)),
            work_mode=P.WorkModePreference(modes=sorted(set(rng.sample([1, 2, 3], k=rng.randint(1, 2))))),
            industries=P.IndustryPreference(industries=[industry]),
        )
        headline = rng.choice(headlines).format(thing=thing, industry=industry)
        profile = P.Profile(
            role=role,
            display_name=f"{rng.choice(NAMES)} {i}",
            headline=headline[:140],
            summary=f"I care about {industry}. Previously worked on {thing}. {rng.randint(3, 20)} years in the field.",
            location={"city": city, "country_code": country, "latitude": -59.5 + i % 120, "longitude": 2.5},
            timezone=timezone,
            years_experience=rng.randint(2, 25),
            looking_for=(
                f"Looking for {' and '.join(SEEK_PHRASES[s] for s in sought)} in {industry}, "
                f"building {thing}."
            ),
            visibility=P.VISIBILITY_PUBLIC,
            preferences=prefs,
        )
        skills = [(name, category, rng.randint(2, 5)) for name, category in rng.sample(skill_pool, k=4)]
        people.append(Generated(archetype, profile, skills))
    return people


# A founder made to test ranking: technical, seeking a business co-founder; and one who fits.
ENGINEER = Generated(
    "technical",
    P.Profile(
        role=P.ROLE_TECHNICAL_COFOUNDER,
        display_name="Tess",
        headline="Backend engineer who scaled payments infrastructure to millions of users",
        summary="Ten years of distributed systems in fintech.",
        timezone="Europe/Berlin",
        looking_for="Looking for a business co-founder to lead sales, fundraising and partnerships in fintech.",
        preferences=P.Preferences(
            roles_sought=P.RolePreference(roles=[P.ROLE_BUSINESS_COFOUNDER]),
            stage=P.StagePreference(stages=[P.STARTUP_STAGE_PRE_SEED]),
            compensation=P.CompensationPreference(mix=P.COMPENSATION_MIX_EQUITY_HEAVY),
        ),
    ),
    [("Python", "engineering", 5), ("Go", "engineering", 4), ("Kubernetes", "engineering", 4), ("PostgreSQL", "", 3)],
)
SELLER = Generated(
    "business",
    P.Profile(
        role=P.ROLE_BUSINESS_COFOUNDER,
        display_name="Sam",
        headline="Sales leader who grew fintech revenue from zero to eight figures",
        summary="Raised two seed rounds; knows bank buyers.",
        timezone="Europe/Berlin",
        looking_for="Looking for a technical co-founder who can build the product and lead engineering.",
        preferences=P.Preferences(
            roles_sought=P.RolePreference(roles=[P.ROLE_TECHNICAL_COFOUNDER]),
            stage=P.StagePreference(stages=[P.STARTUP_STAGE_PRE_SEED]),
            compensation=P.CompensationPreference(mix=P.COMPENSATION_MIX_EQUITY_HEAVY),
        ),
    ),
    [("Enterprise Sales", "", 5), ("Fundraising", "", 5), ("Business Development", "", 4), ("Python", "", 2)],
)


def variant(base: Generated, **changes) -> Generated:
    made = copy.deepcopy(base)
    for name, value in changes.items():
        if name == "stages":
            made.profile.preferences.stage.stages[:] = value
        else:
            setattr(made.profile, name, value)
    return made
