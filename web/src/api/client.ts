// The typed client of the platform's HTTP functions, generated from docs/openapi.json
// (`npm run gen:api`; `npm run check:api` fails when the document changed and this was not
// regenerated). Every request carries the access token; a 401 refreshes it once (the refresh
// token rotates) and retries; a refresh that fails ends the session, and the app sends the user
// to sign-in with the page they were on.
import createClient, { type Middleware } from "openapi-fetch";

import { currentSession, fromGrant, saveSession, type Session, type TokenGrant } from "../auth/session";
import type { paths } from "./schema";

export class SessionEnded extends Error {}

let refreshing: Promise<Session | null> | null = null;

/** One refresh at a time: concurrent 401s wait for the same rotation (a refresh token is used
 * once; a second use would be taken for theft and revoke the whole family). */
export function refreshSession(fetcher: typeof fetch = fetch): Promise<Session | null> {
  if (!refreshing) {
    refreshing = (async () => {
      const session = currentSession();
      if (!session) return null;
      const response = await fetcher(`${window.location.origin}/v1/auth/token`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ grant_type: "refresh_token", refresh_token: session.refreshToken }),
      });
      if (!response.ok) {
        saveSession(null);
        return null;
      }
      const next = fromGrant((await response.json()) as TokenGrant);
      saveSession(next);
      return next;
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
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
