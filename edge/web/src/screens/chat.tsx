// Conversations: the list with unread badges, and one conversation with live messages
// (StreamEvents, see live.ts), typing indicator, read receipts, a drafted first message, block
// and report.
import { useEffect, useRef, useState } from "preact/hooks";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { enrichment, errorText, messaging } from "../api";
import { TextPurpose } from "../gen/openhr/enrichment/v1/enrichment_pb";
import { type Conversation, PresenceState } from "../gen/openhr/messaging/v1/messaging_pb";
import { loadConversations, loadMessages } from "../live";
import { session } from "../session";
import { mergeMessages, setState, useStore } from "../store";
import { Avatar, Badge, Dialog, Heading, Notice, TextArea, useId } from "../ui";

const MAX_MESSAGE = 1000;
const TYPING_REFRESH_MS = 2_000;

export function other(conversation: Conversation) {
  return conversation.participants.find((p) => p.userId !== session.user()) ?? conversation.participants[0];
}

export function Conversations({ selected }: { selected?: string }) {
  const conversations = useStore((s) => s.conversations);
  useEffect(() => {
    void loadConversations();
  }, []);
  return (
    <main id="main" class={`chat ${selected ? "has-selection" : ""}`}>
      <section class="conversation-list" aria-labelledby="conversations-heading">
        {selected ? <h1 id="conversations-heading">Messages</h1> : <Heading>Messages</Heading>}
        {conversations.length === 0 ? (
          <p>No conversations yet. When you and someone like each other, a conversation opens here.</p>
        ) : (
          <ul>
            {conversations.map((c) => {
              const person = other(c);
              return (
                <li>
                  <a
                    href={`/app/messages/${c.conversationId}`}
                    aria-current={c.conversationId === selected ? "page" : undefined}
                    class="conversation-link"
                  >
                    <Avatar name={person?.displayName ?? ""} url={person?.avatarUrl} />
                    <span class="who">
                      <span class="name">{person?.displayName}</span>
                      <span class="last muted">{c.blocked ? "Blocked" : c.lastMessage?.text ?? "No messages yet"}</span>
                    </span>
                    <Badge count={c.unreadCount} />
                  </a>
                </li>
              );
            })}
          </ul>
        )}
      </section>
      {selected && <ConversationView conversationId={selected} />}
    </main>
  );
}

