"""The identity service's input rules, without a mesh: email syntax, password policy, the
common-password list, cookie parsing and the AES-GCM box."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from services.common.errors import DomainError
from services.identity import cookies
from services.identity.crypto import Box, MissingSecretError, load_secrets
from services.identity.validation import email_problem, load_common_passwords, normalize_email, password_problem

COMMON = load_common_passwords()


@pytest.mark.parametrize(
    "email",
    [
        "ada@example.com",
        "O'Brien@Example.COM",
        "first.last+tag@mail.sub.example.co.uk",
        "x@xn--bcher-kva.xn--p1ai",
        "a" * 64 + "@example.com",
    ],
)
def test_usable_addresses(email: str) -> None:
    assert email_problem(email) is None


@pytest.mark.parametrize(
    "email",
    [
        "",
        "plainaddress",
        "@example.com",
        "ada@",
        "ada@localhost",
        "ada@example.c",
        "ada@example.123",
        "ada..lovelace@example.com",
        ".ada@example.com",
        "ada.@example.com",
        "ada lovelace@example.com",
        "ada@-example.com",
        "ada@example-.com",
        "ada@exa_mple.com",
        "ada@example..com",
        '"ada"@example.com',
        "ada@[127.0.0.1]",
        "adä@example.com",
        "a" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
    ],
)
def test_unusable_addresses(email: str) -> None:
    assert email_problem(email) is not None


def test_addresses_are_looked_up_trimmed_and_lowercase() -> None:
    assert normalize_email("  Ada.Lovelace@Example.COM ") == "ada.lovelace@example.com"


def test_password_policy() -> None:
    assert password_problem("seven77", COMMON) == "must be at least 8 characters"
    assert password_problem("x" * 129, COMMON) == "must be at most 128 characters"
    assert password_problem("x" * 128, COMMON) is None
    assert password_problem("violet-kettle-harbour", COMMON) is None
    for common in ("password", "Password1", "QWERTY123", "iloveyou", "12345678"):
        assert "common" in password_problem(common, COMMON)


def test_the_common_password_list() -> None:
    assert len(COMMON) == 10_000
    assert all(word == word.lower() and word.strip() == word and word for word in COMMON)
    assert {"123456", "password", "qwerty", "letmein", "trustno1"} <= COMMON


def test_cookie_header_parsing_and_csrf() -> None:
    key = b"k" * 32
    csrf = cookies.csrf_token(key, "r1")
    request = cookies.Request.from_metadata(
        [
            ("cookie", "theme=dark; __Host-openhr_refresh=r1"),
            ("cookie", f'__Host-openhr_csrf="{csrf}"'),  # HTTP/2 may split cookies into several headers
            ("x-csrf-token", csrf),
            ("x-openhr-token-transport", "Cookie"),
            ("grpc-trace-bin", b"\x00"),
        ]
    )
    assert request.wants_cookie
    assert request.cookies == {"theme": ["dark"], "__Host-openhr_refresh": ["r1"], "__Host-openhr_csrf": [csrf]}
    assert request.refresh_from_cookie(key) == "r1"
    refused = [
        # A token that is not the HMAC of this refresh token, even if the CSRF cookie says so.
        [("cookie", "__Host-openhr_refresh=r1; __Host-openhr_csrf=c2"), ("x-csrf-token", "c2")],
        # The right token for another refresh token, or under another key.
        [("cookie", "__Host-openhr_refresh=r2"), ("x-csrf-token", csrf)],
        [("cookie", "__Host-openhr_refresh=r1"), ("x-csrf-token", cookies.csrf_token(b"o" * 32, "r1"))],
        # A cookie twice.
        [("cookie", "__Host-openhr_refresh=r1; __Host-openhr_refresh=r2"), ("x-csrf-token", csrf)],
        [
            ("cookie", f"__Host-openhr_refresh=r1; __Host-openhr_csrf=x; __Host-openhr_csrf={csrf}"),
            ("x-csrf-token", csrf),
        ],
        # No header.
        [("cookie", "__Host-openhr_refresh=r1")],
    ]
    for metadata in refused:
        with pytest.raises(DomainError) as denied:
            cookies.Request.from_metadata(metadata).refresh_from_cookie(key)
        assert denied.value.code.name == "PERMISSION_DENIED", metadata
    with pytest.raises(DomainError) as missing:
        cookies.Request.from_metadata([]).refresh_from_cookie(key)
    assert missing.value.code.name == "UNAUTHENTICATED"


def test_box_binds_ciphertext_to_its_row() -> None:
    box = Box(bytes(range(32)))
    sealed = box.seal(b"ada@example.com", "identity.users.email:1")
    assert box.open(sealed, "identity.users.email:1") == b"ada@example.com"
    assert box.seal(b"ada@example.com", "identity.users.email:1") != sealed, "a fresh nonce every time"
    with pytest.raises(InvalidTag):
        box.open(sealed, "identity.users.email:2")


def test_local_secrets_are_generated_once(tmp_path) -> None:
    first = load_secrets("", "", local=True, key_dir=tmp_path / "keys")
    again = load_secrets("", "", local=True, key_dir=tmp_path / "keys")
    assert first == again and len(first.data_key) == 32 and len(first.lookup_key) >= 32
    with pytest.raises(MissingSecretError, match="must be set"):
        load_secrets("", "", local=False, key_dir=tmp_path / "other")
    with pytest.raises(MissingSecretError, match="exactly 32 bytes"):
        load_secrets("c2hvcnQ=", "x" * 44, local=False, key_dir=tmp_path / "other")
