// Discover: the top candidates (score and "why you matched"), live from the match feed
// (feed.ts); with filters, a ranked page from ListMatches that the feed keeps current. Like /
// pass. My matches: the mutual matches (ListMyMatches, then live from the feed), each with its
// conversation once messaging has opened it.
import { useEffect, useState } from "preact/hooks";
import { errorText, matching } from "../api";
import { FEED_SIZE, forget, loadMatches, matched } from "../feed";
import type { Explanation, Match, MatchCard } from "../gen/openhr/matching/v1/matching_pb";
import { Factor } from "../gen/openhr/matching/v1/matching_pb";
import type { Conversation } from "../gen/openhr/messaging/v1/messaging_pb";
import type { Commitment, Role, StartupStage } from "../gen/openhr/profile/v1/profile_pb";
import { COMMITMENTS, ROLES, STAGES, label } from "../labels";
import { loadConversations } from "../live";
import { useStore } from "../store";
import { Avatar, Field, Heading, Notice } from "../ui";
import { other } from "./chat";
import { Checks } from "./onboarding";

const FACTORS: Record<number, string> = {
  [Factor.SKILL_FIT]: "Skills",
  [Factor.TIMEZONE_OVERLAP]: "Timezone overlap",
  [Factor.EQUITY_ALIGNMENT]: "Equity",
  [Factor.STAGE_ALIGNMENT]: "Stage",
};

interface Filters {
  roles: Role[];
  stages: StartupStage[];
  commitments: Commitment[];
  /** Hours of working time shared at least (0-12, the contract's range). */
  overlap: string;
  minScore: number;
  remoteOnly: boolean;
  country: string;
  skills: string;
}

const NO_FILTERS: Filters = {
  roles: [],
  stages: [],
  commitments: [],
  overlap: "",
  minScore: 0,
  remoteOnly: false,
  country: "",
  skills: "",
};

function filtering(f: Filters): boolean {
  return (
    f.roles.length > 0 ||
    f.stages.length > 0 ||
    f.commitments.length > 0 ||
    Number(f.overlap) > 0 ||
    f.minScore > 0 ||
    f.remoteOnly ||
    f.country !== "" ||
    f.skills.trim() !== ""
  );
}

