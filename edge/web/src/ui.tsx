// Small accessible building blocks shared by the screens.
import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";

let counter = 0;
/** A stable id for label/description wiring. */
export function useId(prefix: string): string {
  const ref = useRef("");
  if (!ref.current) ref.current = `${prefix}-${++counter}`;
  return ref.current;
}

/** Moves focus to the screen's heading when it appears, so screen readers announce it. */
export function Heading({ children }: { children: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => ref.current?.focus(), []);
  return (
    <h1 tabIndex={-1} ref={ref}>
      {children}
    </h1>
  );
}

export function Field(props: {
  label: string;
  type?: "text" | "email" | "password" | "number" | "search";
  value: string;
  onInput: (value: string) => void;
  required?: boolean;
  autoComplete?: string;
  hint?: string;
  maxLength?: number;
  minLength?: number;
  name?: string;
}) {
  const id = useId("field");
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <input
        id={id}
        name={props.name}
        type={(props.type ?? "text") as "text"}
        value={props.value}
        required={props.required}
        autoComplete={props.autoComplete}
        maxLength={props.maxLength}
        minLength={props.minLength}
        aria-describedby={props.hint ? `${id}-hint` : undefined}
        onInput={(e) => props.onInput((e.target as HTMLInputElement).value)}
      />
      {props.hint && (
        <p class="hint" id={`${id}-hint`}>
          {props.hint}
        </p>
      )}
    </div>
  );
}

/** A password input with identity's limits (services/identity/passwords.py: 8-128 characters). */
export function PasswordField(props: { label: string; value: string; onInput: (v: string) => void; isNew: boolean; hint?: string }) {
  return (
    <Field
      label={props.label}
      type="password"
      value={props.value}
      onInput={props.onInput}
      required
      minLength={8}
      maxLength={128}
      autoComplete={props.isNew ? "new-password" : "current-password"}
      hint={props.hint}
    />
  );
}

export function TextArea(props: { label: string; value: string; onInput: (v: string) => void; maxLength?: number; rows?: number }) {
  const id = useId("area");
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <textarea
        id={id}
        value={props.value}
        maxLength={props.maxLength}
        rows={props.rows ?? 4}
        onInput={(e) => props.onInput((e.target as HTMLTextAreaElement).value)}
      />
    </div>
  );
}

export function Select<T extends string | number>(props: {
  label: string;
  value: T;
  options: [T, string][];
  onChange: (value: T) => void;
}) {
  const id = useId("select");
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <select
        id={id}
        value={String(props.value)}
        onChange={(e) => {
          const raw = (e.target as HTMLSelectElement).value;
          const match = props.options.find(([v]) => String(v) === raw);
          if (match) props.onChange(match[0]);
        }}
      >
        {props.options.map(([value, label]) => (
          <option value={String(value)}>{label}</option>
        ))}
      </select>
    </div>
  );
}

/** An error or a confirmation, announced by screen readers. */
export function Notice({ error, ok }: { error?: string; ok?: string }) {
  if (error)
    return (
      <p class="notice error" role="alert">
        {error}
      </p>
    );
  if (ok)
    return (
      <p class="notice ok" role="status">
        {ok}
      </p>
    );
  return null;
}

/** A modal dialog (the native <dialog>: focus trapped, Escape closes). */
export function Dialog(props: { open: boolean; title: string; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  const id = useId("dialog");
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (props.open && !dialog.open) dialog.showModal();
    if (!props.open && dialog.open) dialog.close();
  }, [props.open]);
  return (
    <dialog ref={ref} aria-labelledby={id} onClose={props.onClose}>
      <h2 id={id}>{props.title}</h2>
      {props.children}
    </dialog>
  );
}

export function Avatar({ name, url }: { name: string; url?: string }) {
  if (url) return <img class="avatar" src={url} alt="" width={48} height={48} />;
  const initials = name
    .split(/\s+/)
    .map((part) => part[0] ?? "")
    .join("")
    .slice(0, 2)
    .toUpperCase();
  return (
    <span class="avatar" aria-hidden="true">
      {initials || "?"}
    </span>
  );
}

/** An unread count: the number shown, "N unread" read out. */
export function Badge({ count }: { count: number }) {
  if (count <= 0) return null;
  return (
    <span class="badge">
      <span aria-hidden="true">{count}</span>
      <span class="visually-hidden">({count} unread)</span>
    </span>
  );
}
