"""The API reference page the edge serves at /docs: Swagger UI renders the operations of
/openapi.json under the page's Content-Security-Policy (the `people` fixture fails the test on
any CSP violation), without a token."""

from __future__ import annotations

import json

import pytest
from playwright.async_api import expect

from deploy.local.stack import REPO_ROOT

pytestmark = pytest.mark.timeout(120)


async def test_the_docs_page_lists_the_operations_of_the_document(people) -> None:
    person = await people()
    await person.goto("/docs")
    page = person.page
    await expect(page.get_by_role("heading", name="OpenHR REST API")).to_be_visible()
    document = json.loads((REPO_ROOT / "gen" / "openapi.json").read_text())
    operations = sum(len(ops) for ops in document["paths"].values())
    await expect(page.locator(".opblock")).to_have_count(operations)
    await expect(page.locator(".opblock-summary-path", has_text="/v1/profiles/me").first).to_be_visible()
