"""Skills taxonomy search (services/enrichment/taxonomy.py `default_taxonomy().search(q)`), in process:
1,000 mixed queries built from the bundled data with a fixed seed, each timed on its own, 5 repeats.

Query mix (what autosuggest sees): typed prefixes of 1-4 characters, whole names, aliases in another
case, one-letter typos of names, a later word of a multi-word name ("learning"), names with extra spacing
and punctuation, category-filtered prefixes, and words the taxonomy does not know."""

from __future__ import annotations

import random
import statistics
import string
import time

from services.enrichment.taxonomy import CATEGORIES, DATA_PATH, default_taxonomy

QUERIES = 1000
REPEATS = 5
UNKNOWN = (
    "underwater basket weaving", "sourdough", "beekeeping", "xylophone", "origami", "kitesurf", "zzzz", "qwerty",
    "falconry", "calligraphy", "sommelier", "glassblowing", "parkour", "taxidermy", "yodeling", "astrology",
)  # fmt: skip
# (kind, share of the 1,000 queries)
MIX = (
    ("prefix", 0.30),
    ("exact", 0.15),
    ("alias", 0.10),
    ("typo", 0.15),
    ("later_word", 0.10),
    ("messy", 0.05),
    ("category_prefix", 0.05),
    ("unknown", 0.10),
)


def _typo(text: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(text))  # keep the first letter, as people mostly do
    op = rng.choice(("swap", "drop", "replace", "insert"))
    if op == "swap" and i < len(text) - 1:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if op == "drop":
        return text[:i] + text[i + 1 :]
    letter = rng.choice(string.ascii_lowercase)
    if op == "insert":
        return text[:i] + letter + text[i:]
    return text[:i] + letter + text[i + 1 :]


def build_queries(count: int = QUERIES, seed: int = 11) -> list[tuple[str, str, str | None]]:
    """(kind, query, category) triples."""
    import json

    skills = json.loads(DATA_PATH.read_text(encoding="utf-8"))["skills"]
    rng = random.Random(seed)
    long_names = [s["name"] for s in skills if len(s["name"]) >= 6]
    multi_word = [s["name"] for s in skills if len(s["name"].split()) >= 2]
    with_alias = [s for s in skills if s["aliases"]]
    out: list[tuple[str, str, str | None]] = []
    for kind, share in MIX:
        for _ in range(round(count * share)):
            skill = rng.choice(skills)
            if kind == "prefix":
                query, category = skill["name"][: rng.randint(1, 4)], None
            elif kind == "exact":
                query, category = skill["name"], None
            elif kind == "alias":
                alias = rng.choice(rng.choice(with_alias)["aliases"])
                query, category = rng.choice((alias.lower(), alias.upper())), None
            elif kind == "typo":
                query, category = _typo(rng.choice(long_names).lower(), rng), None
            elif kind == "later_word":
                query, category = rng.choice(multi_word).split()[-1].lower(), None
            elif kind == "messy":
                query, category = f"  {skill['name'].lower().replace(' ', '  ')}. ", None
            elif kind == "category_prefix":
                query, category = skill["name"][: rng.randint(2, 4)], rng.choice(CATEGORIES)
            else:
                query, category = rng.choice(UNKNOWN), None
            out.append((kind, query, category))
    rng.shuffle(out)
    return out[:count]


def _length_bucket(query: str) -> str:
    """Letters and digits typed: autosuggest cost depends on how many labels share the prefix."""
    n = sum(ch.isalnum() for ch in query)
    return "1" if n <= 1 else "2" if n == 2 else "3-4" if n <= 4 else "5+"


def run_taxonomy(log=print, repeats: int = REPEATS, time_limit: float = 60.0) -> dict:
    t0 = time.perf_counter()
    taxonomy = default_taxonomy()
    load_ms = (time.perf_counter() - t0) * 1000
    queries = build_queries()
    deadline = time.perf_counter() + time_limit
    repeats_out = []
    per_kind: dict[str, list[float]] = {}
    per_length: dict[str, list[float]] = {}
    hits = sum(1 for _, q, c in queries if taxonomy.search(q, category=c))  # also warms caches
    for repeat in range(repeats):
        if time.perf_counter() > deadline:
            break
        timings = []
        perf = time.perf_counter_ns
        start = perf()
        for kind, query, category in queries:
            q0 = perf()
            taxonomy.search(query, category=category)
            elapsed = (perf() - q0) / 1000  # microseconds
            timings.append(elapsed)
            per_kind.setdefault(kind, []).append(elapsed)
            per_length.setdefault(_length_bucket(query), []).append(elapsed)
        total_ms = (perf() - start) / 1e6
        ordered = sorted(timings)
        repeats_out.append(
            {
                "repeat": repeat + 1,
                "median_us": round(statistics.median(timings), 1),
                "mean_us": round(statistics.fmean(timings), 1),
                "p99_us": round(ordered[int(0.99 * len(ordered)) - 1], 1),
                "max_us": round(ordered[-1], 1),
                "total_ms": round(total_ms, 1),
            }
        )
        log(f"  taxonomy repeat {repeat + 1}: median {repeats_out[-1]['median_us']} us/query, total {total_ms:.0f} ms")
    return {
        "queries": len(queries),
        "repeats": len(repeats_out),
        "skills": len(taxonomy.skills),
        "load_ms": round(load_ms, 1),
        "queries_with_results": hits,
        "mix": {kind: sum(1 for k, _, _ in queries if k == kind) for kind, _ in MIX},
        "median_us": round(statistics.median(r["median_us"] for r in repeats_out), 1),
        "mean_us": round(statistics.median(r["mean_us"] for r in repeats_out), 1),
        "p99_us": round(statistics.median(r["p99_us"] for r in repeats_out), 1),
        "queries_per_second": round(len(queries) / (statistics.median(r["total_ms"] for r in repeats_out) / 1000)),
        "per_kind_median_us": {k: round(statistics.median(v), 1) for k, v in per_kind.items()},
        "per_kind_p99_us": {k: round(sorted(v)[int(0.99 * len(v)) - 1], 1) for k, v in per_kind.items()},
        "per_length": {
            bucket: {
                "queries": len(values) // max(1, len(repeats_out)),
                "median_us": round(statistics.median(values), 1),
                "p99_us": round(sorted(values)[int(0.99 * len(values)) - 1], 1),
            }
            for bucket, values in sorted(per_length.items())
        },
        "per_repeat": repeats_out,
        "examples": [q for _, q, _ in queries[:12]],
    }
