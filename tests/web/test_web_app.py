"""The browser app in Debian's chromium against the session mesh, through the edge, as people use
it: sign up, verify, onboard, import a résumé, chat live with another person (typing, receipts,
a network drop), settings. Every screen passes an axe-core scan at desktop and phone widths and is
photographed (conftest.check_screen). Tests wait on what the page shows, never on time."""

from __future__ import annotations

import re
import time
import uuid

from playwright.async_api import expect

from tests.enrichment.pdfs import resume_pdf
from tests.identity.support import next_link
from tests.web.conftest import check_screen
from tests.web.support import (
    PASSWORD,
    basic_info,
    matched_pair,
    messages,
    new_email,
    send,
    sign_up,
    user_id,
)


async def test_sign_up_verify_and_onboard(mesh, people, screenshot_dir):
    ada = await people()
    page = ada.page
    await ada.goto("/")
    await expect(page.get_by_role("button", name="Continue with GitHub")).to_be_visible()
    await check_screen(page, "sign-in", screenshot_dir)
    await ada.goto("/?signup=1")
    await check_screen(page, "sign-up", screenshot_dir)

    email = new_email("ada")
    await sign_up(ada, "Ada", email)
    token = await next_link(mesh, email, "verify-email")
    await ada.goto(f"/verify-email?token={token}")
    await expect(page.get_by_role("status").or_(page.get_by_role("alert"))).to_have_text(
        "Your email address is verified."
    )
    await check_screen(page, "verify-email", screenshot_dir)

    # Step 1: basic info (the session came back from the refresh cookie after the mail link).
    await ada.goto("/app/onboarding/1")
    await expect(page.get_by_text("Step 1 of 4")).to_be_visible()
    # The chat stream is live; the match feed waits for a profile instead of "reconnecting".
    await expect(page.get_by_role("status").filter(has_text=re.compile(r"^Live$"))).to_be_visible()
    # The timezone chosen is the browser's own, even where the browser's list of zones lacks it.
    zone = await page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    await expect(page.get_by_label("Timezone")).to_have_value(zone)
    await check_screen(page, "onboarding-1-basic", screenshot_dir)
    await basic_info(ada, "Ada Lovelace", "Compilers, now fintech")

    # Step 2: skills, suggested by the taxonomy as one types, with a proficiency.
    completeness = page.locator("progress[max='100']")
    before = int(await completeness.get_attribute("value"))
    await page.get_by_role("combobox", name="Skill").fill("kubern")
    await page.get_by_role("option", name="Kubernetes", exact=True).click()
    await expect(page.get_by_role("button", name="Remove Kubernetes")).to_be_visible()
    await page.get_by_role("combobox", name="Skill").fill("pyth")
    await expect(page.get_by_role("option", name="Python", exact=True)).to_be_visible()
    await page.get_by_role("combobox", name="Skill").press("ArrowDown")
    await expect(page.get_by_role("option", name="Python", exact=True)).to_have_attribute("aria-selected", "true")
    await page.get_by_label("Proficiency").select_option(label="5 · Expert")
    await page.get_by_role("button", name="Add skill").click()
    await expect(page.get_by_text("Python 5 · Expert")).to_be_visible()
    await page.get_by_role("combobox", name="Skill").fill("TypeScript")
    await page.get_by_role("combobox", name="Skill").press("Enter")
    await expect(page.get_by_role("button", name="Remove TypeScript")).to_be_visible()
    # Three skills count towards completeness.
    await expect(completeness).not_to_have_attribute("value", str(before))
    await check_screen(page, "onboarding-2-skills", screenshot_dir)
    await page.get_by_role("button", name="Continue").click()

    # Step 3: preferences, each must-have or nice-to-have.
    await page.get_by_role("checkbox", name="Pre-seed").check()
    await page.get_by_role("group", name="How much the stage matters").get_by_label("Must have").check()
    await page.get_by_label("Compensation").select_option(label="Mostly equity")
    await check_screen(page, "onboarding-3-preferences", screenshot_dir)
    await page.get_by_role("button", name="Save and continue").click()
    await page.wait_for_url("**/app/onboarding/4")

    # Step 4: about you, with a drafted summary (the mesh's LLM stand-in or the template).
    await page.get_by_role("button", name="Draft my summary").click()
    await expect(page.get_by_text("edit it to sound like you")).to_be_visible()
    await expect(page.get_by_label("Summary")).not_to_have_value("")
    await check_screen(page, "onboarding-4-about", screenshot_dir)
    await page.get_by_role("button", name="Finish").click()
    await page.wait_for_url("**/app/discover")
    await check_screen(page, "discover-first-visit", screenshot_dir)

    # A reload keeps the session (access token in memory only: it comes back from the cookie).
    await page.reload()
    await expect(page.get_by_role("heading", name="Discover")).to_be_visible()
    await ada.goto("/app/onboarding/2")
    await expect(page.get_by_role("button", name="Remove Python")).to_be_visible()


