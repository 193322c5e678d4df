"""Discover, like and match in the browser against the real matching service: two people sign
up, verify by the mail link, onboard with complementary profiles, are embedded by the real model,
find each other on Discover (score and "why you matched"), both like, see the match in My
matches (the second like reaches the first person live, over the match feed), and chat."""

from __future__ import annotations

import re
import time

import asyncpg
from playwright.async_api import expect

from tests.identity.support import next_link
from tests.waiting import eventually
from tests.web.conftest import Person, check_screen
from tests.web.support import basic_info, finish_onboarding, messages, new_email, send, sign_up, user_id

# A country no other suite's profiles live in, so that the Country filter shows just these two.
COUNTRY = "IS"


async def discoverable(db: asyncpg.Pool, user_ids: list[str]) -> bool:
    """matching holds each user's newest profile with vectors embedded from it (enrichment's
    ProfileEmbedded, the real model): they can be ranked."""
    rows = await db.fetch(
        "SELECT c.user_id FROM matching.candidates c JOIN matching.vectors v USING (user_id) "
        "WHERE c.user_id = ANY($1::uuid[]) AND c.discoverable AND v.discoverable "
        "AND v.profile_version = c.profile_version AND v.offer IS NOT NULL AND v.seek IS NOT NULL",
        user_ids,
    )
    return len(rows) == len(user_ids)


async def join(person: Person, mesh, name: str, email: str, role: str, seeking: str, skills: list[str]) -> None:
    await sign_up(person, name, email)
    token = await next_link(mesh, email, "verify-email")
    await person.goto(f"/verify-email?token={token}")
    await expect(person.page.get_by_role("status")).to_have_text("Your email address is verified.")
    await person.goto("/app/onboarding/1")
    await basic_info(person, name, f"{role} in Reykjavík", role=role, city="Reykjavík", country=COUNTRY)
    summary = f"{role} with ten years of {', '.join(skills)}."
    looking_for = f"A {seeking.lower()} to start a fintech company with."
    await finish_onboarding(person, skills, "Pre-seed", seeking, summary, looking_for)


async def find_on_discover(person: Person, other: str):
    """Filters Discover to the country and returns the other person's card."""
    page = person.page
    await page.get_by_role("link", name="Discover").click()
    await page.get_by_text("Filters", exact=True).click()
    await page.get_by_label("Country code").fill(COUNTRY)
    await page.get_by_role("button", name="Apply filters").click()
    card = page.get_by_role("list", name="Candidates").get_by_role("listitem").filter(
        has=page.get_by_role("heading", name=other, level=2)
    )
    await expect(card).to_have_count(1)
    return card


async def test_discover_like_match_and_chat(mesh, rest, db, people, screenshot_dir):
    ines, jon = await people(), await people()
    ines_email, jon_email = new_email("ines"), new_email("jon")
    tech, business = "Technical co-founder", "Business co-founder"
    await join(ines, mesh, "Ines", ines_email, tech, business, ["Python", "Kubernetes", "PostgreSQL"])
    await join(jon, mesh, "Jon", jon_email, business, tech, ["B2B Sales", "Fundraising", "Product Management"])
    # The real model embeds both (what they offer and what they seek) before they can be ranked.
    ids = [await user_id(rest, ines_email), await user_id(rest, jon_email)]
    started = time.monotonic()
    await eventually(lambda: discoverable(db, ids), within=120, message="both embedded and discoverable")
    print(f"\nboth discoverable {1000 * (time.monotonic() - started):.0f} ms after Jon finished onboarding")

    # Ines finds Jon with a score and why they matched, and likes him: he leaves her grid.
    card = await find_on_discover(ines, "Jon")
    score = card.get_by_label(re.compile(r"^Match score \d{1,3} percent$"))
    await expect(score).to_have_text(re.compile(r"^\d{1,3}%$"))
    await expect(card.locator(".why")).to_contain_text("Why you matched:")
    await expect(card.locator(".why")).not_to_have_text("Why you matched: ")
    # The breakdown explains the score: the narrative and the skills he adds.
    await card.get_by_text("Score breakdown").click()
    await expect(card.get_by_text(re.compile(r"^Skills they add: .*fundraising", re.IGNORECASE))).to_be_visible()
    await expect(card.locator(".narrative")).not_to_be_empty()
    await check_screen(ines.page, "discover", screenshot_dir)
    await card.get_by_role("button", name="Like Jon").click()
    await expect(ines.page.get_by_text("You liked Jon.")).to_be_visible()
    await expect(card).to_have_count(0)
    await ines.page.get_by_role("link", name="My matches").click()
    await expect(ines.page.get_by_text("No matches yet.")).to_be_visible()

    # Jon likes her back: a match for both; Ines's My matches shows it without a reload.
    card = await find_on_discover(jon, "Ines")
    await card.get_by_role("button", name="Like Ines").click()
    await expect(jon.page.get_by_text("It's a match with Ines!")).to_be_visible()
    ines_match = ines.page.get_by_role("list", name="Matches").get_by_role("listitem", name="Jon")
    await expect(ines_match.get_by_role("link", name="Message Jon")).to_be_visible()
    await check_screen(ines.page, "my-matches", screenshot_dir)

    # The conversation opened for the match: they chat.
    await jon.page.get_by_role("link", name="Say hello").click()
    await expect(jon.page.get_by_role("heading", name="Ines", level=2)).to_be_visible()
    await ines_match.get_by_role("link", name="Message Jon").click()
    await expect(ines.page.get_by_role("heading", name="Jon", level=2)).to_be_visible()
    await send(jon, "Hello Ines, shall we talk payments?")
    await expect(messages(ines).filter(has_text="shall we talk payments")).to_have_count(1)
    await send(ines, "Yes! Tomorrow?")
    await expect(messages(jon).filter(has_text="Tomorrow?")).to_have_count(1)