function ConversationView({ conversationId }: { conversationId: string }) {
  const conversation = useStore((s) => s.conversations.find((c) => c.conversationId === conversationId));
  const messages = useStore((s) => s.messages[conversationId]);
  const typing = useStore((s) => s.typing[conversationId] ?? {});
  const [text, setText] = useState("");
  const [error, setError] = useState("");
  const [reporting, setReporting] = useState(false);
  const lastTyping = useRef(0);
  const logRef = useRef<HTMLOListElement>(null);
  const me = session.user();
  const person = conversation ? other(conversation) : undefined;

  useEffect(() => {
    if (messages === undefined) void loadMessages(conversationId).catch((e) => setError(errorText(e)));
  }, [conversationId, messages === undefined]);

  // Read receipts: what is on screen is read.
  const newest = messages?.length ? messages[messages.length - 1] : undefined;
  const myRead = conversation?.participants.find((p) => p.userId === me)?.lastReadSeq ?? 0n;
  useEffect(() => {
    if (!newest || newest.seq <= myRead || document.visibilityState !== "visible") return;
    messaging.markRead({ conversationId, seq: newest.seq }).then(
      (response) =>
        setState((s) => ({
          conversations: s.conversations.map((c) =>
            c.conversationId === conversationId
              ? {
                  ...c,
                  unreadCount: response.unreadCount,
                  participants: c.participants.map((p) => (p.userId === me ? { ...p, lastReadSeq: newest.seq } : p)),
                }
              : c,
          ),
        })),
      () => undefined,
    );
    logRef.current?.lastElementChild?.scrollIntoView({ block: "end" });
  }, [newest?.seq]);

  function onInput(value: string) {
    setText(value);
    const now = Date.now();
    if (value && now - lastTyping.current > TYPING_REFRESH_MS) {
      lastTyping.current = now;
      void messaging.setTyping({ conversationId, typing: true }).catch(() => undefined);
    }
  }

  async function send(event: Event) {
    event.preventDefault();
    const body = text.trim();
    if (!body) return;
    setError("");
    try {
      const response = await messaging.sendMessage({ conversationId, clientMessageId: crypto.randomUUID(), text: body });
      if (response.message) mergeMessages(conversationId, [response.message]);
      setText("");
      lastTyping.current = 0;
    } catch (e) {
      setError(errorText(e));
    }
  }

  async function draftFirst() {
    if (!person) return;
    try {
      const response = await enrichment.draftText({ purpose: TextPurpose.FIRST_MESSAGE, profileId: person.profileId });
      setText(response.text.slice(0, MAX_MESSAGE));
    } catch (e) {
      setError(errorText(e));
    }
  }

  async function block() {
    if (!window.confirm(`Block ${person?.displayName}? Neither of you can send messages afterwards.`)) return;
    try {
      await messaging.blockConversation({ conversationId });
      await loadConversations();
    } catch (e) {
      setError(errorText(e));
    }
  }

  const typers = Object.keys(typing).filter((id) => id !== me);
  const otherRead = person?.lastReadSeq ?? 0n;
  const lastMine = [...(messages ?? [])].reverse().find((m) => m.senderUserId === me);
  return (
    <section class="conversation" aria-labelledby="conversation-heading">
      <header>
        <Avatar name={person?.displayName ?? ""} url={person?.avatarUrl} />
        <div>
          <h2 id="conversation-heading">{person?.displayName ?? "Conversation"}</h2>
          <Presence userId={person?.userId ?? ""} />
        </div>
        <div class="actions">
          <button type="button" onClick={() => void block()} disabled={conversation?.blocked}>
            Block
          </button>
          <button type="button" onClick={() => setReporting(true)}>
            Report
          </button>
        </div>
      </header>
      <div role="log" aria-label="Messages">
      <ol class="messages" ref={logRef}>
        {(messages ?? []).map((m) => (
          <li class={m.senderUserId === me ? "mine" : "theirs"} data-seq={String(m.seq)}>
            <span class="visually-hidden">{m.senderUserId === me ? "You" : person?.displayName}: </span>
            <span class="text">{m.text}</span>
            <time class="muted" dateTime={m.sendTime ? timestampDate(m.sendTime).toISOString() : undefined}>
              {m.sendTime ? timestampDate(m.sendTime).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : ""}
            </time>
            {m === lastMine && otherRead >= m.seq && <span class="receipt">Read</span>}
          </li>
        ))}
      </ol>
      </div>
      <p class="typing" role="status" aria-live="polite">
        {typers.length > 0 ? `${person?.displayName ?? "Someone"} is typing…` : ""}
      </p>
      {messages?.length === 0 && !conversation?.blocked && (
        <p>
          <button type="button" onClick={() => void draftFirst()}>
            Suggest a first message
          </button>
        </p>
      )}
      <Notice error={error} />
      {conversation?.blocked ? (
        <p class="notice">This conversation is blocked.</p>
      ) : (
        <form class="composer" onSubmit={send}>
          <TextArea label="Message" value={text} onInput={onInput} maxLength={MAX_MESSAGE} rows={2} />
          <button type="submit" class="primary">
            Send
          </button>
        </form>
      )}
      <ReportDialog conversationId={conversationId} open={reporting} onClose={() => setReporting(false)} />
    </section>
  );
}

function ReportDialog(props: { conversationId: string; open: boolean; onClose: () => void }) {
  const [reason, setReason] = useState("");
  const [result, setResult] = useState<{ ok?: string; error?: string }>({});
  const formId = useId("report");
  async function submit(event: Event) {
    event.preventDefault();
    try {
      await messaging.reportConversation({ conversationId: props.conversationId, reason });
      setResult({ ok: "Thank you. Our team will look at this conversation." });
      setReason("");
    } catch (e) {
      setResult({ error: errorText(e) });
    }
  }
  return (
    <Dialog open={props.open} title="Report this conversation" onClose={props.onClose}>
      <form id={formId} onSubmit={submit}>
        <TextArea label="What happened?" value={reason} onInput={setReason} maxLength={1000} />
        <Notice {...result} />
        <div class="actions">
          <button type="submit" class="primary" disabled={!reason.trim()}>
            Send report
          </button>
          <button type="button" onClick={props.onClose}>
            Close
          </button>
        </div>
      </form>
    </Dialog>
  );
}

const PRESENCE: Record<number, string> = {
  [PresenceState.ONLINE]: "Online",
  [PresenceState.AWAY]: "Away",
  [PresenceState.OFFLINE]: "Offline",
};

/** The other person's presence as last heard on the stream (nothing until it first changes:
 * messaging sends changes only, no current state). */
function Presence({ userId }: { userId: string }) {
  const state = useStore((s) => s.presence[userId]);
  const text = state === undefined ? "" : PRESENCE[state];
  if (!text) return null;
  return (
    <p class={`presence ${text.toLowerCase()}`} role="status">
      {text}
    </p>
  );
}