function skillList(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** The conversation messaging opened for a match, and the other person in it. */
function peerOf(match: Match, conversations: Conversation[]) {
  const conversation = conversations.find(
    (c) => c.matchId === match.matchId || (match.conversationId !== "" && c.conversationId === match.conversationId),
  );
  return { conversation, person: conversation ? other(conversation) : undefined };
}

/** "It's a match" for the newest mutual match made while the app was open. */
function NewMatchNotice() {
  const match = useStore((s) => s.newMatch);
  const conversations = useStore((s) => s.conversations);
  if (!match) return null;
  const { conversation, person } = peerOf(match, conversations);
  return (
    <p class="notice ok" role="status">
      It's a match{person ? ` with ${person.displayName}` : ""}!{" "}
      {conversation ? <a href={`/app/messages/${conversation.conversationId}`}>Say hello</a> : "A conversation is opening…"}
    </p>
  );
}

export function Discover() {
  const profile = useStore((s) => s.profile);
  const feed = useStore((s) => s.feed);
  const feedLoaded = useStore((s) => s.feedLoaded);
  const gone = useStore((s) => s.gone);
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  // The filtered page (null: not filtering, or loading it).
  const [page, setPage] = useState<MatchCard[] | null>(null);
  const [applied, setApplied] = useState(false);
  const [stale, setStale] = useState(false);
  const [error, setError] = useState("");
  const [notice, setNotice] = useState("");

  async function apply() {
    setError("");
    if (!filtering(filters)) {
      setApplied(false);
      setPage(null);
      return;
    }
    setApplied(true);
    setPage(null);
    try {
      const response = await matching.listMatches({
        pageSize: FEED_SIZE,
        roles: filters.roles,
        stages: filters.stages,
        commitments: filters.commitments,
        minTimezoneOverlapHours: Number(filters.overlap) || 0,
        minScore: filters.minScore / 100,
        remoteOnly: filters.remoteOnly,
        countryCode: filters.country.trim().toUpperCase(),
        skills: skillList(filters.skills),
      });
      setPage(response.matches);
      setStale(response.stale);
    } catch (e) {
      setPage([]);
      setError(errorText(e));
    }
  }

  useEffect(() => {
    void loadMatches();
  }, []);

  async function act(card: MatchCard, like: boolean) {
    setError("");
    try {
      if (like) {
        const response = await matching.likeProfile({ profileId: card.profileId });
        setNotice(response.mutual ? "" : `You liked ${card.displayName}. If they like you back, you match.`);
        if (response.mutual && response.match) matched(response.match);
      } else {
        await matching.passProfile({ profileId: card.profileId });
        setNotice(`You passed on ${card.displayName}.`);
      }
      forget(card.profileId);
    } catch (e) {
      setError(errorText(e));
    }
  }

  // The feed keeps the filtered page current: scores move, people leave.
  const live = new Map(feed.map((c) => [c.profileId, c]));
  const cards = applied
    ? page && page.filter((c) => !gone.has(c.profileId)).map((c) => live.get(c.profileId) ?? c)
    : feedLoaded || feed.length
      ? feed
      : null;
  const set = (patch: Partial<Filters>) => setFilters({ ...filters, ...patch });

  return (
    <main id="main">
      <Heading>Discover</Heading>
      <details class="filters-box">
        <summary>Filters</summary>
        <form
          class="filters"
          aria-label="Filters"
          onSubmit={(e) => {
            e.preventDefault();
            void apply();
          }}
        >
          <Checks legend="Roles" options={ROLES} values={filters.roles} onChange={(roles) => set({ roles })} />
          <Checks legend="Stages" options={STAGES} values={filters.stages} onChange={(stages) => set({ stages })} />
          <Checks
            legend="Commitment"
            options={COMMITMENTS.filter(([value]) => value !== 0)}
            values={filters.commitments}
            onChange={(commitments) => set({ commitments })}
          />
          <Field label="Country code" value={filters.country} onInput={(country) => set({ country })} maxLength={2} hint="Two letters, e.g. DE." />
          <Field label="Skills" value={filters.skills} onInput={(skills) => set({ skills })} hint="Any of these, separated by commas." />
          <Field
            label="Shared working hours, at least"
            type="number"
            value={filters.overlap}
            onInput={(overlap) => set({ overlap })}
            hint="0 to 12 hours a day."
          />
          <label>
            Minimum score: {filters.minScore}%
            <input
              type="range"
              min={0}
              max={100}
              step={5}
              value={filters.minScore}
              onInput={(e) => set({ minScore: Number((e.target as HTMLInputElement).value) })}
            />
          </label>
          <label>
            <input type="checkbox" checked={filters.remoteOnly} onChange={(e) => set({ remoteOnly: (e.target as HTMLInputElement).checked })} />
            Remote only
          </label>
          <div class="actions">
            <button type="submit">Apply filters</button>
            {applied && (
              <button
                type="button"
                onClick={() => {
                  setFilters(NO_FILTERS);
                  setApplied(false);
                  setPage(null);
                }}
              >
                Clear filters
              </button>
            )}
          </div>
        </form>
      </details>
      <NewMatchNotice />
      <Notice error={error} ok={notice} />
      {applied && stale && <p class="notice">These candidates may be out of date: ranking is catching up.</p>}
      {cards === null ? (
        <p role="status">Loading matches…</p>
      ) : cards.length === 0 ? (
        <p>
          No candidates right now.{" "}
          {profile && !profile.lookingFor.trim() && !profile.preferences?.rolesSought?.roles.length ? (
            <>
              Matches start from who you are looking for: <a href="/app/onboarding/3">choose the roles you seek</a> or{" "}
              <a href="/app/onboarding/4">describe them</a>.
            </>
          ) : (
            "Widen the filters, or come back later: new people show up here as they join."
          )}
        </p>
      ) : (
        <ul class="cards grid" aria-label="Candidates">
          {cards.map((card) => (
            <CandidateCard card={card} act={act} />
          ))}
        </ul>
      )}
    </main>
  );
}

function CandidateCard({ card, act }: { card: MatchCard; act: (card: MatchCard, like: boolean) => Promise<void> }) {
  const percent = Math.round(card.score * 100);
  const [explanation, setExplanation] = useState<Explanation | null>(null);
  const [error, setError] = useState("");

  /** The narrative and the skills behind the score, asked for when the breakdown first opens. */
  async function explain() {
    if (explanation) return;
    try {
      const response = await matching.getMatchExplanation({ profileId: card.profileId });
      setExplanation(response.explanation ?? null);
    } catch (e) {
      setError(errorText(e));
    }
  }

  return (
    <li class="card match" aria-labelledby={`card-${card.profileId}`}>
      <header>
        <Avatar name={card.displayName} url={card.avatarUrl} />
        <div>
          <h2 id={`card-${card.profileId}`}>{card.displayName}</h2>
          <p class="muted">
            {label(ROLES, card.role)}
            {card.location?.city ? ` · ${card.location.city}` : ""}
            {card.timezone ? ` · ${card.timezone}` : ""}
          </p>
        </div>
        <p class="score" aria-label={`Match score ${percent} percent`}>
          {percent}%
        </p>
      </header>
      {card.headline && <p>{card.headline}</p>}
      {card.topSkills.length > 0 && (
        <ul class="chips" aria-label="Top skills">
          {card.topSkills.map((skill) => (
            <li>{skill}</li>
          ))}
        </ul>
      )}
      <p class="why">
        <strong>Why you matched:</strong> {card.summary}
      </p>
      <details onToggle={(e) => (e.target as HTMLDetailsElement).open && void explain()}>
        <summary>Score breakdown</summary>
        <ul>
          {card.factors.map((f) => (
            <li>
              {FACTORS[f.factor] ?? "Other"}: {Math.round(f.score * 100)}% (weight {Math.round(f.weight * 100)}%) — {f.detail}
            </li>
          ))}
        </ul>
        <Explained explanation={explanation} error={error} />
      </details>
      <div class="actions">
        <button type="button" class="primary" onClick={() => void act(card, true)}>
          Like {card.displayName}
        </button>
        <button type="button" onClick={() => void act(card, false)}>
          Pass <span class="visually-hidden">on {card.displayName}</span>
        </button>
      </div>
    </li>
  );
}

function Explained({ explanation, error }: { explanation: Explanation | null; error: string }) {
  if (error) return <Notice error={error} />;
  if (!explanation) return <p role="status">Loading the explanation…</p>;
  return (
    <>
      <p class="narrative">{explanation.narrative}</p>
      {explanation.sharedSkills.length > 0 && <p>Skills you share: {explanation.sharedSkills.join(", ")}</p>}
      {explanation.complementarySkills.length > 0 && <p>Skills they add: {explanation.complementarySkills.join(", ")}</p>}
    </>
  );
}

export function MyMatches() {
  const matches = useStore((s) => s.matches);
  const loaded = useStore((s) => s.matchesLoaded);
  const conversations = useStore((s) => s.conversations);
  useEffect(() => {
    void loadMatches();
    void loadConversations();
  }, []);
  return (
    <main id="main">
      <Heading>My matches</Heading>
      <NewMatchNotice />
      {!loaded ? (
        <p role="status">Loading your matches…</p>
      ) : matches.length === 0 ? (
        <p>No matches yet. Like people in Discover: when they like you back, they appear here.</p>
      ) : (
        <ul class="cards grid" aria-label="Matches">
          {matches.map((match) => {
            const { conversation, person } = peerOf(match, conversations);
            const name = person?.displayName ?? "Your match";
            return (
              <li class="card" aria-label={name}>
                <header>
                  <Avatar name={name} url={person?.avatarUrl} />
                  <div>
                    <h2>{name}</h2>
                    <p class="muted">
                      Matched {match.createTime ? new Date(Number(match.createTime.seconds) * 1000).toLocaleDateString() : ""} ·{" "}
                      {Math.round(match.score * 100)}% match
                    </p>
                  </div>
                </header>
                {conversation ? (
                  <a href={`/app/messages/${conversation.conversationId}`}>Message {name}</a>
                ) : (
                  <p role="status">Opening a conversation…</p>
                )}
              </li>
            );
          })}
        </ul>
      )}
    </main>
  );
}