async def test_chat_live_typing_receipts_and_a_network_drop(mesh, rest, people, screenshot_dir):
    alice, bob = await matched_pair(mesh, rest, people)
    await alice.page.get_by_role("button", name="Suggest a first message").click()
    await expect(alice.page.get_by_label("Message", exact=True)).not_to_have_value("")
    await check_screen(alice.page, "conversation-first-message", screenshot_dir)

    # Alice's message shows in Bob's window without a reload.
    await alice.page.get_by_label("Message", exact=True).fill("Hello Bob!")
    started = time.monotonic()
    await alice.page.get_by_role("button", name="Send").click()
    await expect(messages(bob).filter(has_text="Hello Bob!")).to_have_count(1)
    print(f"\nmessage shown in the other window after {1000 * (time.monotonic() - started):.0f} ms")
    # Bob has it on screen: Alice sees it read.
    await expect(alice.page.get_by_text("Read", exact=True)).to_be_visible()

    # Bob types: Alice sees the indicator, which expires when he stops (OPENHR_TYPING_TTL).
    await bob.page.get_by_label("Message", exact=True).fill("Hi Al")
    typing = alice.page.get_by_text("Bob is typing…")
    await expect(typing).to_be_visible()
    await check_screen(alice.page, "conversation", screenshot_dir)
    await expect(typing).to_be_hidden()
    # Bob reloads: his stream closes and opens again, and Alice hears he is online.
    await bob.page.reload()
    await expect(alice.page.get_by_role("status").filter(has_text=re.compile(r"^Online$"))).to_be_visible()
    await send(bob, "Hi Alice")
    await expect(messages(alice).filter(has_text="Hi Alice")).to_have_count(1)

    # Alice drops off the network; what Bob sends meanwhile arrives once, in order, when she is back.
    await alice.context.set_offline(True)
    await expect(alice.page.get_by_text("Reconnecting…")).to_be_visible()
    await send(bob, "first while you were away")
    await send(bob, "second while you were away")
    await alice.context.set_offline(False)
    await expect(alice.page.get_by_text("Live", exact=True)).to_be_visible()
    expected = ["Hello Bob!", "Hi Alice", "first while you were away", "second while you were away"]
    await expect(messages(alice)).to_have_text(expected)

    # Away from the conversation, a new message shows as an unread badge.
    await alice.page.get_by_role("link", name="Notifications").click()
    await expect(alice.page.get_by_role("heading", name="Notifications")).to_be_visible()
    await send(bob, "ping")
    await expect(alice.page.get_by_role("link", name=re.compile(r"^Messages\W+1 unread\W*$"))).to_be_visible()
    await check_screen(alice.page, "notifications", screenshot_dir)
    await alice.page.get_by_role("link", name=re.compile(r"^Messages\W+1 unread\W*$")).click()
    await check_screen(alice.page, "conversations", screenshot_dir)

    # Report, then block: nobody can send any more.
    await alice.page.get_by_role("link", name="Bob", exact=False).first.click()
    await alice.page.get_by_role("button", name="Report").click()
    await alice.page.get_by_label("What happened?").fill("Testing the report form")
    await alice.page.get_by_role("button", name="Send report").click()
    await expect(alice.page.get_by_text("Thank you.")).to_be_visible()
    await check_screen(alice.page, "report", screenshot_dir)
    await alice.page.get_by_role("button", name="Close").click()
    alice.page.once("dialog", lambda dialog: dialog.accept())
    await alice.page.get_by_role("button", name="Block").click()
    await expect(alice.page.get_by_text("This conversation is blocked.")).to_be_visible()
    await expect(bob.page.get_by_text("This conversation is blocked.")).to_be_visible()

    # A second tab resumes Bob's session from the cookie; signing out there signs out both.
    second = await bob.context.new_page()
    await second.goto(bob.edge_url + "/app/settings")
    await second.get_by_role("button", name="Sign out in every tab").click()
    await expect(second.get_by_role("heading", name="Sign in to OpenHR")).to_be_visible()
    await expect(bob.page.get_by_role("heading", name="Sign in to OpenHR")).to_be_visible()


