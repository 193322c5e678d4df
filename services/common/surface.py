"""The mesh's public surface, in one place: which gRPC services each Envoy cluster serves to
the outside, and which identity methods need no access token. The Envoy renderer
(edge/envoy/render.py), identity's interceptor (services/identity/app.py) and the REST body
validator (edge/validation) all read it.

Internal services (ProfileInternalService, MatchingInternalService, MessagingInternalService,
EnrichmentInternalService, openhr.common.v1.UserDataService, and identity's RateLimitService for
Envoy), grpc.reflection and grpc.health are deliberately absent: the edge routes them nowhere.
INTERNAL_CALLERS names who may call each: the kit's interceptor takes only those services'
tokens there (services/common/service_auth.py), never a user's."""

from __future__ import annotations

# Service cluster -> the public gRPC services it serves over REST, grpc-web and gRPC.
PUBLIC_SERVICES: dict[str, tuple[str, ...]] = {
    "identity": ("openhr.identity.v1.IdentityService", "openhr.identity.v1.PrivacyService"),
    "profile": ("openhr.profile.v1.ProfileService",),
    "matching": ("openhr.matching.v1.MatchingService",),
    "messaging": ("openhr.messaging.v1.MessagingService",),
    "enrichment": ("openhr.enrichment.v1.EnrichmentService", "openhr.enrichment.v1.SkillsService"),
}

# Clusters of the edge itself: they serve no public service, so no route leads to them.
EDGE_CLUSTERS: tuple[str, ...] = ("validation",)

# Public methods that take uploads: full gRPC path -> the largest file in bytes. Their requests
# exceed the edge's 1 MiB buffer (REST sends the file as base64 in JSON, a third larger), so the
# edge gives their route a buffer to match (edge/envoy: upload_buffer_limit).
UPLOADS: dict[str, int] = {"/openhr.enrichment.v1.EnrichmentService/CreateEnrichmentJob": 5 * 1024 * 1024}


def upload_buffer_limit(max_bytes: int) -> int:
    """Bytes the edge buffers for an upload of `max_bytes`: its base64 (4/3) plus room for the
    rest of the JSON or gRPC message."""
    return -(-max_bytes // 3) * 4 + 64 * 1024


IDENTITY_SERVICE = "openhr.identity.v1.IdentityService"
# How a caller gets a token in the first place; ChangePassword and ResendVerificationEmail need one.
IDENTITY_PUBLIC_METHODS: tuple[str, ...] = (
    "SignUp",
    "Login",
    "Refresh",
    "Logout",
    "VerifyEmail",
    "RequestPasswordReset",
    "ResetPassword",
    "GetJwks",
    "StartOAuth",
    "CompleteOAuth",
)


# Internal gRPC service -> the services whose service token it accepts ("envoy": the edge).
INTERNAL_CALLERS: dict[str, frozenset[str]] = {
    "envoy.service.ratelimit.v3.RateLimitService": frozenset({"envoy"}),
    "openhr.profile.v1.ProfileInternalService": frozenset({"enrichment", "matching", "messaging"}),
    # matching itself: rebuilding its read model (RebuildReadModel) is an operator's job signed as matching.
    "openhr.matching.v1.MatchingInternalService": frozenset({"profile", "enrichment", "messaging", "matching"}),
    # messaging itself: its operator tools (services/messaging/repair.py) sign as messaging.
    "openhr.messaging.v1.MessagingInternalService": frozenset({"matching", "messaging"}),
    "openhr.enrichment.v1.EnrichmentInternalService": frozenset({"profile", "matching"}),
    "openhr.common.v1.UserDataService": frozenset({"identity"}),
}


def identity_public_paths() -> frozenset[str]:
    """Full gRPC paths of the identity methods callable without a token."""
    return frozenset(f"/{IDENTITY_SERVICE}/{method}" for method in IDENTITY_PUBLIC_METHODS)
