// The signed-in session. The access token lives in memory only (never in storage); the
// refresh token stays in identity's HttpOnly cookie (`x-openhr-token-transport: cookie`),
// which scripts cannot read. Refresh and sign-out go to identity's REST routes because the
// cookie's Path is /v1/auth: the browser never sends it to the grpc-web paths. They carry the
// double-submit header x-csrf-token, copied from the readable CSRF cookie. The token is
// refreshed a minute before it expires; signing out in one tab signs out every tab.
// Refresh tokens are single-use (a reused one revokes the session), and every tab of the
// origin shares the cookie: tabs refresh one at a time (Web Locks), each with the cookie the
// previous refresh left.
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import {
  RefreshResponseSchema,
  type Tokens,
} from "./gen/openhr/identity/v1/identity_pb";

// identity's cookie names (services/identity/cookies.py), with the __Host- form browsers
// bind to this origin and path /.
const CSRF_COOKIES = ["__Host-openhr_csrf", "openhr_csrf"];
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

  constructor() {
    channel?.addEventListener("message", (event) => {
      if (event.data === "signed-out") this.clear();
    });
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
    this.inflight ??= oneTabAtATime(() => this.post("/v1/auth/refresh"))
      .then(async (response) => {
        if (!response.ok) {
          this.clear();
          return false;
        }
        const body = fromJson(RefreshResponseSchema, (await response.json()) as JsonValue, {
          ignoreUnknownFields: true,
        });
        this.take(body.tokens);
        return true;
      })
      .catch(() => false)
      .finally(() => {
        this.inflight = null;
      });
    return this.inflight;
  }

  /** Ends the session at identity (its refresh token is revoked) and in every tab. */
  async signOut(): Promise<void> {
    try {
      await this.post("/v1/auth/logout");
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

  private post(path: string): Promise<Response> {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "content-type": "application/json",
        "x-openhr-token-transport": "cookie",
        "x-csrf-token": csrfCookie(),
      },
      body: "{}",
    });
  }

  private emit(): void {
    for (const listener of this.listeners) listener();
  }
}

function oneTabAtATime(call: () => Promise<Response>): Promise<Response> {
  return navigator.locks ? navigator.locks.request("openhr-refresh", call) : call();
}

function csrfCookie(): string {
  const cookies = new Map(
    document.cookie.split(";").map((pair) => {
      const [name, ...value] = pair.trim().split("=");
      return [name, value.join("=")] as const;
    }),
  );
  for (const name of CSRF_COOKIES) {
    const value = cookies.get(name);
    if (value) return decodeURIComponent(value);
  }
  return "";
}

export const session = new Session();
