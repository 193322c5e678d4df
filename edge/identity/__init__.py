"""The identity service (`python -m edge.identity`): email + password accounts, access and
refresh tokens, the JWKS every other service verifies tokens with, email verification and
password reset links over SMTP, and an append-only audit log of security events.

- validation.py: email syntax and password policy (length, common-password list in data/).
- passwords.py: argon2id hashing with pinned parameters, off the event loop.
- crypto.py: the data key (AES-256-GCM for emails and signing keys) and the lookup key
  (HMAC-SHA256 of the normalized email), from settings or, locally, generated once.
- keys.py: Ed25519 signing keys in Postgres, lazy rotation, the published JWKS.
- tokens.py: access JWTs (EdDSA) and opaque one-time / refresh secrets (stored as SHA-256).
- sessions.py: refresh-token families: issue, rotate, reuse detection, revocation.
- accounts.py: the flows (sign-up, sign-in, refresh, sign-out, email verification and its resend,
  password reset and change).
- mail.py: the verification and reset messages, sent with aiosmtplib after commit.
- cookies.py: the browser transport (HttpOnly refresh cookie + double-submit CSRF cookie).
- store.py: SQL for the `identity` schema; api.py: the servicer; app.py: settings and wiring.
"""
