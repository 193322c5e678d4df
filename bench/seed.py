"""Seed data: N realistic-looking, varied profiles created through the profile service's gRPC API, each
by its own user (`bench-{i}@example.com`), with 2-8 skills and a few endorsements.

Text is generated from a fixed random seed, so every run reads the same kind of rows (summaries of
200-900 characters, every preference set, skills from the taxonomy and a few custom ones). Every profile
is PUBLIC so that any bench user may read any of them."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import grpc

from openhr.profile.v1 import profile_pb2, profile_pb2_grpc
from services.common.db import Database, app_role
from services.profile import store

FIRST = (
    "Amara Ben Chen Dana Elif Farid Greta Hiro Ines Jonas Kavya Liam Maya Nils Olu Priya Quinn Rafael Sana Tomas "
    "Uma Viktor Wen Ximena Yusuf Zoe Aleksandra Bram Chiara Diego Emeka Freya Gabriel Hana Ivan Julia Kenji Lena "
    "Mateo Noor Oskar Paula Ravi Sofia Tariq Valentina Wiktor Yara Aiko Bruno Camille Dev"
).split()
LAST = (
    "Okafor Schmidt Nakamura Rossi Kowalski Haddad Lindqvist Fernandes Patel Nguyen Moreau Johansson Dubois "
    "Yilmaz Costa Novak Andersen Kim Mensah Garcia Ivanova Tanaka Bauer Silva Walsh O'Brien Rahman Horvat "
    "Petrov Mbeki Laurent Eriksen Sato Varga Reyes Fischer Kaur Oyelaran Castillo"
).split()
# (city, country, latitude, longitude, IANA zone)
CITIES = (
    ("Berlin", "DE", 52.52, 13.405, "Europe/Berlin"),
    ("Lisbon", "PT", 38.7223, -9.1393, "Europe/Lisbon"),
    ("London", "GB", 51.5072, -0.1276, "Europe/London"),
    ("Paris", "FR", 48.8566, 2.3522, "Europe/Paris"),
    ("Warsaw", "PL", 52.2297, 21.0122, "Europe/Warsaw"),
    ("Stockholm", "SE", 59.3293, 18.0686, "Europe/Stockholm"),
    ("Lagos", "NG", 6.5244, 3.3792, "Africa/Lagos"),
    ("Nairobi", "KE", -1.2921, 36.8219, "Africa/Nairobi"),
    ("Bangalore", "IN", 12.9716, 77.5946, "Asia/Kolkata"),
    ("Singapore", "SG", 1.3521, 103.8198, "Asia/Singapore"),
    ("Tokyo", "JP", 35.6762, 139.6503, "Asia/Tokyo"),
    ("Seoul", "KR", 37.5665, 126.978, "Asia/Seoul"),
    ("Sydney", "AU", -33.8688, 151.2093, "Australia/Sydney"),
    ("San Francisco", "US", 37.7749, -122.4194, "America/Los_Angeles"),
    ("New York", "US", 40.7128, -74.006, "America/New_York"),
    ("Austin", "US", 30.2672, -97.7431, "America/Chicago"),
    ("Toronto", "CA", 43.6532, -79.3832, "America/Toronto"),
    ("Mexico City", "MX", 19.4326, -99.1332, "America/Mexico_City"),
    ("São Paulo", "BR", -23.5505, -46.6333, "America/Sao_Paulo"),
    ("Buenos Aires", "AR", -34.6037, -58.3816, "America/Argentina/Buenos_Aires"),
    ("Tallinn", "EE", 59.437, 24.7536, "Europe/Tallinn"),
    ("Zürich", "CH", 47.3769, 8.5417, "Europe/Zurich"),
)
DOMAINS = (
    "climate tech",
    "fintech",
    "developer tools",
    "healthcare",
    "edtech",
    "logistics",
    "B2B SaaS",
    "marketplaces",
    "AI infrastructure",
    "cybersecurity",
    "legal tech",
    "agritech",
    "creator economy",
    "proptech",
    "biotech tooling",
)
PAST = (
    "led the payments team at a Series B startup",
    "spent six years building data pipelines at a bank",
    "founded a bootstrapped analytics company and sold it",
    "ran growth for a consumer app from 0 to 2M users",
    "was the first engineer at a YC-backed devtools startup",
    "built ML ranking systems for an e-commerce marketplace",
    "managed enterprise sales across DACH and the Nordics",
    "designed the mobile banking app of a neobank",
    "shipped firmware for industrial IoT sensors",
    "scaled a support organisation from 5 to 80 people",
    "worked as a product manager on search at a large marketplace",
    "did a PhD on distributed consensus",
    "ran operations for a last-mile delivery startup",
    "built the pricing engine of an insurance startup",
)
WANT = (
    "a technical co-founder who enjoys talking to customers",
    "a business co-founder with enterprise sales experience",
    "an early engineer who likes owning whole features",
    "a designer who can also write front-end code",
    "someone who has done regulated products before",
    "a co-founder comfortable with a long research phase",
    "people who want to move fast and measure everything",
    "a partner to split product and go-to-market with",
)
SENTENCES = (
    "I care about small teams, short feedback loops and writing things down.",
    "Right now I am validating the idea with {n} design partners.",
    "We have a working prototype and a waitlist of about {n}00 people.",
    "I prefer async work across time zones, with one day a week of deep overlap.",
    "I am happiest when I can own a problem end to end, from the first customer call to production.",
    "My strongest skills are {a} and {b}; I am learning {c} on the side.",
    "Outside work I mentor first-time founders and contribute to open source.",
    "I have savings for about {n} months of full-time work on a new company.",
    "I think the best products come from people who have felt the pain themselves.",
    "I am looking for someone who disagrees with me early and often, kindly.",
)
SKILLS = (
    "Python",
    "TypeScript",
    "React",
    "Go",
    "Rust",
    "Kubernetes",
    "PostgreSQL",
    "Machine Learning",
    "Figma",
    "Product Management",
    "Enterprise Sales",
    "SEO",
    "Fundraising",
    "Financial Modeling",
    "Docker",
    "AWS",
    "Data Engineering",
    "UX Research",
    "Growth Marketing",
    "Swift",
    "Kotlin",
    "GraphQL",
    "Terraform",
    "Django",
    "Node.js",
    "Pandas",
    "PyTorch",
    "Copywriting",
    "Customer Success",
    "Recruiting",
    "Contract Law",
    "B2B Sales",
    "Underwater basket weaving",
    "Community building",
    "Hardware prototyping",
)
INDUSTRIES = ("Fintech", "Climate", "Healthcare", "Developer Tools", "Education", "Logistics", "AI", "Security")


@dataclass(frozen=True)
class SeededProfile:
    index: int
    email: str
    profile_id: str


def profile_for(index: int, rng: random.Random) -> tuple[profile_pb2.Profile, list[str]]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city, country, lat, lon, zone = rng.choice(CITIES)
    skills = rng.sample(SKILLS, rng.randint(2, 8))
    domain = rng.choice(DOMAINS)
    years = rng.randint(1, 25)
    summary_parts = [f"I {rng.choice(PAST)} and now want to start something in {domain}."]
    for sentence in rng.sample(SENTENCES, rng.randint(2, 6)):
        summary_parts.append(
            sentence.format(n=rng.randint(2, 9), a=skills[0], b=skills[-1], c=rng.choice(SKILLS).lower())
        )
    handle = f"{first}{last}".lower().replace("'", "")[:30] + str(index)
    stage_values = [v for v in profile_pb2.StartupStage.values() if v]
    role_values = [v for v in profile_pb2.Role.values() if v]
    importance = lambda: rng.choice((profile_pb2.IMPORTANCE_NICE_TO_HAVE, profile_pb2.IMPORTANCE_MUST_HAVE))  # noqa: E731
    profile = profile_pb2.Profile(
        role=rng.choice(role_values),
        display_name=f"{first} {last}",
        headline=f"{rng.choice(('Ex-', 'Former ', ''))}{rng.choice(skills)} person exploring {domain}"[:140],
        summary=" ".join(summary_parts)[:4000],
        location={"city": city, "country_code": country, "latitude": lat, "longitude": lon},
        timezone=zone,
        years_experience=years,
        looking_for=f"Looking for {rng.choice(WANT)}, ideally in {domain}.",
        links={
            "github_username": handle,
            "website_url": f"https://{handle}.dev",
            "linkedin_url": f"https://www.linkedin.com/in/{handle}",
        },
        visibility=profile_pb2.VISIBILITY_PUBLIC,
        avatar_url=f"https://avatars.example.com/{handle}.png",
        # Every preference is set (non-default values), as a completed onboarding leaves it.
        preferences={
            "stage": {"stages": sorted(rng.sample(stage_values, rng.randint(1, 3))), "importance": importance()},
            "roles_sought": {"roles": sorted(rng.sample(role_values, rng.randint(1, 3))), "importance": importance()},
            "commitment": {
                "commitment": rng.choice((profile_pb2.COMMITMENT_FULL_TIME, profile_pb2.COMMITMENT_PART_TIME)),
                "hours_per_week": rng.choice((20, 30, 40, 50, 60)),
                "importance": importance(),
            },
            "compensation": {"mix": rng.randint(1, 5), "importance": importance()},
            "work_mode": {"modes": sorted(rng.sample((1, 2, 3), rng.randint(1, 2))), "importance": importance()},
            "timezone": {"min_overlap_hours": rng.randint(1, 8), "importance": importance()},
            "industries": {"industries": rng.sample(INDUSTRIES, rng.randint(1, 3)), "importance": importance()},
        },
    )
    return profile, skills


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def seed_profiles(
    target: str,
    token_for,
    enrichment_token,
    count: int,
    *,
    database_url: str | None = None,
    concurrency: int = 16,
    endorse_share: float = 0.3,
    seed: int = 7,
) -> list[SeededProfile]:
    """Creates `count` profiles with skills (and endorsements on some) through gRPC; returns them in order.
    `token_for(email)` mints an access token; `enrichment_token()` the enrichment service's token
    (skills arrive as enrichment merges them: MergeEnrichedSkills answers no user). Only matched users
    endorse each other: with `database_url` (the profile schema's), each endorsing pair is first made a
    match in the profile service's read model, as its MatchCreated consumer does (services/profile/app.py;
    a like and a like back through matching would need both profiles embedded first); without it, no
    endorsements."""
    rng = random.Random(seed)
    plans = [profile_for(i, rng) for i in range(count)]
    created: list[SeededProfile | None] = [None] * count
    skill_ids: dict[int, list[str]] = {}
    user_ids: dict[int, str] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async with grpc.aio.insecure_channel(target) as channel:
        public = profile_pb2_grpc.ProfileServiceStub(channel)
        internal = profile_pb2_grpc.ProfileInternalServiceStub(channel)

        async def create_worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                email = f"bench-{i}@example.com"
                metadata = bearer(token_for(email))
                profile, skills = plans[i]
                response = await public.CreateProfile(
                    profile_pb2.CreateProfileRequest(profile=profile), metadata=metadata, timeout=30
                )
                merged = await internal.MergeEnrichedSkills(
                    profile_pb2.MergeEnrichedSkillsRequest(
                        user_id=response.profile.user_id,
                        skills=[
                            profile_pb2.EnrichedSkill(
                                name=name, proficiency=1 + (i + k) % 5, source=profile_pb2.SKILL_SOURCE_GITHUB
                            )
                            for k, name in enumerate(skills)
                        ],
                    ),
                    metadata=bearer(enrichment_token()),
                    timeout=30,
                )
                skill_ids[i] = [s.skill_id for s in merged.skills]
                user_ids[i] = response.profile.user_id
                created[i] = SeededProfile(i, email, response.profile.profile_id)

        await asyncio.gather(*(create_worker() for _ in range(concurrency)))

        # Endorsements by other bench users, so the endorsement-count query finds rows on some profiles.
        endorsements = [
            (i, (i + 1 + rng.randrange(count - 1)) % count, rng.choice(skill_ids[i]))
            for i in range(count)
            if count > 1 and rng.random() < endorse_share
        ]
        if database_url is None:
            endorsements = []
        else:
            db = Database(database_url, app_role=app_role(store.SCHEMA), application_name="bench-seed")
            try:
                for owner, endorser, _ in endorsements:
                    async with db.transaction(user_ids[owner]) as tx:
                        await store.add_connection(tx, user_ids[owner], user_ids[endorser])
            finally:
                await db.close()
        sem = asyncio.Semaphore(concurrency)

        async def endorse(owner: int, endorser: int, skill_id: str) -> None:
            async with sem:
                await public.CreateEndorsement(
                    profile_pb2.CreateEndorsementRequest(
                        profile_id=created[owner].profile_id, skill_id=skill_id, note="Worked together, solid."
                    ),
                    metadata=bearer(token_for(f"bench-{endorser}@example.com")),
                    timeout=30,
                )

        await asyncio.gather(*(endorse(*e) for e in endorsements))
    return [p for p in created if p is not None]
