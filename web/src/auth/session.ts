// The signed-in session: an access token (minutes), kept in this page's memory only. The refresh
// token never reaches script: the API sets it as an HttpOnly, Secure, SameSite=Strict cookie
// scoped to /v1/auth/token, and a reload or a new tab gets a new access token with it. A second,
// readable cookie (no secret) only says that such a session exists, so a first visit asks for
// nothing.

export interface Session {
  accessToken: string;
  expiresAt: number; // epoch ms
  role: string;
  tenantId: string | null;
}

const SIGNED_IN = "visitlens_signed_in=1";
type Listener = (session: Session | null) => void;
const listeners = new Set<Listener>();
let current: Session | null = null;

export function currentSession(): Session | null {
  return current;
}

export function saveSession(session: Session | null): void {
  current = session;
  listeners.forEach((listener) => listener(session));
}

export function onSessionChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Whether the browser holds a refresh cookie worth trying (set and cleared with it). */
export function mayRestore(cookies: string = document.cookie): boolean {
  return cookies.split(";").some((c) => c.trim() === SIGNED_IN);
}

export interface TokenGrant {
  access_token: string;
  expires_in: number;
  role: string;
  tenant_id?: string | null;
}

export function fromGrant(grant: TokenGrant, now = Date.now()): Session {
  return {
    accessToken: grant.access_token,
    expiresAt: now + grant.expires_in * 1000,
    role: grant.role,
    tenantId: grant.tenant_id ?? null,
  };
}
