// One server stream kept open while signed in: after a network drop, a server restart or a
// silent stream it reconnects with the cursor of the last event that carried one, so the server
// replays what was missed. Both live streams (messaging's events, matching's feed) run on it.
import { Code, ConnectError } from "@connectrpc/connect";
import { session } from "./session";
import type { StreamStatus } from "./store";

// The services heartbeat every 15 s: a stream silent for longer than this is dead.
const SILENCE_MS = 40_000;
const MAX_BACKOFF_MS = 10_000;

export interface ResumableOptions<T> {
  /** Opens the stream from `cursor` ("" the first time). */
  open: (cursor: string, signal: AbortSignal) => AsyncIterable<T>;
  /** The event's cursor, "" when it carries none (not resumable: typing, heartbeats...). */
  cursorOf: (event: T) => string;
  handle: (event: T) => void;
  status: (status: StreamStatus) => void;
  /** The first event of a new connection arrived (`again`: not the first connection). */
  connected?: (again: boolean) => void;
  /** A refusal that only means "not yet" (retried, shown as connecting, not as a drop). */
  notYet?: (error: ConnectError) => boolean;
}

export class Resumable<T> {
  private cursor = "";
  private running = false;
  // Each start() runs its own loop; one left over from before a stop() ends at its next turn.
  private generation = 0;
  private abort: AbortController | null = null;
  private wake: (() => void) | null = null;

  constructor(private readonly options: ResumableOptions<T>) {
    window.addEventListener("offline", () => this.abort?.abort());
    window.addEventListener("online", () => this.reconnectNow());
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.cursor = "";
    void this.loop(++this.generation);
  }

  stop(): void {
    this.running = false;
    this.abort?.abort();
    this.wake?.();
    this.options.status("offline");
  }

  /** Drops the current connection and reconnects at once (the browser came back online). */
  private reconnectNow(): void {
    this.abort?.abort();
    this.wake?.();
  }

  private async loop(generation: number): Promise<void> {
    const o = this.options;
    const current = () => this.running && generation === this.generation;
    let backoff = 500;
    let first = true;
    while (current()) {
      o.status(first ? "connecting" : "reconnecting");
      const abort = (this.abort = new AbortController());
      let silence = window.setTimeout(() => abort.abort(), SILENCE_MS);
      let live = false;
      let waiting = false;
      try {
        for await (const event of o.open(this.cursor, abort.signal)) {
          window.clearTimeout(silence);
          silence = window.setTimeout(() => abort.abort(), SILENCE_MS);
          if (!live) {
            live = true;
            o.status("live");
            o.connected?.(!first);
            first = false;
            backoff = 500;
          }
          const cursor = o.cursorOf(event);
          if (cursor) this.cursor = cursor;
          o.handle(event);
        }
      } catch (error) {
        // The stream ended: network, server restart or our own abort: reconnect below. Refused
        // for the token (it expired while the tab slept): refresh it first, or stop when the
        // session is gone.
        const refused = ConnectError.from(error);
        waiting = !live && first && (o.notYet?.(refused) ?? false);
        if (refused.code === Code.Unauthenticated) {
          await session.refresh();
          if (!session.accessToken()) this.running = false;
        }
      } finally {
        window.clearTimeout(silence);
      }
      if (!current()) break;
      if (!waiting) first = false;
      o.status(first ? "connecting" : "reconnecting");
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        window.setTimeout(resolve, navigator.onLine ? backoff : MAX_BACKOFF_MS);
      });
      this.wake = null;
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  }
}
