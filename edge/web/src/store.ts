// App-wide state the screens share: the caller's profile, conversations and their messages,
// who is typing, notifications and the live stream's status. Screens read it with useStore and
// re-render when it changes.
import { useEffect, useState } from "preact/hooks";
import type { Profile } from "./gen/openhr/profile/v1/profile_pb";
import type { Conversation, Message, Notification, PresenceState } from "./gen/openhr/messaging/v1/messaging_pb";
import type { Match, MatchCard } from "./gen/openhr/matching/v1/matching_pb";

export type StreamStatus = "offline" | "connecting" | "live" | "reconnecting";

export interface State {
  profile: Profile | null;
  profileLoaded: boolean;
  conversations: Conversation[];
  /** Per conversation, its messages by ascending seq without gaps or duplicates. */
  messages: Record<string, Message[]>;
  /** conversation id -> user id -> when the indicator stops showing (ms). */
  typing: Record<string, Record<string, number>>;
  notifications: Notification[];
  unreadNotifications: number;
  /** user id -> their presence, as last heard on the stream (unknown until it changes). */
  presence: Record<string, PresenceState>;
  stream: StreamStatus;
  /** The match feed's current top candidates, best first (StreamMatchFeed). */
  feed: MatchCard[];
  /** The feed's snapshot arrived (before that, `feed` may be partial). */
  feedLoaded: boolean;
  /** Profiles that left discovery since the screen loaded (passed, liked, matched, hidden). */
  gone: Set<string>;
  /** Mutual matches, newest first. */
  matches: Match[];
  matchesLoaded: boolean;
  /** The newest match made while this tab was open, for a notice. */
  newMatch: Match | null;
  feedStream: StreamStatus;
}

const initial = (): State => ({
  profile: null,
  profileLoaded: false,
  conversations: [],
  messages: {},
  typing: {},
  notifications: [],
  unreadNotifications: 0,
  presence: {},
  stream: "offline",
  feed: [],
  feedLoaded: false,
  gone: new Set(),
  matches: [],
  matchesLoaded: false,
  newMatch: null,
  feedStream: "offline",
});

let state: State = initial();
const listeners = new Set<() => void>();

export function getState(): State {
  return state;
}

export function setState(patch: Partial<State> | ((s: State) => Partial<State>)): void {
  state = { ...state, ...(typeof patch === "function" ? patch(state) : patch) };
  for (const listener of listeners) listener();
}

export function resetState(): void {
  state = initial();
  for (const listener of listeners) listener();
}

export function useStore<T>(select: (s: State) => T): T {
  const [value, setValue] = useState(() => select(state));
  useEffect(() => {
    const update = () => setValue(() => select(state));
    listeners.add(update);
    update();
    return () => listeners.delete(update);
  }, []);
  return value;
}

/** Merges messages into a conversation: kept once each (by seq), in order. */
export function mergeMessages(conversationId: string, incoming: Message[]): void {
  setState((s) => {
    const bySeq = new Map((s.messages[conversationId] ?? []).map((m) => [m.seq, m]));
    for (const message of incoming) bySeq.set(message.seq, message);
    const merged = [...bySeq.values()].sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
    return { messages: { ...s.messages, [conversationId]: merged } };
  });
}
