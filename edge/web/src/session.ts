// The signed-in session. The access token lives in memory only (never in storage); the
// refresh token stays in identity's HttpOnly cookie (`x-openhr-token-transport: cookie`),
// which scripts cannot read. Refresh and sign-out send the cookie's CSRF token in
// x-csrf-token, copied from the readable CSRF cookie (services/identity/cookies.py). The token
// is refreshed a minute before it expires; signing out in one tab signs out every tab.
// Refresh tokens are single-use (a reused one revokes the session), and every tab of the
// origin shares the cookie: tabs refresh one at a time (Web Locks), each with the cookie the
// previous refresh left.
import { IdentityService, type Tokens } from "./gen/openhr/identity/v1/identity_pb";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";

// identity's CSRF cookie (services/identity/cookies.py: __Host- binds it to this origin).
const CSRF_COOKIE = "__Host-openhr_csrf";
const REFRESH_MARGIN_MS = 60_000;
const channel = "BroadcastChannel" in window ? new BroadcastChannel("openhr-session") : null;

type Listener = () => void;

class Session {
  private token = "";
  private userId = "";
  private expiresAt = 0;
  private timer: number | undefined;
  private inflight: Promise<boolean> | null = null;
  private listeners = new Set<Listener>();
  private identity: ReturnType<typeof createClient<typeof IdentityService>> | null = null;

  constructor() {
    channel?.addEventListener("message", (event) => {
      if (event.data === "signed-out") this.clear();
    });
  }

  /** The transport identity is called through (api.ts wires it: no token on these calls). */
  connect(transport: Transport): void {
    this.identity = createClient(IdentityService, transport);
  }

  accessToken(): string {
    return this.token;
  }

  user(): string {
    return this.userId;
  }

  signedIn(): boolean {
    return this.token !== "" && Date.now() < this.expiresAt;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Keeps the tokens of a sign-in, sign-up, OAuth callback or refresh. */
  take(tokens: Tokens | undefined): void {
    if (!tokens?.accessToken) return;
    this.token = tokens.accessToken;
    this.userId = tokens.userId;
    this.expiresAt = Date.now() + tokens.expiresIn * 1000;
    window.clearTimeout(this.timer);
    const delay = Math.max(5_000, tokens.expiresIn * 1000 - REFRESH_MARGIN_MS);
    this.timer = window.setTimeout(() => void this.refresh(), delay);
    this.emit();
  }

  /** A new access token from the refresh cookie; false when there is no session to resume. */
  refresh(): Promise<boolean> {
    this.inflight ??= oneTabAtATime(() => this.identity!.refresh({}, { headers: this.cookieHeaders() }))
      .then((response) => {
        this.take(response.tokens);
        return true;
      })
      .catch((error) => {
        // No session to resume (no cookie, expired, revoked, signed out elsewhere): forget
        // the tokens. A network failure keeps them: the next attempt may succeed.
        const code = ConnectError.from(error).code;
        if (code === Code.Unauthenticated || code === Code.PermissionDenied) this.clear();
        return false;
      })
      .finally(() => {
        this.inflight = null;
      });
    return this.inflight;
  }

  /** Ends the session at identity (its refresh token is revoked; `everywhere`: every session
   * of the user, on every device) and in every tab of this browser. */
  async signOut(everywhere = false): Promise<void> {
    try {
      await this.identity!.logout({ everywhere }, { headers: this.cookieHeaders() });
    } finally {
      this.clear();
      channel?.postMessage("signed-out");
    }
  }

  /** Forgets the tokens without calling identity (e.g. after the account was deleted). */
  clear(): void {
    window.clearTimeout(this.timer);
    const had = this.token !== "";
    this.token = "";
    this.userId = "";
    this.expiresAt = 0;
    if (had) this.emit();
  }

  private cookieHeaders(): Record<string, string> {
    return { "x-openhr-token-transport": "cookie", "x-csrf-token": csrfCookie() };
  }

  private emit(): void {
    for (const listener of this.listeners) listener();
  }
}

function oneTabAtATime<T>(call: () => Promise<T>): Promise<T> {
  return navigator.locks ? navigator.locks.request("openhr-refresh", call) : call();
}

function csrfCookie(): string {
  const cookies = new Map(
    document.cookie.split(";").map((pair) => {
      const [name, ...value] = pair.trim().split("=");
      return [name, value.join("=")] as const;
    }),
  );
  return decodeURIComponent(cookies.get(CSRF_COOKIE) ?? "");
}

export const session = new Session();
