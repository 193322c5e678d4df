// Notifications, and settings: visibility, the email digest, export my data, delete my
// account, sign out.
import { useEffect, useState } from "preact/hooks";
import { toJsonString } from "@bufbuild/protobuf";
import { errorText, messaging, privacy } from "../api";
import { ExportMyDataResponseSchema } from "../gen/openhr/identity/v1/identity_pb";
import type { Visibility } from "../gen/openhr/profile/v1/profile_pb";
import { VISIBILITY } from "../labels";
import { navigate } from "../router";
import { session } from "../session";
import { setState, useStore } from "../store";
import { Dialog, Field, Heading, Notice } from "../ui";
import { saveProfile } from "./onboarding";
import { timestampDate } from "@bufbuild/protobuf/wkt";

export function Notifications() {
  const notifications = useStore((s) => s.notifications);
  useEffect(() => {
    void messaging.listNotifications({ pageSize: 50 }).then(
      (response) => setState({ notifications: response.notifications, unreadNotifications: response.totalUnread }),
      () => undefined,
    );
  }, []);

  async function markAll() {
    const response = await messaging.markNotificationsRead({ notificationIds: notifications.map((n) => n.notificationId) });
    setState((s) => ({
      notifications: s.notifications.map((n) => ({ ...n, read: true })),
      unreadNotifications: response.totalUnread,
    }));
  }

  return (
    <main id="main" class="narrow">
      <Heading>Notifications</Heading>
      {notifications.length === 0 ? (
        <p>Nothing new.</p>
      ) : (
        <>
          <button type="button" onClick={() => void markAll()}>
            Mark all as read
          </button>
          <ul class="notifications">
            {notifications.map((n) => (
              <li class={n.read ? "" : "unread"}>
                <strong>{n.title}</strong>
                {!n.read && <span class="visually-hidden"> (unread)</span>}
                <p>{n.body}</p>
                <p class="muted">
                  {n.createTime ? timestampDate(n.createTime).toLocaleString() : ""}
                  {n.conversationId && (
                    <>
                      {" · "}
                      <a href={`/app/messages/${n.conversationId}`}>Open conversation</a>
                    </>
                  )}
                </p>
              </li>
            ))}
          </ul>
        </>
      )}
    </main>
  );
}

export function Settings() {
  const profile = useStore((s) => s.profile);
  const [result, setResult] = useState<{ ok?: string; error?: string }>({});
  const [deleting, setDeleting] = useState(false);

  async function setVisibility(visibility: Visibility) {
    try {
      await saveProfile({ visibility }, ["visibility"]);
      setResult({ ok: "Visibility saved." });
    } catch (e) {
      setResult({ error: errorText(e) });
    }
  }

  async function exportData() {
    try {
      const response = await privacy.exportMyData({});
      const blob = new Blob([toJsonString(ExportMyDataResponseSchema, response, { prettySpaces: 2 })], {
        type: "application/json",
      });
      const url = URL.createObjectURL(blob);
      const link = document.createElement("a");
      link.href = url;
      link.download = "openhr-export.json";
      link.click();
      URL.revokeObjectURL(url);
      setResult({ ok: "Your data was downloaded as openhr-export.json." });
    } catch (e) {
      setResult({ error: errorText(e) });
    }
  }

  async function deleteAccount() {
    try {
      await privacy.deleteMe({});
      session.clear();
      navigate("/", true);
    } catch (e) {
      setResult({ error: errorText(e) });
      setDeleting(false);
    }
  }

  return (
    <main id="main" class="narrow">
      <Heading>Settings</Heading>
      <Notice {...result} />
      <fieldset>
        <legend>Who can see your profile</legend>
        {VISIBILITY.map(([value, text]) => (
          <label class="block">
            <input
              type="radio"
              name="visibility"
              checked={profile?.visibility === value}
              disabled={!profile}
              onChange={() => void setVisibility(value)}
            />
            {text}
          </label>
        ))}
      </fieldset>
      <EmailDigest />
      <h2>Your data</h2>
      <p>
        <button type="button" onClick={() => void exportData()}>
          Export my data
        </button>
      </p>
      <h2>Session</h2>
      <p>
        <button
          type="button"
          onClick={() => {
            void session.signOut().then(() => navigate("/", true));
          }}
        >
          Sign out in every tab
        </button>{" "}
        <button
          type="button"
          onClick={() => {
            void session.signOut(true).then(() => navigate("/", true));
          }}
        >
          Sign out on every device
        </button>
      </p>
      <h2>Delete account</h2>
      <p>Deleting your account erases your profile, messages and matches. It cannot be undone.</p>
      <button type="button" class="danger" onClick={() => setDeleting(true)}>
        Delete my account
      </button>
      <Dialog open={deleting} title="Delete your account?" onClose={() => setDeleting(false)}>
        <p>Your profile, skills, conversations and matches are erased for good.</p>
        <div class="actions">
          <button type="button" class="danger" onClick={() => void deleteAccount()}>
            Delete for good
          </button>
          <button type="button" onClick={() => setDeleting(false)}>
            Keep my account
          </button>
        </div>
      </Dialog>
    </main>
  );
}

/** The opt-in digest of unread messages (messaging mails it at most once per interval).
 * messaging offers no way to read the setting back, so the form says what it last did. */
function EmailDigest() {
  const [email, setEmail] = useState("");
  const [result, setResult] = useState<{ ok?: string; error?: string }>({});

  async function save(enabled: boolean) {
    try {
      await messaging.setEmailDigest({ enabled, email: enabled ? email.trim() : "" });
      setResult({
        ok: enabled ? `The digest is on: unread messages are mailed to ${email.trim()}.` : "The digest is off.",
      });
    } catch (e) {
      setResult({ error: errorText(e) });
    }
  }

  return (
    <form
      aria-labelledby="digest-heading"
      onSubmit={(e) => {
        e.preventDefault();
        void save(true);
      }}
    >
      <h2 id="digest-heading">Email digest</h2>
      <p>Get one email now and then listing the messages you have not read yet.</p>
      <Field label="Send the digest to" type="email" value={email} onInput={setEmail} required autoComplete="email" />
      <Notice {...result} />
      <div class="actions">
        <button type="submit">Turn the digest on</button>
        <button type="button" onClick={() => void save(false)}>
          Turn the digest off
        </button>
      </div>
    </form>
  );
}
