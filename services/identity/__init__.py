"""The identity service (`python -m services.identity`): email + password accounts, sign-in with
GitHub and Google, access and refresh tokens, the JWKS every other service verifies tokens with,
email verification and password reset links over SMTP, and an append-only audit log of security
events.

- validation.py: email syntax and password policy (length, common-password list in data/).
- passwords.py: argon2id hashing with pinned parameters, off the event loop.
- crypto.py: the data key (AES-256-GCM for emails and signing keys) and the lookup key
  (HMAC-SHA256 of the normalized email), from settings or, locally, generated once.
- keys.py: Ed25519 signing keys in Postgres, lazy rotation, the published JWKS.
- tokens.py: access JWTs (EdDSA) and opaque one-time / refresh secrets (stored as SHA-256).
- sessions.py: refresh-token families: issue, rotate, reuse detection, revocation.
- accounts.py: the flows (sign-up, sign-in, refresh, sign-out, email verification and its resend,
  password reset and change, and which account a provider's sign-in signs in, links or creates).
- oauth.py: OAuth 2.0 authorization code + PKCE with GitHub and Google (state, code exchange,
  the providers' user APIs) and the profile a first GitHub sign-in creates.
- ratelimit.py: the limits behind the RateLimitService Envoy's ratelimit filter asks about
  every edge request (per address, per user, sign-in and sign-up per address) and sign-in's
  per-account limit of failed attempts, with windowed counters in Redis.
- privacy.py: export and erasure of a user's data across identity and the user data peers.
- mail.py: the verification and reset messages, sent with aiosmtplib after commit.
- cookies.py: the browser transport (HttpOnly refresh cookie + double-submit CSRF cookie).
- store.py: SQL for the `identity` schema; api.py: the servicers (IdentityService,
  PrivacyService, RateLimitService); app.py: settings and wiring.
"""