async def test_resume_import_progress_review_and_account_deletion(mesh, rest, db, people, screenshot_dir):
    cleo = await people()
    email = new_email("cleo")
    await sign_up(cleo, "Cleo", email)
    await basic_info(cleo, "Cleo")
    page = cleo.page
    await cleo.goto("/app/import")
    await check_screen(page, "import", screenshot_dir)
    await page.get_by_label("Résumé (PDF, at most 5 MiB)").set_input_files(
        files=[{"name": "cv.pdf", "mimeType": "application/pdf", "buffer": resume_pdf()}]
    )
    job = page.get_by_role("region", name="Résumé import")
    await expect(job.locator("progress")).to_be_visible()
    review = page.get_by_role("dialog", name="Review suggested skills")
    await expect(review).to_be_visible()
    await expect(job.get_by_role("status")).to_contain_text("100%")
    await expect(review.get_by_role("group", name="Kubernetes")).to_be_visible()
    await check_screen(page, "import-review", screenshot_dir)
    await review.get_by_role("group", name="Terraform").get_by_label("Skip").check()
    await review.get_by_role("button", name="Save choices").click()
    await expect(review).to_be_hidden()
    await cleo.goto("/app/onboarding/2")
    await expect(page.get_by_role("button", name="Remove Kubernetes")).to_be_visible()
    await expect(page.get_by_role("button", name="Remove Terraform")).to_have_count(0)

    await cleo.goto("/app/settings")
    await page.get_by_role("radio", name="Private: only you; not offered as a match").check()
    await expect(page.get_by_text("Visibility saved.")).to_be_visible()
    # The email digest of unread messages: on with an address, then off (messaging forgets it).
    digest = page.get_by_role("form", name="Email digest")
    await digest.get_by_label("Send the digest to").fill(email)
    await digest.get_by_role("button", name="Turn the digest on").click()
    await expect(digest.get_by_role("status")).to_have_text(f"The digest is on: unread messages are mailed to {email}.")
    uid = await user_id(rest, email)
    assert await db.fetchval("SELECT email FROM messaging.digests WHERE user_id = $1 AND enabled", uid) == email
    async with page.expect_download() as download:
        await page.get_by_role("button", name="Export my data").click()
    assert (await download.value).suggested_filename == "openhr-export.json"
    await check_screen(page, "settings", screenshot_dir)
    await digest.get_by_role("button", name="Turn the digest off").click()
    await expect(digest.get_by_role("status")).to_have_text("The digest is off.")
    assert await db.fetchval("SELECT count(*) FROM messaging.digests WHERE user_id = $1", uid) == 0
    await page.get_by_role("button", name="Delete my account").click()
    await page.get_by_role("button", name="Delete for good").click()
    await expect(page.get_by_role("heading", name="Sign in to OpenHR")).to_be_visible()
    response = await rest.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 401


async def test_resend_verification_email_from_the_verify_page(mesh, people, screenshot_dir):
    """A lost or expired link: the verify page mails a new one to the signed-in person."""
    dan = await people()
    page = dan.page
    email = new_email("dan")
    await sign_up(dan, "Dan", email)
    first = await next_link(mesh, email, "verify-email")
    await dan.goto("/verify-email?token=expired-or-mistyped")
    await expect(page.get_by_role("alert")).to_be_visible()
    await page.get_by_role("button", name="Resend verification email").click()
    await expect(page.get_by_text("A new link is on its way: check your inbox.")).to_be_visible()
    await check_screen(page, "verify-email-resend", screenshot_dir)
    second = await next_link(mesh, email, "verify-email", seen={first})
    await dan.goto(f"/verify-email?token={second}")
    await expect(page.get_by_role("status")).to_have_text("Your email address is verified.")
    await dan.goto("/verify-email")
    await page.get_by_role("button", name="Resend verification email").click()
    await expect(page.get_by_text("Your email address is already verified.")).to_be_visible()


