"""A fixed set of realistic texts to embed: short skill phrases and ~60-word profile
summaries. The parity test (tests/enrichment) and the benchmark (bench/embeddings.py) use it."""

from __future__ import annotations

SKILL_PHRASES = [
    "Python", "Kubernetes", "React", "B2B sales", "product management", "growth marketing", "Figma",
    "Terraform", "PostgreSQL", "machine learning", "fundraising", "Rust", "Go", "TypeScript",
    "user research", "financial modeling", "contract negotiation", "SEO", "content marketing",
    "data engineering", "computer vision", "natural language processing", "iOS development",
    "Android development", "DevOps", "AWS", "Google Cloud", "Docker", "GraphQL", "Redis",
    "distributed systems", "embedded firmware", "hardware prototyping", "supply chain", "recruiting",
    "customer success", "pricing strategy", "enterprise sales", "partnerships", "brand design",
    "UX writing", "copywriting", "public relations", "community building", "technical writing",
    "deep learning", "PyTorch", "TensorFlow", "data visualization", "SQL", "Excel", "accounting",
    "venture capital", "pitch decks", "go-to-market strategy", "cybersecurity", "penetration testing",
    "blockchain", "smart contracts", "LLM fine-tuning", "prompt engineering", "MLOps", "Spark", "Kafka",
]  # fmt: skip

SUMMARIES = [
    "Backend engineer with ten years building payment systems in Go and Python. I led a team of six at a "
    "fintech startup through its series A, designed event-driven services on Kafka and Postgres, and run "
    "Kubernetes in production. Now looking for a business co-founder who knows B2B sales in Europe and wants "
    "to build developer tools for small finance teams.",
    "Product designer who spent six years at consumer apps with millions of users, most recently leading "
    "design for a health startup. I run user research, prototype in Figma and ship with engineers every week. "
    "I want to start a company in digital health and I am looking for a technical co-founder who has built "
    "mobile apps at scale.",
    "Enterprise sales leader with twelve years selling software to banks and insurers across Germany, France "
    "and the Nordics. I built two sales teams from zero to twenty people and closed seven-figure contracts. "
    "Looking for a technical co-founder in security or compliance software who wants a partner to own "
    "go-to-market from day one.",
    "Machine learning engineer focused on language models: fine-tuning, evaluation and serving on a budget. "
    "Previously at a research lab and a legal tech startup where I shipped document search used by hundreds "
    "of firms. I am looking for a co-founder with domain knowledge in law or accounting and a network of "
    "early customers.",
    "Operations and finance generalist who has been the first non-technical hire at three startups. I set up "
    "accounting, payroll, hiring and vendor contracts, and I raised a seed round as chief of staff. I want to "
    "join a technical founder as business co-founder in climate or logistics, ideally before the first "
    "funding round.",
    "Hardware engineer building embedded devices for agriculture: sensors, firmware in C and Rust, low-power "
    "radio and field testing on farms. I have brought two products from prototype to manufacturing in "
    "China. Looking for a co-founder who understands farmers and can sell to cooperatives and large growers "
    "in Spain and Italy.",
    "Full-stack developer, TypeScript and React on the front, Node and PostgreSQL behind it, with a soft spot "
    "for developer experience. I built the internal tools platform at a marketplace company and maintain a "
    "popular open-source form library. Looking for a product-minded co-founder to build collaboration "
    "software for small agencies.",
    "Growth marketer who scaled a subscription app from ten thousand to a million users with content, SEO, "
    "referral loops and paid acquisition. I know analytics, experimentation and pricing pages by heart. I am "
    "looking for a technical co-founder who wants to build a consumer product in education or personal "
    "finance and grow it together.",
    "Data engineer with eight years of pipelines: Spark, Airflow, dbt and a warehouse that served analysts at "
    "a ride-hailing company. I care about data quality and cost. I want to build a startup around data "
    "observability and am looking for a co-founder with enterprise sales experience who has sold to data "
    "teams before.",
    "Security engineer and former penetration tester who has audited banks, hospitals and crypto exchanges. "
    "I write tooling in Go and Python and teach secure coding workshops. Looking for a co-founder with "
    "product and design skills to build an easy security scanner for startups that cannot afford a security "
    "team yet.",
    "Second-time founder: my first company, a logistics marketplace, was acquired after four years. I handle "
    "fundraising, hiring and early sales, and I have a network of angels and seed funds in London. Looking "
    "for a technical co-founder, ideally with machine learning experience, to build routing software for "
    "urban delivery fleets.",
    "Mobile engineer with iOS and Android apps in fitness and travel, Swift and Kotlin, plus some Flutter. I "
    "shipped an app that reached the top ten in its category and care about performance and accessibility. "
    "Looking for a business co-founder who can bring partnerships with gyms and insurers for a preventive "
    "health app.",
]


def summaries(count: int) -> list[str]:
    """`count` distinct ~60-word summaries (the set, then variants naming a year of experience more)."""
    out = []
    for i in range(count):
        text = SUMMARIES[i % len(SUMMARIES)]
        out.append(text if i < len(SUMMARIES) else f"{text} ({i // len(SUMMARIES)} more years since.)")
    return out


def skill_phrases(count: int) -> list[str]:
    """`count` distinct short phrases."""
    return [p if i < len(SKILL_PHRASES) else f"{p} {i // len(SKILL_PHRASES)}" for i, p in enumerate(
        SKILL_PHRASES[i % len(SKILL_PHRASES)] for i in range(count))]
