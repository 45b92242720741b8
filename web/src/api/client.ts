// The typed client of the platform's HTTP functions, generated from docs/openapi.json
// (`npm run gen:api`; `npm run check:api` fails when the document changed and this was not
// regenerated). Every request carries the access token; a 401 refreshes it once (the refresh
// token rotates) and retries; a refresh that fails ends the session, and the app sends the user
// to sign-in with the page they were on.
import createClient, { type Middleware } from "openapi-fetch";

import { currentSession, fromGrant, mayRestore, saveSession, type Session, type TokenGrant } from "../auth/session";
import type { paths } from "./schema";

export class SessionEnded extends Error {}

let refreshing: Promise<Session | null> | null = null;

/** One refresh at a time, across this browser's tabs too (the Web Locks API): a refresh token is
 * used once, and a second use would be taken for theft and revoke the whole session. The token
 * is the HttpOnly cookie the browser sends with this request; script never sees it. */
export function refreshSession(fetcher: typeof fetch = fetch): Promise<Session | null> {
  if (!refreshing) {
    const refresh = async (): Promise<Session | null> => {
      const response = await fetcher(`${window.location.origin}/v1/auth/token`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ grant_type: "refresh_token", refresh_cookie: true }),
      });
      if (!response.ok) {
        saveSession(null);
        return null;
      }
      const next = fromGrant((await response.json()) as TokenGrant);
      saveSession(next);
      return next;
    };
    const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
    // the lock's promise resolves to what the callback's does
    const run: Promise<Session | null> = locks ? locks.request("visitlens-refresh", refresh).then((s) => s) : refresh();
    refreshing = run.finally(() => {
      refreshing = null;
    });
    return refreshing;
  }
  return refreshing;
}

/** At start: a session restored from the refresh cookie, if the browser says it holds one. */
export async function restoreSession(fetcher: typeof fetch = fetch): Promise<Session | null> {
  return currentSession() ?? (mayRestore() ? refreshSession(fetcher) : null);
}

/** Sign-out: the server ends the cookie's session and clears it; this page forgets its token. */
export async function signOut(fetcher: typeof fetch = fetch): Promise<void> {
  try {
    await fetcher(`${window.location.origin}/v1/auth/token`, { method: "DELETE", credentials: "same-origin" });
  } finally {
    saveSession(null);
  }
}

export function authMiddleware(fetcher: typeof fetch = fetch): Middleware {
  // a copy of each request as sent, so a 401 can be retried with its body after a refresh
  const copies = new WeakMap<Request, Request>();
  return {
    async onRequest({ request }) {
      const session = currentSession();
      if (session) request.headers.set("authorization", `Bearer ${session.accessToken}`);
      copies.set(request, request.clone());
      return request;
    },
    async onResponse({ request, response }) {
      if (response.status !== 401 || request.url.endsWith("/v1/auth/token")) return response;
      const renewed = await refreshSession(fetcher);
      if (!renewed) throw new SessionEnded("session expired or revoked");
      const again = copies.get(request) ?? request;
      again.headers.set("authorization", `Bearer ${renewed.accessToken}`);
      const second = await fetcher(again);
      if (second.status === 401) {
        saveSession(null);
        throw new SessionEnded("session revoked");
      }
      return second;
    },
  };
}

export function makeClient(fetcher: typeof fetch = fetch) {
  const client = createClient<paths>({ baseUrl: window.location.origin, fetch: fetcher });
  client.use(authMiddleware(fetcher));
  return client;
}

export const api = makeClient((input, init) => fetch(input, init));

/** The problem document's detail (RFC 9457) or a generic message. */
export function problemText(error: unknown): string {
  if (error && typeof error === "object" && "detail" in error) return String(error.detail);
  if (error instanceof Error) return error.message;
  return "unexpected error";
}
