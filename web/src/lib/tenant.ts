// The tenant the console acts on: the signed-in user's own, or, for a system administrator, the
// one chosen in the header (kept for this tab only).
import { useEffect, useState } from "react";

import { currentSession } from "../auth/session";

const KEY = "visitlens.tenant";
const listeners = new Set<(tenant: string | null) => void>();

export function chosenTenant(): string | null {
  const session = currentSession();
  if (!session) return null;
  if (session.tenantId) return session.tenantId;
  return sessionStorage.getItem(KEY);
}

export function chooseTenant(tenant: string | null): void {
  if (tenant) sessionStorage.setItem(KEY, tenant);
  else sessionStorage.removeItem(KEY);
  listeners.forEach((listener) => listener(tenant));
}

export function useTenant(): string | null {
  const [tenant, setTenant] = useState(chosenTenant);
  useEffect(() => {
    const listener = () => setTenant(chosenTenant());
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }, []);
  return tenant;
}

export type Role = "system_admin" | "tenant_admin" | "site_manager" | "worker";

export function currentRole(): Role | null {
  return (currentSession()?.role as Role | undefined) ?? null;
}

/** Tenant administrators and system administrators see every site and every screen. */
export function isAdmin(role: Role | null = currentRole()): boolean {
  return role === "system_admin" || role === "tenant_admin";
}
