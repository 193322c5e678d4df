// The app shell: resumes the session from the refresh cookie, picks the screen from the URL,
// keeps the live streams (messages, match feed) open while signed in, and shows the navigation with unread badges and
// the stream's state.
import { useEffect, useState } from "preact/hooks";
import { Code, ConnectError, messaging, profiles } from "./api";
import { loadConversations, startLive, stopLive } from "./live";
import { startFeed, stopFeed } from "./feed";
import { navigate, onLinkClick, useLocation } from "./router";
import { session } from "./session";
import { resetState, setState, useStore } from "./store";
import { Badge } from "./ui";
import { OAuthCallback, ResetPassword, SignIn, VerifyEmail } from "./screens/auth";
import { Onboarding } from "./screens/onboarding";
import { Importer } from "./screens/importer";
import { Conversations } from "./screens/chat";
import { Discover, MyMatches } from "./screens/discover";
import { Notifications, Settings } from "./screens/account";

function useSignedIn(): boolean {
  const [signedIn, setSignedIn] = useState(session.signedIn());
  useEffect(() => session.subscribe(() => setSignedIn(session.signedIn())), []);
  return signedIn;
}

async function loadSignedInState(): Promise<void> {
  try {
    const response = await profiles.getMyProfile({});
    setState({ profile: response.profile ?? null, profileLoaded: true });
  } catch (e) {
    if (ConnectError.from(e).code === Code.NotFound) setState({ profile: null, profileLoaded: true });
  }
  void loadConversations();
  void messaging.listNotifications({ pageSize: 50 }).then(
    (r) => setState({ notifications: r.notifications, unreadNotifications: r.totalUnread }),
    () => undefined,
  );
}

export function App() {
  const [resumed, setResumed] = useState(false);
  const signedIn = useSignedIn();
  const url = useLocation();

  useEffect(() => {
    const path = window.location.pathname;
    // Links from mails and the OAuth callback need no session; everything else tries to resume one.
    const resume = path === "/verify-email" || path === "/reset-password" || path === "/auth/callback"
      ? Promise.resolve(false)
      : session.refresh();
    void resume.finally(() => setResumed(true));
  }, []);

  useEffect(() => {
    if (signedIn) {
      startLive();
      void loadSignedInState();
    } else {
      stopLive();
      resetState();
    }
  }, [signedIn]);

  // The match feed ranks the caller's profile: it starts once there is one (onboarding step 1).
  const hasProfile = useStore((s) => s.profile !== null);
  useEffect(() => {
    if (signedIn && hasProfile) startFeed();
    else stopFeed();
  }, [signedIn, hasProfile]);

  if (!resumed) {
    return (
      <p role="status" class="loading">
        Loading OpenHR…
      </p>
    );
  }

  const path = url.pathname;
  if (path === "/verify-email") return <Page>{<VerifyEmail token={url.searchParams.get("token") ?? ""} />}</Page>;
  if (path === "/reset-password") return <Page>{<ResetPassword token={url.searchParams.get("token") ?? ""} />}</Page>;
  if (path === "/auth/callback") return <Page>{<OAuthCallback params={url.searchParams} />}</Page>;
  if (!signedIn) {
    if (path !== "/") queueMicrotask(() => navigate("/", true));
    return (
      <Page>
        <SignIn mode={url.searchParams.get("signup") ? "signup" : "signin"} />
      </Page>
    );
  }
  return <SignedIn path={path} />;
}

function SignedIn({ path }: { path: string }) {
  const profile = useStore((s) => s.profile);
  const loaded = useStore((s) => s.profileLoaded);
  if (!loaded) {
    return (
      <Page nav>
        <p role="status">Loading your profile…</p>
      </Page>
    );
  }
  const onboarding = path.match(/^\/app\/onboarding(?:\/(\d))?$/);
  if (!profile && !onboarding) {
    queueMicrotask(() => navigate("/app/onboarding/1", true));
    return null;
  }
  if (path === "/" || path === "/app" || path === "/app/") {
    queueMicrotask(() => navigate("/app/discover", true));
    return null;
  }
  const conversation = path.match(/^\/app\/messages(?:\/([\w-]+))?$/);
  let screen;
  if (onboarding) screen = <Onboarding step={Number(onboarding[1] ?? 1)} />;
  else if (conversation) screen = <Conversations selected={conversation[1]} />;
  else if (path === "/app/discover") screen = <Discover />;
  else if (path === "/app/matches") screen = <MyMatches />;
  else if (path === "/app/import") screen = <Importer />;
  else if (path === "/app/notifications") screen = <Notifications />;
  else if (path === "/app/settings") screen = <Settings />;
  else
    screen = (
      <main id="main">
        <h1>Page not found</h1>
        <p>
          <a href="/app/discover">Go to Discover</a>
        </p>
      </main>
    );
  return <Page nav>{screen}</Page>;
}

function Page({ nav, children }: { nav?: boolean; children: preact.ComponentChildren }) {
  return (
    <div class="page" onClick={onLinkClick}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={nav ? "/app/discover" : "/"}>
          OpenHR
        </a>
        {nav && <Nav />}
      </header>
      {children}
    </div>
  );
}

function Nav() {
  const unread = useStore((s) => s.conversations.reduce((sum, c) => sum + c.unreadCount, 0));
  const notifications = useStore((s) => s.unreadNotifications);
  // Both live streams (messages, match feed) as one state: the worse of the two (the feed only
  // runs once there is a profile).
  const stream = useStore((s) => {
    const states = s.feedStream === "offline" ? [s.stream] : [s.stream, s.feedStream];
    return (["reconnecting", "connecting", "offline", "live"] as const).find((x) => states.includes(x));
  });
  const path = useLocation().pathname;
  const link = (href: string, text: string, count = 0) => (
    <li>
      <a href={href} aria-current={path.startsWith(href) ? "page" : undefined}>
        {text}
        <Badge count={count} />
      </a>
    </li>
  );
  return (
    <>
      <nav aria-label="Main">
        <ul>
          {link("/app/discover", "Discover")}
          {link("/app/matches", "My matches")}
          {link("/app/messages", "Messages", unread)}
          {link("/app/notifications", "Notifications", notifications)}
          {link("/app/onboarding", "Profile")}
          {link("/app/import", "Import")}
          {link("/app/settings", "Settings")}
        </ul>
      </nav>
      <p class={`stream ${stream}`} role="status" data-stream={stream}>
        {stream === "live" ? "Live" : stream === "reconnecting" ? "Reconnecting…" : stream === "connecting" ? "Connecting…" : ""}
      </p>
    </>
  );
}
