// The caller's match feed (MatchingService.StreamMatchFeed over grpc-web): the current top
// candidates, then candidates entering, moving in or leaving the top and new mutual matches as
// they happen. It resumes from the cursor of the last mutual match it got (resumable.ts), so a
// match made while the tab was offline still arrives; the snapshot is re-sent on every connect.
import { Code, matching } from "./api";
import type { Match, MatchCard, StreamMatchFeedResponse } from "./gen/openhr/matching/v1/matching_pb";
import { loadConversations } from "./live";
import { Resumable } from "./resumable";
import { setState } from "./store";

// How many top candidates Discover shows (the feed's snapshot; the contract allows 1-50).
export const FEED_SIZE = 24;

const feed = new Resumable<StreamMatchFeedResponse>({
  open: (cursor, signal) => matching.streamMatchFeed({ initialSize: FEED_SIZE, resumeCursor: cursor }, { signal }),
  cursorOf: (event) => event.cursor,
  handle,
  status: (feedStream) => setState({ feedStream }),
  // A profile matching has not heard of yet (just created): it will be, shortly.
  notYet: (error) => error.code === Code.FailedPrecondition,
  // A new snapshot follows: it replaces the candidates held. The cursor replays only the
  // matches after the last one this tab saw: reload the list for those made before it.
  connected: (again) => {
    setState({ feed: [], feedLoaded: false });
    if (again) void loadMatches();
  },
});

export function startFeed(): void {
  feed.start();
  void loadMatches();
}

export function stopFeed(): void {
  feed.stop();
}

export async function loadMatches(): Promise<void> {
  try {
    const response = await matching.listMyMatches({ pageSize: 100 });
    setState({ matches: response.matches, matchesLoaded: true });
  } catch {
    // Kept as they were; the feed's next mutual match or a visit reloads.
  }
}

/** The candidate left the grid here (liked or passed): the feed may not say so itself. */
export function forget(profileId: string): void {
  setState((s) => ({ feed: s.feed.filter((c) => c.profileId !== profileId), gone: new Set(s.gone).add(profileId) }));
}

function byScore(a: MatchCard, b: MatchCard): number {
  return b.score - a.score;
}

/** A mutual match (from the feed, or from the like that made it). */
export function matched(match: Match): void {
  setState((s) => ({
    feed: s.feed.filter((c) => !match.userIds.includes(c.userId)),
    matches: [match, ...s.matches.filter((m) => m.matchId !== match.matchId)],
    newMatch: s.matches.some((m) => m.matchId === match.matchId) ? s.newMatch : match,
  }));
  // Messaging opens the conversation when it hears of the match; its own stream says when.
  void loadConversations();
}

function handle(event: StreamMatchFeedResponse): void {
  const e = event.event;
  switch (e.case) {
    case "candidate": {
      const card = e.value;
      setState((s) => {
        const gone = new Set(s.gone);
        gone.delete(card.profileId);
        return { feed: [...s.feed.filter((c) => c.profileId !== card.profileId), card].sort(byScore), gone };
      });
      return;
    }
    case "removedProfileId":
      forget(e.value);
      return;
    case "mutualMatch":
      matched(e.value);
      return;
    case "endOfSnapshot":
      setState({ feedLoaded: true });
      return;
    default:
      return;
  }
}
