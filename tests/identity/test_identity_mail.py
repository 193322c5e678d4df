"""A mail server that cannot be reached loses no sign-up: the account exists, the answer says
no verification was sent, the failure is logged without the address, and asking again later
works."""

from __future__ import annotations

from deploy.local.ephemeral import Mesh
from deploy.local.infra import port_in_use
from tests.identity.support import Account, login, new_email, next_link
from tests.logs import logged
from tests.users import PASSWORD
from tests.waiting import eventually


async def test_sign_up_survives_a_mail_outage(mesh: Mesh, rest) -> None:
    argv = mesh.config.commands()["mail"]
    mesh.stop_process("mail")
    email = new_email("outage")
    try:
        response = await rest.post("/v1/auth/signup", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["verificationSent"] is False and body["tokens"]["accessToken"]
        request_id = response.headers["x-request-id"]
    finally:
        mesh.start_process("mail", argv)
        await eventually(lambda: port_in_use("127.0.0.1", mesh.config.smtp_port), message="the SMTP sink is not back")

    failures = [line for line in await logged(mesh, "identity", request_id) if line["event"] == "mail not sent"]
    assert failures and failures[0]["purpose"] == "verify_email"
    assert email.split("@")[0].lower() not in mesh.log("identity").lower()

    headers = {"authorization": f"Bearer {body['tokens']['accessToken']}"}
    resent = await rest.post("/v1/auth/email:resend", json={}, headers=headers)
    assert resent.status_code == 200 and resent.json()["verificationSent"] is True, resent.text
    token = await next_link(mesh, email, "verify-email")
    assert (await rest.post("/v1/auth/email:verify", json={"token": token})).status_code == 200
    assert (await login(rest, Account(email, PASSWORD))).status_code == 200
