// The generated clients, over grpc-web to the same origin (Envoy). Every call carries the
// in-memory access token; a call refused as UNAUTHENTICATED refreshes the session once and
// is retried (the token may have expired while the tab slept).
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { IdentityService, PrivacyService } from "./gen/openhr/identity/v1/identity_pb";
import { ProfileService } from "./gen/openhr/profile/v1/profile_pb";
import { EnrichmentService, SkillsService } from "./gen/openhr/enrichment/v1/enrichment_pb";
import { MessagingService } from "./gen/openhr/messaging/v1/messaging_pb";
import { MatchingService } from "./gen/openhr/matching/v1/matching_pb";
import { session } from "./session";

// identity's methods that get a token in the first place (services/common/surface.py
// IDENTITY_PUBLIC_METHODS): called without one, and never retried through a refresh.
const PUBLIC = new Set(["SignUp", "Login", "Refresh", "Logout", "VerifyEmail", "RequestPasswordReset", "ResetPassword", "StartOAuth", "CompleteOAuth"]);

const auth: Interceptor = (next) => async (request) => {
  if (request.service.typeName === IdentityService.typeName && PUBLIC.has(request.method.name)) return next(request);
  const token = session.accessToken();
  if (token) request.header.set("authorization", `Bearer ${token}`);
  try {
    return await next(request);
  } catch (error) {
    const retry =
      !request.stream &&
      token &&
      ConnectError.from(error).code === Code.Unauthenticated &&
      (await session.refresh());
    if (!retry) throw error;
    request.header.set("authorization", `Bearer ${session.accessToken()}`);
    return await next(request);
  }
};

const transport = createGrpcWebTransport({
  baseUrl: window.location.origin,
  interceptors: [auth],
});

session.connect(transport);
export const identity = createClient(IdentityService, transport);
export const privacy = createClient(PrivacyService, transport);
export const profiles = createClient(ProfileService, transport);
export const enrichment = createClient(EnrichmentService, transport);
export const skills = createClient(SkillsService, transport);
export const messaging = createClient(MessagingService, transport);
export const matching = createClient(MatchingService, transport);

/** Headers that ask identity for the browser transport: refresh token in an HttpOnly cookie. */
export const COOKIE_MODE = { "x-openhr-token-transport": "cookie" };

/** The message to show for a failed call (services send safe, human-readable messages). */
export function errorText(error: unknown): string {
  const e = ConnectError.from(error);
  if (e.code === Code.Unavailable) return "The service is unavailable right now. Please try again.";
  if (e.code === Code.ResourceExhausted) return "Too many requests. Please wait a moment and try again.";
  return e.rawMessage || "Something went wrong.";
}

export { Code, ConnectError };
