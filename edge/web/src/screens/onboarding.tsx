// The 4-step profile: basic info, skills (autosuggest from the taxonomy, proficiency),
// startup preferences (each must-have or nice-to-have), about you (summary draft by the LLM or
// the template). Each step saves on "Save and continue"; completeness comes from the profile.
import { useEffect, useRef, useState } from "preact/hooks";
import { enrichment, errorText, profiles, skills as skillsApi } from "../api";
import { TextPurpose, TextSource, type SkillSuggestion } from "../gen/openhr/enrichment/v1/enrichment_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  Importance,
  Role,
  type Profile,
  type ProfileSchema,
} from "../gen/openhr/profile/v1/profile_pb";

type ProfileFields = Omit<MessageInitShape<typeof ProfileSchema>, "$typeName">;
import { COMMITMENTS, COMPENSATION, IMPORTANCE, PROFICIENCY, ROLES, STAGES, WORK_MODES, label } from "../labels";
import { navigate } from "../router";
import { getState, setState, useStore } from "../store";
import { Field, Heading, Notice, Select, TextArea, useId } from "../ui";

const STEPS = ["Basic info", "Skills", "Startup preferences", "About you"];

export function Onboarding({ step }: { step: number }) {
  const profile = useStore((s) => s.profile);
  const current = Math.min(Math.max(step, 1), STEPS.length);
  const go = (next: number) => navigate(next > STEPS.length ? "/app/discover" : `/app/onboarding/${next}`);
  return (
    <main id="main">
      <Heading>Your profile</Heading>
      <nav aria-label="Profile steps" class="steps">
        <ol>
          {STEPS.map((name, index) => (
            <li aria-current={index + 1 === current ? "step" : undefined}>
              {profile || index === 0 ? <a href={`/app/onboarding/${index + 1}`}>{name}</a> : <span>{name}</span>}
            </li>
          ))}
        </ol>
      </nav>
      <div class="progress-row">
        <label>
          Step {current} of {STEPS.length}
          <progress max={STEPS.length} value={current} />
        </label>
        <label>
          Profile {profile?.completeness ?? 0}% complete
          <progress max={100} value={profile?.completeness ?? 0} />
        </label>
      </div>
      <h2>{STEPS[current - 1]}</h2>
      {current === 1 && <BasicInfo profile={profile} onDone={() => go(2)} />}
      {current === 2 && profile && <SkillsStep profile={profile} onDone={() => go(3)} />}
      {current === 3 && profile && <PreferencesStep profile={profile} onDone={() => go(4)} />}
      {current === 4 && profile && <AboutStep profile={profile} onDone={() => go(5)} />}
    </main>
  );
}

/** Creates the profile, or updates the fields in `paths`; keeps the answer in the store. */
export async function saveProfile(fields: ProfileFields, paths: string[]): Promise<Profile> {
  const existing = getState().profile;
  const response = existing
    ? await profiles.updateProfile({
        profile: { ...fields, profileId: existing.profileId },
        updateMask: { paths },
      })
    : await profiles.createProfile({ profile: fields, requestId: crypto.randomUUID() });
  setState({ profile: response.profile ?? null });
  return response.profile!;
}

