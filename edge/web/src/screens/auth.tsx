// Signing in and everything that gets a person there: sign up, sign in (password, GitHub,
// Google), the links mailed by identity (/verify-email, /reset-password) and the OAuth
// callback (/auth/callback).
import { useEffect, useState } from "preact/hooks";
import { Code, COOKIE_MODE, ConnectError, errorText, identity } from "../api";
import { webConfig } from "../config";
import { navigate } from "../router";
import { session } from "../session";
import { Field, Heading, Notice, PasswordField } from "../ui";

const PROVIDER_NAMES: Record<string, string> = { github: "GitHub", google: "Google" };
const OAUTH_KEY = "openhr-oauth";

export function SignIn({ mode }: { mode: "signin" | "signup" }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [name, setName] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const [providers, setProviders] = useState<string[]>([]);
  useEffect(() => {
    void webConfig().then((config) => setProviders(config.oauthProviders));
  }, []);

  async function submit(event: Event) {
    event.preventDefault();
    setBusy(true);
    setError("");
    try {
      if (mode === "signup") {
        const response = await identity.signUp({ email, password, displayName: name }, { headers: COOKIE_MODE });
        session.take(response.tokens);
      } else {
        const response = await identity.login({ email, password }, { headers: COOKIE_MODE });
        session.take(response.tokens);
      }
      navigate("/app", true);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  async function oauth(provider: string) {
    setError("");
    try {
      const response = await identity.startOAuth({ provider });
      sessionStorage.setItem(OAUTH_KEY, JSON.stringify({ provider, state: response.state }));
      window.location.assign(response.authorizationUrl);
    } catch (e) {
      setError(errorText(e));
    }
  }

  const signup = mode === "signup";
  return (
    <main id="main" class="narrow">
      <Heading>{signup ? "Create your OpenHR account" : "Sign in to OpenHR"}</Heading>
      <p>Find a co-founder or an early teammate.</p>
      <form onSubmit={submit} aria-busy={busy}>
        {signup && <Field label="Your name" value={name} onInput={setName} autoComplete="name" maxLength={80} />}
        <Field label="Email" type="email" value={email} onInput={setEmail} required autoComplete="email" maxLength={254} />
        <PasswordField
          label="Password"
          value={password}
          onInput={setPassword}
          isNew={signup}
          hint={signup ? "8 to 128 characters; not a common password." : undefined}
        />
        <Notice error={error} />
        <button type="submit" class="primary" disabled={busy}>
          {signup ? "Create account" : "Sign in"}
        </button>
      </form>
      {providers.length > 0 && (
        <section aria-label="Other ways to sign in" class="oauth">
          {providers.map((provider) => (
            <button type="button" onClick={() => void oauth(provider)}>
              Continue with {PROVIDER_NAMES[provider] ?? provider}
            </button>
          ))}
        </section>
      )}
      <p>
        {signup ? (
          <>
            Already have an account? <a href="/">Sign in</a>
          </>
        ) : (
          <>
            New here? <a href="/?signup=1">Create an account</a> · <a href="/reset-password">Forgot your password?</a>
          </>
        )}
      </p>
    </main>
  );
}

export function VerifyEmail({ token }: { token: string }) {
  const [result, setResult] = useState<{ ok?: string; error?: string }>({});
  useEffect(() => {
    if (!token) {
      setResult({ error: "This link has no token. Open the link from the email again, or ask for a new one." });
      return;
    }
    identity.verifyEmail({ token }).then(
      () => setResult({ ok: "Your email address is verified." }),
      (e) => setResult({ error: errorText(e) }),
    );
  }, [token]);
  return (
    <main id="main" class="narrow">
      <Heading>Verify your email</Heading>
      {!result.ok && !result.error && <p role="status">Checking your link…</p>}
      <Notice {...result} />
      {result.error && <ResendVerification />}
      <p>
        <a href={session.signedIn() ? "/app" : "/"}>Continue to OpenHR</a>
      </p>
    </main>
  );
}

/** Mails a new verification link to the signed-in person (the session resumes from the cookie). */
function ResendVerification() {
  const [result, setResult] = useState<{ ok?: string; error?: string }>({});
  const [busy, setBusy] = useState(false);

  async function resend() {
    setBusy(true);
    try {
      if (!session.signedIn() && !(await session.refresh())) {
        setResult({ error: "Sign in first, then ask for a new link here." });
        return;
      }
      const response = await identity.resendVerificationEmail({});
      setResult(
        response.verificationSent
          ? { ok: "A new link is on its way: check your inbox." }
          : { error: "The email could not be sent right now. Please try again later." },
      );
    } catch (e) {
      const code = ConnectError.from(e).code;
      setResult(code === Code.FailedPrecondition ? { ok: "Your email address is already verified." } : { error: errorText(e) });
    } finally {
      setBusy(false);
    }
  }

  return (
    <section aria-label="New link">
      <p>Link expired or lost?</p>
      <button type="button" onClick={() => void resend()} disabled={busy}>
        Resend verification email
      </button>
      <Notice {...result} />
    </section>
  );
}

export function ResetPassword({ token }: { token: string }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [result, setResult] = useState<{ ok?: string; error?: string }>({});
  const [busy, setBusy] = useState(false);

  async function submit(event: Event) {
    event.preventDefault();
    setBusy(true);
    try {
      if (token) {
        await identity.resetPassword({ token, newPassword: password });
        setResult({ ok: "Your password is changed. Sign in with the new one." });
      } else {
        await identity.requestPasswordReset({ email });
        setResult({ ok: "If an account uses this address, a link to reset its password is on its way." });
      }
    } catch (e) {
      setResult({ error: errorText(e) });
    } finally {
      setBusy(false);
    }
  }

  return (
    <main id="main" class="narrow">
      <Heading>{token ? "Choose a new password" : "Reset your password"}</Heading>
      <form onSubmit={submit} aria-busy={busy}>
        {token ? (
          <PasswordField label="New password" value={password} onInput={setPassword} isNew />
        ) : (
          <Field label="Email" type="email" value={email} onInput={setEmail} required autoComplete="email" />
        )}
        <Notice {...result} />
        <button type="submit" class="primary" disabled={busy}>
          {token ? "Change password" : "Send me a link"}
        </button>
      </form>
      <p>
        <a href="/">Back to sign in</a>
      </p>
    </main>
  );
}

export function OAuthCallback({ params }: { params: URLSearchParams }) {
  const [error, setError] = useState("");
  useEffect(() => {
    const started = JSON.parse(sessionStorage.getItem(OAUTH_KEY) ?? "null") as { provider: string; state: string } | null;
    sessionStorage.removeItem(OAUTH_KEY);
    const code = params.get("code") ?? "";
    const state = params.get("state") ?? "";
    if (params.get("error")) {
      setError(`The provider did not sign you in (${params.get("error")}).`);
      return;
    }
    if (!started || !code || started.state !== state) {
      setError("This sign-in was not started here or has expired. Please start again.");
      return;
    }
    identity.completeOAuth({ provider: started.provider, code, state }, { headers: COOKIE_MODE }).then(
      (response) => {
        session.take(response.tokens);
        navigate("/app", true);
      },
      (e) => setError(errorText(e)),
    );
  }, []);
  return (
    <main id="main" class="narrow">
      <Heading>Signing you in</Heading>
      {!error && <p role="status">Finishing the sign-in…</p>}
      <Notice error={error} />
      {error && (
        <p>
          <a href="/">Back to sign in</a>
        </p>
      )}
    </main>
  );
}
