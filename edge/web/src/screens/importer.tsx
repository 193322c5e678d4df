// Imports from GitHub or a résumé: a job whose progress streams live (WatchEnrichmentJob),
// then a review dialog to accept or reject each suggested skill.
import { useState } from "preact/hooks";
import { enrichment, errorText, profiles } from "../api";
import {
  JobKind,
  JobState,
  SuggestionState,
  type EnrichmentJob,
  type EnrichmentSuggestion,
} from "../gen/openhr/enrichment/v1/enrichment_pb";
import { PROFICIENCY, label } from "../labels";
import { setState, useStore } from "../store";
import { Dialog, Field, Heading, Notice, useId } from "../ui";

const MAX_PDF = 5 * 1024 * 1024;

export function Importer() {
  const profile = useStore((s) => s.profile);
  const [github, setGithub] = useState(profile?.links?.githubUsername ?? "");
  const [job, setJob] = useState<EnrichmentJob | null>(null);
  const [error, setError] = useState("");
  const [review, setReview] = useState<EnrichmentSuggestion[] | null>(null);
  const fileId = useId("resume");

  async function start(request: { kind: JobKind; githubUsername?: string; resumePdf?: Uint8Array }) {
    setError("");
    setJob(null);
    try {
      const created = await enrichment.createEnrichmentJob({ ...request, requestId: crypto.randomUUID() });
      let current = created.job!;
      setJob(current);
      for await (const update of enrichment.watchEnrichmentJob({ jobId: current.jobId })) {
        if (!update.job) continue; // heartbeat
        current = update.job;
        setJob(current);
        if (current.state === JobState.SUCCEEDED || current.state === JobState.FAILED) break;
      }
      if (current.state === JobState.SUCCEEDED) await openReview();
    } catch (e) {
      setError(errorText(e));
    }
  }

  async function openReview() {
    const response = await enrichment.listEnrichmentSuggestions({ state: SuggestionState.PENDING });
    setReview(response.suggestions);
  }

  async function onFile(event: Event) {
    const file = (event.target as HTMLInputElement).files?.[0];
    if (!file) return;
    if (file.size > MAX_PDF) {
      setError("The résumé is larger than 5 MiB.");
      return;
    }
    await start({ kind: JobKind.RESUME, resumePdf: new Uint8Array(await file.arrayBuffer()) });
  }

  const running = job && (job.state === JobState.QUEUED || job.state === JobState.RUNNING);
  return (
    <main id="main">
      <Heading>Import skills</Heading>
      <p>OpenHR reads your public GitHub repositories or your résumé and suggests skills. You choose which to add.</p>
      <div class="cards two">
        <form
          class="card"
          onSubmit={(e) => {
            e.preventDefault();
            void start({ kind: JobKind.GITHUB, githubUsername: github });
          }}
        >
          <h2>From GitHub</h2>
          <Field label="GitHub username" value={github} onInput={setGithub} maxLength={39} />
          <button type="submit" disabled={!!running}>
            Import from GitHub
          </button>
        </form>
        <div class="card">
          <h2>From your résumé</h2>
          <label for={fileId}>Résumé (PDF, at most 5 MiB)</label>
          <input id={fileId} type="file" accept="application/pdf,.pdf" disabled={!!running} onChange={(e) => void onFile(e)} />
        </div>
      </div>
      <Notice error={error} />
      {job && <JobProgress job={job} />}
      {job?.state === JobState.SUCCEEDED && review === null && (
        <button type="button" onClick={() => void openReview()}>
          Review suggestions
        </button>
      )}
      <Review
        suggestions={review}
        onClose={() => setReview(null)}
        onApplied={async () => {
          const fresh = await profiles.getMyProfile({});
          setState({ profile: fresh.profile ?? null });
        }}
      />
    </main>
  );
}

function JobProgress({ job }: { job: EnrichmentJob }) {
  const kind = job.kind === JobKind.GITHUB ? "GitHub import" : "Résumé import";
  const state =
    job.state === JobState.SUCCEEDED
      ? "done"
      : job.state === JobState.FAILED
        ? "failed"
        : job.state === JobState.QUEUED
          ? "queued"
          : "running";
  return (
    <section class="card job" aria-label={kind}>
      <h2>{kind}</h2>
      <label>
        <span role="status">
          {state === "failed" ? `Failed: ${job.errorMessage}` : `${job.stage || state} (${job.progressPercent}%)`}
        </span>
        <progress max={100} value={job.progressPercent} />
      </label>
      {job.skills.length > 0 && (
        <p>
          Found: {job.skills.map((s) => s.name).join(", ")}
        </p>
      )}
    </section>
  );
}

function Review(props: { suggestions: EnrichmentSuggestion[] | null; onClose: () => void; onApplied: () => Promise<void> }) {
  const [decisions, setDecisions] = useState<Record<string, "accept" | "reject">>({});
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const list = props.suggestions ?? [];

  async function save() {
    setBusy(true);
    setError("");
    const accept = list.filter((s) => (decisions[s.suggestionId] ?? "accept") === "accept").map((s) => s.suggestionId);
    const reject = list.filter((s) => decisions[s.suggestionId] === "reject").map((s) => s.suggestionId);
    try {
      if (reject.length) await enrichment.rejectEnrichmentSuggestions({ suggestionIds: reject });
      if (accept.length) {
        const response = await enrichment.acceptEnrichmentSuggestions({ suggestionIds: accept });
        if (response.job) {
          for await (const update of enrichment.watchEnrichmentJob({ jobId: response.job.jobId })) {
            if (update.job && (update.job.state === JobState.SUCCEEDED || update.job.state === JobState.FAILED)) break;
          }
        }
      }
      await props.onApplied();
      setDecisions({});
      props.onClose();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog open={props.suggestions !== null} title="Review suggested skills" onClose={props.onClose}>
      {list.length === 0 ? (
        <p>Nothing new to review.</p>
      ) : (
        <ul class="review">
          {list.map((s) => {
            const choice = decisions[s.suggestionId] ?? "accept";
            const group = `decision-${s.suggestionId}`;
            return (
              <li>
                <fieldset>
                  <legend>
                    {s.name} <span class="muted">{label(PROFICIENCY, s.proficiency)}, {Math.round(s.confidence * 100)}% sure</span>
                  </legend>
                  <p class="hint">{s.evidence}</p>
                  <label>
                    <input
                      type="radio"
                      name={group}
                      checked={choice === "accept"}
                      onChange={() => setDecisions({ ...decisions, [s.suggestionId]: "accept" })}
                    />
                    Add
                  </label>
                  <label>
                    <input
                      type="radio"
                      name={group}
                      checked={choice === "reject"}
                      onChange={() => setDecisions({ ...decisions, [s.suggestionId]: "reject" })}
                    />
                    Skip
                  </label>
                </fieldset>
              </li>
            );
          })}
        </ul>
      )}
      <Notice error={error} />
      <div class="actions">
        {list.length > 0 && (
          <button type="button" class="primary" disabled={busy} onClick={() => void save()}>
            {busy ? "Saving…" : "Save choices"}
          </button>
        )}
        <button type="button" onClick={props.onClose}>
          Close
        </button>
      </div>
    </Dialog>
  );
}