async def test_mail_links_and_oauth_callback_pages(people, screenshot_dir):
    visitor = await people()
    page = visitor.page
    await visitor.goto("/reset-password")
    await page.get_by_label("Email").fill(new_email("nobody"))
    await page.get_by_role("button", name="Send me a link").click()
    await expect(page.get_by_text("If an account uses this address")).to_be_visible()
    await check_screen(page, "reset-password", screenshot_dir)
    await visitor.goto("/reset-password?token=not-a-real-token")
    await page.get_by_label("New password").fill("a new long password")
    await page.get_by_role("button", name="Change password").click()
    await expect(page.get_by_role("alert")).to_be_visible()
    await visitor.goto("/auth/callback?code=abc&state=forged")
    await expect(page.get_by_text("This sign-in was not started here")).to_be_visible()
    await check_screen(page, "oauth-callback", screenshot_dir)


async def test_stream_reconnects_after_a_messaging_restart(mesh, rest, people):
    alice, bob = await matched_pair(mesh, rest, people)
    await send(bob, "before the restart")
    await expect(messages(alice)).to_have_text(["before the restart"])

    argv = mesh.config.commands()["messaging"]
    mesh.stop_process("messaging")
    try:
        await expect(alice.page.get_by_text("Reconnecting…")).to_be_visible()
    finally:
        mesh.start_process("messaging", argv)
    await expect(alice.page.get_by_text("Live", exact=True)).to_be_visible()
    await send(bob, "after the restart")
    await expect(messages(alice)).to_have_text(["before the restart", "after the restart"])


async def test_sign_in_with_github_through_the_callback_page(oauth_provider, people):
    """The GitHub button, the provider's consent (the local stand-in, signed in by its cookie),
    its redirect to /auth/callback, and the page completing the sign-in: a first GitHub sign-in
    creates the account and the profile, so the app opens on Discover."""
    login = f"octo-{uuid.uuid4().hex[:8]}"
    emails = [{"email": new_email("gh"), "primary": True, "verified": True, "visibility": "public"}]
    octo = oauth_provider.github_user(login, name="Octo Cat", emails=emails)
    visitor = await people()
    await visitor.context.add_cookies([{"name": "session", "value": octo.session, "url": oauth_provider.url}])
    await visitor.goto("/")
    await visitor.page.get_by_role("button", name="Continue with GitHub").click()
    await visitor.page.wait_for_url("**/app/discover")
    await visitor.goto("/app/onboarding/1")
    await expect(visitor.page.get_by_label("Name", exact=True)).to_have_value("Octo Cat")


async def test_keyboard_only_sign_in_follows_the_visual_order(rest, people):
    email = new_email("keys")
    response = await rest.post("/v1/auth/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    visitor = await people()
    page = visitor.page
    await visitor.goto("/")
    # Focus starts on the screen's heading; Tab goes on to the form, Shift+Tab back to the header.
    await expect(page.get_by_role("heading", name="Sign in to OpenHR")).to_be_focused()
    await page.keyboard.press("Shift+Tab")
    await expect(page.get_by_role("link", name="OpenHR")).to_be_focused()
    await page.keyboard.press("Shift+Tab")
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Email")).to_be_focused()
    await page.keyboard.type(email)
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Password")).to_be_focused()
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/app/onboarding/1")


async def test_sign_out_on_every_device(people):
    email = new_email("devices")
    laptop, phone = await people(), await people()
    await sign_up(laptop, "Dana", email)
    await basic_info(laptop, "Dana")
    await phone.goto("/")
    await phone.page.get_by_label("Email").fill(email)
    await phone.page.get_by_label("Password").fill(PASSWORD)
    await phone.page.keyboard.press("Enter")
    await phone.page.wait_for_url("**/app/**")
    await phone.goto("/app/settings")
    await phone.page.get_by_role("button", name="Sign out on every device").click()
    await expect(phone.page.get_by_role("heading", name="Sign in to OpenHR")).to_be_visible()
    # The laptop's session (another browser, its own cookie) cannot be resumed any more.
    await laptop.page.reload()
    await expect(laptop.page.get_by_role("heading", name="Sign in to OpenHR")).to_be_visible()