function useSave(onDone: () => void) {
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  async function run(action: () => Promise<unknown>) {
    setBusy(true);
    setError("");
    try {
      await action();
      onDone();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  }
  return { error, busy, run };
}

/** The browser's IANA zones, with `current` first when the list lacks it (Chromium's has no
 * "UTC", a browser's own zone when none is set): the select must show what will be saved. */
function timezones(current: string): string[] {
  const supported = (Intl as unknown as { supportedValuesOf?: (key: string) => string[] }).supportedValuesOf;
  const zones = supported ? supported("timeZone") : [];
  return zones.includes(current) ? zones : [current, ...zones];
}

function BasicInfo({ profile, onDone }: { profile: Profile | null; onDone: () => void }) {
  const [name, setName] = useState(profile?.displayName ?? "");
  const [role, setRole] = useState<Role>(profile?.role || Role.FOUNDER);
  const [headline, setHeadline] = useState(profile?.headline ?? "");
  const [city, setCity] = useState(profile?.location?.city ?? "");
  const [country, setCountry] = useState(profile?.location?.countryCode ?? "");
  const [timezone, setTimezone] = useState(profile?.timezone || Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC");
  const [years, setYears] = useState(String(profile?.yearsExperience ?? 0));
  const [github, setGithub] = useState(profile?.links?.githubUsername ?? "");
  const { error, busy, run } = useSave(onDone);
  const zones = timezones(timezone);

  return (
    <form
      aria-busy={busy}
      onSubmit={(e) => {
        e.preventDefault();
        void run(() =>
          saveProfile(
            {
              displayName: name,
              role,
              headline,
              location: { city, countryCode: country.toUpperCase() },
              timezone,
              yearsExperience: Number(years) || 0,
              links: { websiteUrl: profile?.links?.websiteUrl, linkedinUrl: profile?.links?.linkedinUrl, githubUsername: github },
            },
            ["display_name", "role", "headline", "location", "timezone", "years_experience", "links"],
          ),
        );
      }}
    >
      <Field label="Name" value={name} onInput={setName} required maxLength={80} autoComplete="name" />
      <Select label="Role" value={role} options={ROLES} onChange={setRole} />
      <Field label="Headline" value={headline} onInput={setHeadline} maxLength={140} hint="One line, e.g. “Compilers, now fintech”." />
      <div class="row">
        <Field label="City" value={city} onInput={setCity} maxLength={100} autoComplete="address-level2" />
        <Field label="Country code" value={country} onInput={setCountry} maxLength={2} hint="Two letters, e.g. DE." />
      </div>
      <Select label="Timezone" value={timezone} options={zones.map((z) => [z, z] as [string, string])} onChange={setTimezone} />
      <Field label="Years of experience" type="number" value={years} onInput={setYears} />
      <Field label="GitHub username (optional)" value={github} onInput={setGithub} maxLength={39} />
      <Notice error={error} />
      <button type="submit" class="primary" disabled={busy}>
        Save and continue
      </button>
    </form>
  );
}

function SkillsStep({ profile, onDone }: { profile: Profile; onDone: () => void }) {
  const [query, setQuery] = useState("");
  const [suggestions, setSuggestions] = useState<SkillSuggestion[]>([]);
  const [active, setActive] = useState(-1);
  const [proficiency, setProficiency] = useState(3);
  const [error, setError] = useState("");
  const inputId = useId("skill");
  const listId = useId("skill-list");
  const latest = useRef(0);
  const input = useRef<HTMLInputElement>(null);

  useEffect(() => {
    const text = query.trim();
    const ticket = ++latest.current; // an answer to an older query is dropped
    if (!text) {
      setSuggestions([]);
      return;
    }
    const timer = window.setTimeout(() => {
      skillsApi.searchSkills({ query: text, limit: 8 }).then(
        (response) => {
          if (ticket === latest.current) {
            setSuggestions(response.skills);
            setActive(-1);
          }
        },
        () => setSuggestions([]),
      );
    }, 150);
    return () => window.clearTimeout(timer);
  }, [query]);

  async function add(name: string) {
    setError("");
    try {
      await profiles.addSkill({ profileId: profile.profileId, name, proficiency });
      const fresh = await profiles.getMyProfile({});
      setState({ profile: fresh.profile ?? null });
      setQuery("");
      setSuggestions([]);
      setActive(-1);
    } catch (e) {
      setError(errorText(e));
    }
  }

  async function remove(skillId: string) {
    try {
      await profiles.removeSkill({ profileId: profile.profileId, skillId });
      const fresh = await profiles.getMyProfile({});
      setState({ profile: fresh.profile ?? null });
    } catch (e) {
      setError(errorText(e));
    }
  }

  function onKey(event: KeyboardEvent) {
    if (event.key === "ArrowDown" && suggestions.length) {
      event.preventDefault();
      setActive((active + 1) % suggestions.length);
    } else if (event.key === "ArrowUp" && suggestions.length) {
      event.preventDefault();
      setActive((active - 1 + suggestions.length) % suggestions.length);
    } else if (event.key === "Escape") {
      setSuggestions([]);
    }
  }

  const open = suggestions.length > 0;
  return (
    <div>
      <form
        class="skill-add"
        onSubmit={(e) => {
          e.preventDefault();
          // What is in the box now (a quick Enter can come before the next render).
          const chosen = suggestions[active]?.name ?? (input.current?.value ?? query).trim();
          if (chosen) void add(chosen);
        }}
      >
        <div class="field combo">
          <label for={inputId}>Skill</label>
          <input
            id={inputId}
            ref={input}
            role="combobox"
            aria-expanded={open}
            aria-controls={listId}
            aria-autocomplete="list"
            aria-activedescendant={active >= 0 ? `${listId}-${active}` : undefined}
            autoComplete="off"
            maxLength={60}
            value={query}
            onInput={(e) => {
              setQuery((e.target as HTMLInputElement).value);
              setActive(-1);
            }}
            onKeyDown={onKey}
          />
          <ul id={listId} role="listbox" aria-label="Suggested skills" hidden={!open}>
            {suggestions.map((s, index) => (
              <li
                id={`${listId}-${index}`}
                role="option"
                aria-selected={index === active}
                onMouseDown={(e) => {
                  e.preventDefault();
                  void add(s.name);
                }}
              >
                {s.name}
              </li>
            ))}
          </ul>
        </div>
        <Select label="Proficiency" value={proficiency} options={PROFICIENCY} onChange={setProficiency} />
        <button type="submit">Add skill</button>
      </form>
      <Notice error={error} />
      <h3>Your skills ({profile.skills.length})</h3>
      {profile.skills.length === 0 ? (
        <p>No skills yet. Type one above, or import them from GitHub or your résumé later.</p>
      ) : (
        <ul class="chips">
          {profile.skills.map((skill) => (
            <li>
              {skill.name} <span class="muted">{label(PROFICIENCY, skill.proficiency)}</span>
              <button type="button" class="link" aria-label={`Remove ${skill.name}`} onClick={() => void remove(skill.skillId)}>
                Remove
              </button>
            </li>
          ))}
        </ul>
      )}
      <button type="button" class="primary" onClick={onDone}>
        Continue
      </button>
    </div>
  );
}

function ImportanceChoice(props: { legend: string; value: Importance; onChange: (v: Importance) => void }) {
  const name = useId("importance");
  return (
    <fieldset class="importance">
      <legend>{props.legend}</legend>
      {IMPORTANCE.map(([value, text]) => (
        <label>
          <input type="radio" name={name} checked={props.value === value} onChange={() => props.onChange(value)} />
          {text}
        </label>
      ))}
    </fieldset>
  );
}

/** A group of checkboxes choosing some of `options`. */
export function Checks<T>(props: { legend: string; options: [T, string][]; values: T[]; onChange: (v: T[]) => void }) {
  return (
    <fieldset class="checks">
      <legend>{props.legend}</legend>
      {props.options.map(([value, text]) => (
        <label>
          <input
            type="checkbox"
            checked={props.values.includes(value)}
            onChange={(e) =>
              props.onChange(
                (e.target as HTMLInputElement).checked
                  ? [...props.values, value]
                  : props.values.filter((v) => v !== value),
              )
            }
          />
          {text}
        </label>
      ))}
    </fieldset>
  );
}

function PreferencesStep({ profile, onDone }: { profile: Profile; onDone: () => void }) {
  const p = profile.preferences;
  const nice = Importance.NICE_TO_HAVE;
  const [stages, setStages] = useState(p?.stage?.stages ?? []);
  const [stageImp, setStageImp] = useState<Importance>(p?.stage?.importance || nice);
  const [roles, setRoles] = useState(p?.rolesSought?.roles ?? []);
  const [roleImp, setRoleImp] = useState<Importance>(p?.rolesSought?.importance || nice);
  const [commitment, setCommitment] = useState(p?.commitment?.commitment ?? 0);
  const [commitImp, setCommitImp] = useState<Importance>(p?.commitment?.importance || nice);
  const [mix, setMix] = useState(p?.compensation?.mix ?? 0);
  const [mixImp, setMixImp] = useState<Importance>(p?.compensation?.importance || nice);
  const [modes, setModes] = useState(p?.workMode?.modes ?? []);
  const [modeImp, setModeImp] = useState<Importance>(p?.workMode?.importance || nice);
  const { error, busy, run } = useSave(onDone);

  return (
    <form
      aria-busy={busy}
      onSubmit={(e) => {
        e.preventDefault();
        const preferences = {
          stage: { stages, importance: stageImp },
          rolesSought: { roles, importance: roleImp },
          commitment: { commitment, importance: commitImp },
          compensation: { mix, importance: mixImp },
          workMode: { modes, importance: modeImp },
        };
        void run(() => saveProfile({ preferences }, ["preferences"]));
      }}
    >
      <div class="pref">
        <Checks legend="Stages you want to join" options={STAGES} values={stages} onChange={setStages} />
        <ImportanceChoice legend="How much the stage matters" value={stageImp} onChange={setStageImp} />
      </div>
      <div class="pref">
        <Checks legend="Roles you are looking for" options={ROLES} values={roles} onChange={setRoles} />
        <ImportanceChoice legend="How much the role matters" value={roleImp} onChange={setRoleImp} />
      </div>
      <div class="pref">
        <Select label="Commitment" value={commitment} options={COMMITMENTS} onChange={setCommitment} />
        <ImportanceChoice legend="How much commitment matters" value={commitImp} onChange={setCommitImp} />
      </div>
      <div class="pref">
        <Select label="Compensation" value={mix} options={COMPENSATION} onChange={setMix} />
        <ImportanceChoice legend="How much compensation matters" value={mixImp} onChange={setMixImp} />
      </div>
      <div class="pref">
        <Checks legend="Ways of working" options={WORK_MODES} values={modes} onChange={setModes} />
        <ImportanceChoice legend="How much the way of working matters" value={modeImp} onChange={setModeImp} />
      </div>
      <Notice error={error} />
      <button type="submit" class="primary" disabled={busy}>
        Save and continue
      </button>
    </form>
  );
}

function AboutStep({ profile, onDone }: { profile: Profile; onDone: () => void }) {
  const [summary, setSummary] = useState(profile.summary);
  const [lookingFor, setLookingFor] = useState(profile.lookingFor);
  const [draftNote, setDraftNote] = useState("");
  const [drafting, setDrafting] = useState(false);
  const { error, busy, run } = useSave(onDone);

  async function draft() {
    setDrafting(true);
    setDraftNote("");
    try {
      const response = await enrichment.draftText({ purpose: TextPurpose.PROFILE_SUMMARY });
      setSummary(response.text);
      setDraftNote(
        response.source === TextSource.LLM
          ? "Drafted by the language model from your profile: edit it to sound like you."
          : "Drafted from your profile by a template: edit it to sound like you.",
      );
    } catch (e) {
      setDraftNote(errorText(e));
    } finally {
      setDrafting(false);
    }
  }

  return (
    <form
      aria-busy={busy}
      onSubmit={(e) => {
        e.preventDefault();
        void run(() => saveProfile({ summary, lookingFor }, ["summary", "looking_for"]));
      }}
    >
      <TextArea label="Summary" value={summary} onInput={setSummary} maxLength={4000} rows={6} />
      <p>
        <button type="button" onClick={() => void draft()} disabled={drafting}>
          {drafting ? "Drafting…" : "Draft my summary"}
        </button>
      </p>
      {draftNote && (
        <p class="hint" role="status">
          {draftNote}
        </p>
      )}
      <TextArea label="What you are looking for" value={lookingFor} onInput={setLookingFor} maxLength={1000} />
      <Notice error={error} />
      <button type="submit" class="primary" disabled={busy}>
        Finish
      </button>
    </form>
  );
}
