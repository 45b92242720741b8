import type { Role } from "./lib/tenant";

// Which roles see which screen; the API enforces the same (a hidden screen is a convenience, the
// 403 from the API is the rule).
const ADMINS: Role[] = ["system_admin", "tenant_admin"];
const MANAGERS: Role[] = [...ADMINS, "site_manager"];

export const SCREENS = {
  overview: MANAGERS,
  reports: MANAGERS,
  monitor: MANAGERS,
  sites: MANAGERS,
  staff: MANAGERS,
  customers: ADMINS,
  access: MANAGERS,
  audit: ADMINS,
} satisfies Record<string, Role[]>;

export type Screen = keyof typeof SCREENS;
