// Turning openapi-fetch's `{ data, error, response }` into a value or an ApiError that knows its
// status: the screens tell "you may not" (403) from "not there" (404) from a refused field (422).
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly fields: Record<string, string> = {},
  ) {
    super(message);
  }
}

interface Problem {
  detail?: string;
  title?: string;
  errors?: { field?: string; message?: string }[];
}

export function toApiError(status: number, error: unknown): ApiError {
  const problem = (error ?? {}) as Problem;
  const fields: Record<string, string> = {};
  for (const e of problem.errors ?? []) if (e.field) fields[e.field] = e.message ?? "invalid";
  const detail = problem.detail ?? problem.title ?? `request failed (${status})`;
  // a field whose message is the detail itself is named once, in brackets
  const same = Object.keys(fields).filter((field) => fields[field] === detail);
  const named = Object.entries(fields)
    .filter(([, message]) => message !== detail)
    .map(([field, message]) => `${field}: ${message}`);
  const head = same.length ? `${detail} (${same.join(", ")})` : detail;
  return new ApiError(status, named.length ? `${head} — ${named.join("; ")}` : head, fields);
}

export async function unwrap<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok) throw toApiError(response.status, error);
  return data as T;
}
