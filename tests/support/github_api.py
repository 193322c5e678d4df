"""GitHub's public REST API (api.github.com), as the stand-in in tests/support/oauth_provider.py
serves it under /github-api: the parts an import reads, with GitHub's pagination, ETags and
rate-limit and error answers.

  GET /users/{login}                       the account (404 {"message": "Not Found"} if none)
  GET /users/{login}/repos                 per_page (max 100) + page, Link: rel="next"/"last"
  GET /repos/{owner}/{repo}/languages      {"Go": bytes, ...}
  GET /repos/{owner}/{repo}/readme         base64 content, 404 when there is none
  GET /repos/{owner}/{repo}/contents/      the root listing
  GET /repos/{owner}/{repo}/contents/{p}   a file, base64

Every 200 carries an ETag; a request whose If-None-Match matches gets 304 with no body (and, as
at GitHub, does not count against the rate limit). Every answer carries x-ratelimit-limit /
-remaining / -reset. A test can make the API answer errors the way GitHub does:
`primary_limit(reset_in)` (403, x-ratelimit-remaining 0, until the reset), `secondary_limit(n,
retry_after)` (403 with retry-after, n times), `fail(n, status)` (n 5xx answers), each for the
requests about one login (tests share the stand-in), and hold an account's repository listing
until it releases it (`Account.gate`)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

RATE_LIMIT = 5000
PREFIX = "/github-api"


@dataclass
class Repo:
    name: str
    stars: int = 0
    forks: int = 0
    language: str | None = None
    topics: list[str] = field(default_factory=list)
    pushed_days_ago: int = 30
    fork: bool = False
    languages: dict[str, int] = field(default_factory=dict)
    readme: str | None = None
    # Root files: name -> text (manifests).
    files: dict[str, str] = field(default_factory=dict)


@dataclass
class Account:
    login: str
    repos: list[Repo] = field(default_factory=list)
    type: str = "User"
    # When set, the repository listing waits until the test sets `gate` (and `entered` tells
    # the test that a request is waiting).
    gate: threading.Event | None = None
    entered: threading.Event = field(default_factory=threading.Event)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class GitHubApi:
    def __init__(self) -> None:
        self._accounts: dict[str, Account] = {}
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()  # path -> requests received (304s included)
        self.not_modified = 0
        self._remaining = RATE_LIMIT
        self._reset_at = time.time() + 3600
        # Per login (tests run side by side on one stand-in): rate limited until, retry-after
        # of the next secondary-limit answers, statuses of the next failed answers.
        self._limited_until: dict[str, float] = {}
        self._secondary: dict[str, list[int]] = {}
        self._failures: dict[str, list[int]] = {}

    # --- test controls --------------------------------------------------------------------------

    def account(self, login: str, repos: list[Repo] | None = None, **kwargs) -> Account:
        account = Account(login, list(repos or []), **kwargs)
        with self._lock:
            self._accounts[login.lower()] = account
        return account

    def primary_limit(self, login: str, reset_in: float) -> None:
        """Requests about `login` find the rate limit used up until `reset_in` seconds from now."""
        with self._lock:
            self._limited_until[login.lower()] = time.time() + reset_in

    def secondary_limit(self, login: str, times: int, retry_after: int) -> None:
        with self._lock:
            self._secondary.setdefault(login.lower(), []).extend([retry_after] * times)

    def fail(self, login: str, times: int, status: int = 502) -> None:
        with self._lock:
            self._failures.setdefault(login.lower(), []).extend([status] * times)

    def requests_for(self, login: str) -> int:
        with self._lock:
            return sum(n for path, n in self.requests.items() if f"/{login.lower()}" in path.lower())

    # --- the protocol ---------------------------------------------------------------------------

    @staticmethod
    def serves(path: str) -> bool:
        return path.startswith((f"{PREFIX}/users/", f"{PREFIX}/repos/"))

    def handle(self, path: str, query: dict[str, str], headers: dict[str, str]) -> tuple[int, dict, object]:
        """(status, headers, JSON body or None) of a GET."""
        path = path[len(PREFIX) :]
        login = [*path.strip("/").split("/"), ""][1].lower()
        with self._lock:
            self.requests[path] += 1
            now = time.time()
            if self._reset_at <= now:
                self._remaining, self._reset_at = RATE_LIMIT, now + 3600
            if self._failures.get(login):
                return self._failures[login].pop(0), self._limit_headers(), {"message": "Server Error"}
            if self._secondary.get(login):
                retry_after = self._secondary[login].pop(0)
                return (
                    403,
                    {**self._limit_headers(), "retry-after": str(retry_after)},
                    {
                        "message": "You have exceeded a secondary rate limit. Please wait a few minutes before "
                        "you try again.",
                        "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                    },
                )
            if self._limited_until.get(login, 0.0) > now:
                limited = {
                    "x-ratelimit-limit": str(RATE_LIMIT),
                    "x-ratelimit-remaining": "0",
                    "x-ratelimit-reset": str(int(self._limited_until[login]) + 1),
                    "x-ratelimit-used": str(RATE_LIMIT),
                }
                return 403, limited, {"message": "API rate limit exceeded for 127.0.0.1."}
        if not headers.get("user-agent"):
            return 403, {}, {"message": "Request forbidden by administrative rules."}
        status, extra, body = self._route(path, query, headers.get("host", "127.0.0.1"))
        with self._lock:
            if status == 200:
                etag = '"' + hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest() + '"'
                if headers.get("if-none-match") == etag:
                    self.not_modified += 1
                    return 304, {**self._limit_headers(), "etag": etag}, None
                extra["etag"] = etag
            self._remaining = max(self._remaining - 1, 0)
            return status, {**self._limit_headers(), **extra}, body

    def _limit_headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(RATE_LIMIT),
            "x-ratelimit-remaining": str(self._remaining),
            "x-ratelimit-reset": str(int(self._reset_at)),
            "x-ratelimit-used": str(RATE_LIMIT - self._remaining),
        }

    def _find(self, login: str) -> Account | None:
        with self._lock:
            return self._accounts.get(login.lower())

    def _route(self, path: str, query: dict[str, str], host: str) -> tuple[int, dict, object]:
        parts = path.strip("/").split("/")
        not_found = (404, {}, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
        if parts[0] == "users":
            account = self._find(parts[1]) if len(parts) > 1 else None
            if account is None:
                return not_found
            if len(parts) == 2:
                return 200, {}, self._account_json(account)
            if len(parts) == 3 and parts[2] == "repos":
                if account.gate is not None:
                    account.entered.set()
                    account.gate.wait(60)
                return self._repos_page(account, query, host)
            return not_found
        if parts[0] == "repos" and len(parts) >= 4:
            account = self._find(parts[1])
            repo = next((r for r in account.repos if r.name == parts[2]), None) if account else None
            if repo is None:
                return not_found
            what = parts[3]
            if what == "languages":
                return 200, {}, dict(repo.languages)
            if what == "readme":
                if repo.readme is None:
                    return not_found
                content = _b64(repo.readme)
                return 200, {}, {"name": "README.md", "path": "README.md", "encoding": "base64", "content": content}
            if what == "contents":
                name = "/".join(parts[4:])
                if not name:
                    files = {**repo.files, **({"README.md": repo.readme} if repo.readme is not None else {})}
                    listing = [
                        {"name": n, "path": n, "type": "file", "size": len(text.encode())}
                        for n, text in sorted(files.items())
                    ]
                    return 200, {}, listing
                if name in repo.files:
                    text = repo.files[name]
                    return 200, {}, {
                        "name": name,
                        "path": name,
                        "type": "file",
                        "size": len(text.encode()),
                        "encoding": "base64",
                        "content": _b64(text),
                    }
        return not_found

    def _account_json(self, account: Account) -> dict:
        return {
            "login": account.login,
            "id": abs(hash(account.login)) % 10**8,
            "type": account.type,
            "html_url": f"https://github.com/{account.login}",
            "public_repos": len(account.repos),
            "created_at": "2014-02-03T12:00:00Z",
        }

    def _repos_page(self, account: Account, query: dict[str, str], host: str) -> tuple[int, dict, object]:
        per_page = min(max(int(query.get("per_page", 30)), 1), 100)
        page = max(int(query.get("page", 1)), 1)
        repos = sorted(account.repos, key=lambda r: r.pushed_days_ago)  # sort=pushed
        chunk = repos[(page - 1) * per_page : page * per_page]
        now = datetime.now(UTC)
        body = [
            {
                "name": r.name,
                "full_name": f"{account.login}/{r.name}",
                "fork": r.fork,
                "stargazers_count": r.stars,
                "forks_count": r.forks,
                "language": r.language,
                "topics": r.topics,
                "archived": False,
                "pushed_at": (now - timedelta(days=r.pushed_days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            for r in chunk
        ]
        last = max((len(repos) + per_page - 1) // per_page, 1)
        links = []
        base = f"http://{host}{PREFIX}/users/{account.login}/repos"
        params = {k: v for k, v in query.items() if k != "page"}
        if page < last:
            links.append(f'<{base}?{urlencode({**params, "page": page + 1})}>; rel="next"')
            links.append(f'<{base}?{urlencode({**params, "page": last})}>; rel="last"')
        return 200, ({"link": ", ".join(links)} if links else {}), body


# A realistic account: languages, topics, READMEs and manifests of several ecosystems.
_KINDS = [
    ("Go", {"Go": 61_000, "Shell": 1_200, "Dockerfile": 400}, ["kubernetes", "grpc"], {
        "go.mod": "module example.com/x\n\ngo 1.22\n\nrequire (\n\tgithub.com/gin-gonic/gin v1.9.1\n"
        "\tgoogle.golang.org/grpc v1.60.0\n)\n"
    }, "A gRPC service in Go, deployed on Kubernetes with Docker."),
    ("Python", {"Python": 48_000, "Jupyter Notebook": 9_000}, ["machine-learning", "fastapi"], {
        "requirements.txt": "fastapi==0.110\nnumpy>=1.26\npandas\nscikit-learn\n",
        "pyproject.toml": '[project]\nname = "x"\ndependencies = ["django>=5", "pytest"]\n',
    }, "Machine learning experiments with PyTorch and pandas, served with FastAPI and PostgreSQL."),
    ("TypeScript", {"TypeScript": 52_000, "CSS": 6_000, "HTML": 2_000}, ["react", "nextjs"], {
        "package.json": json.dumps({"dependencies": {"react": "^18", "next": "14", "@angular/core": "17"},
                                    "devDependencies": {"typescript": "^5", "jest": "^29"}}),
    }, "A React front end in TypeScript, tested with Jest, styled with Tailwind CSS."),
    ("Rust", {"Rust": 33_000}, ["cli"], {
        "Cargo.toml": '[package]\nname = "x"\n\n[dependencies]\ntokio = "1"\nserde = "1"\n',
    }, "A command-line tool in Rust."),
]


def sample_repos(count: int) -> list[Repo]:
    """`count` repositories spread over four ecosystems, with stars, forks and push dates."""
    repos = []
    for i in range(count):
        language, languages, topics, files, readme = _KINDS[i % len(_KINDS)]
        repos.append(
            Repo(
                name=f"project-{i:02d}",
                stars=(count - i) * 7,
                forks=(count - i) * 2,
                language=language,
                topics=topics,
                pushed_days_ago=3 + i * 11,
                languages={k: v + i * 100 for k, v in languages.items()},
                readme=f"# project-{i:02d}\n\n{readme}\n",
                files=files,
            )
        )
    return repos
