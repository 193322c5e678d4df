"""Steps a person takes in the browser app, shared by the browser tests."""

from __future__ import annotations

import uuid

import httpx
from playwright.async_api import expect

from tests.events import publish_match
from tests.web.conftest import Person

PASSWORD = "violet-kettle-harbour"


def new_email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


async def sign_up(person: Person, name: str, email: str) -> None:
    """Creates the account through the sign-up form; the app continues to onboarding."""
    page = person.page
    await person.goto("/?signup=1")
    await page.get_by_label("Your name").fill(name)
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await page.wait_for_url("**/app/onboarding/1")


async def basic_info(
    person: Person,
    name: str,
    headline: str = "Building things",
    *,
    role: str = "Technical co-founder",
    city: str = "Berlin",
    country: str = "DE",
) -> None:
    """Onboarding step 1: creates the profile."""
    page = person.page
    await page.get_by_label("Name", exact=True).fill(name)
    await page.get_by_label("Role").select_option(label=role)
    await page.get_by_label("Headline").fill(headline)
    await page.get_by_label("City").fill(city)
    await page.get_by_label("Country code").fill(country)
    await page.get_by_role("button", name="Save and continue").click()
    await page.wait_for_url("**/app/onboarding/2")


async def finish_onboarding(
    person: Person, skills: list[str], stage: str, seeking: str, summary: str, looking_for: str
) -> None:
    """Onboarding steps 2-4 after basic_info: skills (each typed, then Enter), the stage and the
    role sought, a summary and what they look for; the app then opens Discover."""
    page = person.page
    box = page.get_by_role("combobox", name="Skill")
    for skill in skills:
        await box.fill(skill)
        await box.press("Enter")
        await expect(page.get_by_role("button", name=f"Remove {skill}")).to_be_visible()
    await page.get_by_role("button", name="Continue").click()
    await page.get_by_role("checkbox", name=stage).check()
    await page.get_by_role("group", name="Roles you are looking for").get_by_role("checkbox", name=seeking).check()
    await page.get_by_role("button", name="Save and continue").click()
    await page.wait_for_url("**/app/onboarding/4")
    await page.get_by_label("Summary").fill(summary)
    await page.get_by_label("What you are looking for").fill(looking_for)
    await page.get_by_role("button", name="Finish").click()
    await page.wait_for_url("**/app/discover")


async def user_id(rest: httpx.AsyncClient, email: str) -> str:
    response = await rest.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()["tokens"]["userId"]


async def open_conversation(person: Person, other_name: str) -> None:
    page = person.page
    await person.goto("/app/messages")
    await page.get_by_role("link", name=other_name).click()
    await expect(page.get_by_role("heading", name=other_name, level=2)).to_be_visible()


def messages(person: Person):
    return person.page.get_by_role("log", name="Messages").locator("li .text")


async def send(person: Person, text: str) -> None:
    page = person.page
    await page.get_by_label("Message", exact=True).fill(text)
    await page.get_by_role("button", name="Send").click()
    await expect(messages(person).filter(has_text=text)).to_have_count(1)


async def matched_pair(mesh, rest: httpx.AsyncClient, people) -> tuple[Person, Person]:
    """Alice and Bob, signed up with profiles and matched, each in the open conversation."""
    alice, bob = await people(), await people()
    alice_email, bob_email = new_email("alice"), new_email("bob")
    await sign_up(alice, "Alice", alice_email)
    await basic_info(alice, "Alice")
    await sign_up(bob, "Bob", bob_email)
    await basic_info(bob, "Bob")
    await publish_match(mesh, await user_id(rest, alice_email), await user_id(rest, bob_email))
    await open_conversation(alice, "Bob")
    await open_conversation(bob, "Alice")
    return alice, bob
