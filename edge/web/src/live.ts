// The caller's live event stream (MessagingService.StreamEvents over grpc-web): messages,
// receipts, typing, presence, new matches, notifications. It resumes from the last cursor after
// a drop (resumable.ts); messages are merged by seq, so each shows once and in order.
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { messaging } from "./api";
import { PresenceState, type StreamEventsResponse } from "./gen/openhr/messaging/v1/messaging_pb";
import { Resumable } from "./resumable";
import { session } from "./session";
import { getState, mergeMessages, setState } from "./store";

const events = new Resumable<StreamEventsResponse>({
  open: (cursor, signal) => messaging.streamEvents({ cursor }, { signal }),
  cursorOf: (event) => event.cursor,
  handle,
  status: (stream) => setState({ stream }),
  connected: (again) => {
    // A tab that said "away" (hidden, or a reload's unload) and shows now is online again.
    if (!document.hidden) reportPresence();
    if (again) void refreshAfterReconnect();
  },
});

export function startLive(): void {
  events.start();
}

// The people one chats with see "away" while this tab is hidden (an open stream is "online").
function reportPresence(): void {
  if (!session.signedIn()) return;
  const state = document.hidden ? PresenceState.AWAY : PresenceState.ONLINE;
  void messaging.setPresence({ state }).catch(() => undefined);
}

document.addEventListener("visibilitychange", reportPresence);

export function stopLive(): void {
  events.stop();
}

/** Unread counts may have moved while we were away (replayed events carry the new ones). */
async function refreshAfterReconnect(): Promise<void> {
  await loadConversations();
}

export async function loadConversations(): Promise<void> {
  try {
    const response = await messaging.listConversations({ pageSize: 100 });
    setState({ conversations: response.conversations });
  } catch {
    // Shown as stale; the next event or visit reloads.
  }
}

/** Loads a conversation's messages after the last one held (all of them the first time). */
export async function loadMessages(conversationId: string): Promise<void> {
  const held = getState().messages[conversationId] ?? [];
  let afterSeq = held.length ? held[held.length - 1].seq : 0n;
  let pageToken = "";
  do {
    const response = await messaging.listMessages({ conversationId, afterSeq, pageSize: 200, pageToken });
    mergeMessages(conversationId, response.messages);
    pageToken = response.nextPageToken;
    if (response.messages.length) afterSeq = response.messages[response.messages.length - 1].seq;
  } while (pageToken);
}

function updateConversation(conversationId: string, patch: (c: import("./gen/openhr/messaging/v1/messaging_pb").Conversation) => void): void {
  setState((s) => ({
    conversations: s.conversations.map((c) => {
      if (c.conversationId !== conversationId) return c;
      const copy = { ...c, participants: c.participants.map((p) => ({ ...p })) };
      patch(copy);
      return copy;
    }),
  }));
}

function handle(event: StreamEventsResponse): void {
  const e = event.event;
  switch (e.case) {
    case "message": {
      const message = e.value.message;
      if (!message) return;
      const held = getState().messages[message.conversationId];
      const last = held?.length ? held[held.length - 1].seq : undefined;
      mergeMessages(message.conversationId, [message]);
      if (last !== undefined && message.seq > last + 1n) void loadMessages(message.conversationId);
      const known = getState().conversations.some((c) => c.conversationId === message.conversationId);
      if (!known) {
        void loadConversations();
        return;
      }
      updateConversation(message.conversationId, (c) => {
        if (!c.lastMessage || c.lastMessage.seq < message.seq) c.lastMessage = message;
        c.unreadCount = e.value.unreadCount;
      });
      setTyping(message.conversationId, message.senderUserId, 0);
      return;
    }
    case "receipt": {
      const receipt = e.value;
      updateConversation(receipt.conversationId, (c) => {
        for (const p of c.participants) {
          if (p.userId === receipt.readerUserId && p.lastReadSeq < receipt.seq) p.lastReadSeq = receipt.seq;
        }
      });
      return;
    }
    case "typing": {
      const typing = e.value;
      const until = typing.typing && typing.expireTime ? timestampMs(typing.expireTime) : 0;
      setTyping(typing.conversationId, typing.userId, until);
      return;
    }
    case "newMatch":
    case "block":
    case "resync":
      void loadConversations();
      if (e.case === "resync") {
        setState({ messages: {} });
      }
      return;
    case "presence":
      setState((s) => ({ presence: { ...s.presence, [e.value.userId]: e.value.state } }));
      return;
    case "notification":
      setState((s) => ({
        notifications: [e.value, ...s.notifications.filter((n) => n.notificationId !== e.value.notificationId)],
        unreadNotifications: s.unreadNotifications + (e.value.read ? 0 : 1),
      }));
      return;
    default:
      return;
  }
}

/** Shows `userId` typing in a conversation until `until` (ms; 0 clears it). */
function setTyping(conversationId: string, userId: string, until: number): void {
  setState((s) => {
    const current = { ...(s.typing[conversationId] ?? {}) };
    if (until > Date.now()) current[userId] = until;
    else delete current[userId];
    return { typing: { ...s.typing, [conversationId]: current } };
  });
  if (until > Date.now()) {
    window.setTimeout(() => {
      const shown = getState().typing[conversationId]?.[userId];
      if (shown !== undefined && shown <= Date.now()) setTyping(conversationId, userId, 0);
    }, until - Date.now() + 50);
  }
}
