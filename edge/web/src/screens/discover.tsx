// Discover: a grid of ranked candidates (score and "why you matched"), filters, like / pass.
// My matches: the people you matched with (each has a conversation).
import { useEffect, useState } from "preact/hooks";
import { Code, ConnectError, errorText, matching } from "../api";
import type { MatchCard } from "../gen/openhr/matching/v1/matching_pb";
import { Factor } from "../gen/openhr/matching/v1/matching_pb";
import type { Role, StartupStage } from "../gen/openhr/profile/v1/profile_pb";
import { ROLES, STAGES, label } from "../labels";
import { loadConversations } from "../live";
import { useStore } from "../store";
import { Avatar, Heading, Notice } from "../ui";
import { other } from "./chat";

const FACTORS: Record<number, string> = {
  [Factor.SKILL_FIT]: "Skills",
  [Factor.TIMEZONE_OVERLAP]: "Timezone overlap",
  [Factor.EQUITY_ALIGNMENT]: "Equity",
  [Factor.STAGE_ALIGNMENT]: "Stage",
};

export function Discover() {
  const [cards, setCards] = useState<MatchCard[] | null>(null);
  const [error, setError] = useState("");
  const [notice, setNotice] = useState("");
  const [roles, setRoles] = useState<Role[]>([]);
  const [stages, setStages] = useState<StartupStage[]>([]);
  const [minScore, setMinScore] = useState(0);
  const [remoteOnly, setRemoteOnly] = useState(false);

  async function load() {
    setError("");
    try {
      const response = await matching.listMatches({ pageSize: 24, roles, stages, minScore: minScore / 100, remoteOnly });
      setCards(response.matches);
    } catch (e) {
      const code = ConnectError.from(e).code;
      setCards([]);
      setError(code === Code.Unimplemented ? "Matching is not available on this server yet." : errorText(e));
    }
  }

  useEffect(() => {
    void load();
  }, []);

  async function act(card: MatchCard, like: boolean) {
    try {
      if (like) {
        const response = await matching.likeProfile({ profileId: card.profileId });
        setNotice(
          response.mutual
            ? `It's a match with ${card.displayName}! A conversation is open in Messages.`
            : `You liked ${card.displayName}.`,
        );
        if (response.mutual) void loadConversations();
      } else {
        await matching.passProfile({ profileId: card.profileId });
        setNotice(`You passed on ${card.displayName}.`);
      }
      setCards((current) => (current ?? []).filter((c) => c.profileId !== card.profileId));
    } catch (e) {
      setError(errorText(e));
    }
  }

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
          void load();
        }}
      >
        <fieldset>
          <legend>Roles</legend>
          {ROLES.map(([value, text]) => (
            <label>
              <input
                type="checkbox"
                checked={roles.includes(value)}
                onChange={(e) => setRoles((e.target as HTMLInputElement).checked ? [...roles, value] : roles.filter((r) => r !== value))}
              />
              {text}
            </label>
          ))}
        </fieldset>
        <fieldset>
          <legend>Stages</legend>
          {STAGES.map(([value, text]) => (
            <label>
              <input
                type="checkbox"
                checked={stages.includes(value)}
                onChange={(e) =>
                  setStages((e.target as HTMLInputElement).checked ? [...stages, value] : stages.filter((s) => s !== value))
                }
              />
              {text}
            </label>
          ))}
        </fieldset>
        <label>
          Minimum score: {minScore}%
          <input type="range" min={0} max={100} step={5} value={minScore} onInput={(e) => setMinScore(Number((e.target as HTMLInputElement).value))} />
        </label>
        <label>
          <input type="checkbox" checked={remoteOnly} onChange={(e) => setRemoteOnly((e.target as HTMLInputElement).checked)} />
          Remote only
        </label>
        <button type="submit">Apply filters</button>
      </form>
      </details>
      <Notice error={error} ok={notice} />
      {cards === null ? (
        <p role="status">Loading matches…</p>
      ) : cards.length === 0 && !error ? (
        <p>No candidates right now. Complete your profile or widen the filters.</p>
      ) : (
        <ul class="cards grid" aria-label="Candidates">
          {cards.map((card) => (
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
                <p class="score" aria-label={`Match score ${Math.round(card.score * 100)} percent`}>
                  {Math.round(card.score * 100)}%
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
              <details>
                <summary>Score breakdown</summary>
                <ul>
                  {card.factors.map((f) => (
                    <li>
                      {FACTORS[f.factor] ?? "Other"}: {Math.round(f.score * 100)}% (weight {Math.round(f.weight * 100)}%) — {f.detail}
                    </li>
                  ))}
                </ul>
              </details>
              <div class="actions">
                <button type="button" class="primary" onClick={() => void act(card, true)}>
                  Like {card.displayName}
                </button>
                <button type="button" onClick={() => void act(card, false)}>
                  Pass
                </button>
              </div>
            </li>
          ))}
        </ul>
      )}
    </main>
  );
}

export function MyMatches() {
  const conversations = useStore((s) => s.conversations);
  useEffect(() => {
    void loadConversations();
  }, []);
  return (
    <main id="main">
      <Heading>My matches</Heading>
      {conversations.length === 0 ? (
        <p>No matches yet. Like people in Discover: when they like you back, they appear here.</p>
      ) : (
        <ul class="cards grid">
          {conversations.map((c) => {
            const person = other(c);
            return (
              <li class="card">
                <header>
                  <Avatar name={person?.displayName ?? ""} url={person?.avatarUrl} />
                  <h2>{person?.displayName}</h2>
                </header>
                <a href={`/app/messages/${c.conversationId}`}>Message {person?.displayName}</a>
              </li>
            );
          })}
        </ul>
      )}
    </main>
  );
}
