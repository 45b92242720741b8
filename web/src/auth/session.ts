// The signed-in session: an access token (minutes) and a rotating refresh token. Kept in
// sessionStorage (one browser tab's life), never in cookies the API would trust implicitly.

export interface Session {
  accessToken: string;
  refreshToken: string;
  expiresAt: number; // epoch ms
  role: string;
  tenantId: string | null;
}

const KEY = "visitlens.session";
type Listener = (session: Session | null) => void;
const listeners = new Set<Listener>();

export function currentSession(storage: Storage = sessionStorage): Session | null {
  const raw = storage.getItem(KEY);
  if (!raw) return null;
  try {
    return JSON.parse(raw) as Session;
  } catch {
    storage.removeItem(KEY);
    return null;
  }
}

export function saveSession(session: Session | null, storage: Storage = sessionStorage): void {
  if (session) storage.setItem(KEY, JSON.stringify(session));
  else storage.removeItem(KEY);
  listeners.forEach((listener) => listener(session));
}

export function onSessionChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export interface TokenGrant {
  access_token: string;
  refresh_token?: string | null;
  expires_in: number;
  role: string;
  tenant_id?: string | null;
}

export function fromGrant(grant: TokenGrant, now = Date.now()): Session {
  if (!grant.refresh_token) throw new Error("the token grant carries no refresh token");
  return {
    accessToken: grant.access_token,
    refreshToken: grant.refresh_token,
    expiresAt: now + grant.expires_in * 1000,
    role: grant.role,
    tenantId: grant.tenant_id ?? null,
  };
}
