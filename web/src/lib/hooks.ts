import { useQuery } from "@tanstack/react-query";
import { useMemo, useState } from "react";

import { api } from "../api/client";
import { unwrap } from "../api/result";
import type { components } from "../api/schema";
import { comparisonPeriod, presetPeriod, type Period, type Preset } from "./periods";

export type Site = components["schemas"]["SiteOut"];

export function useSites(tenant: string | null) {
  return useQuery({
    queryKey: ["sites", tenant],
    queryFn: async (): Promise<Site[]> => {
      const page = await unwrap(api.GET("/v1/tenants/{tenant_id}/sites", { params: { path: { tenant_id: tenant ?? "" }, query: { limit: 200 } } }));
      return page.items;
    },
    enabled: Boolean(tenant),
  });
}

export function usePeriod(initial: Preset = "last7") {
  const [preset, setPreset] = useState<Preset>(initial);
  const [custom, setCustom] = useState<Period | null>(null);
  const period = useMemo(() => (preset === "custom" && custom ? custom : presetPeriod(preset === "custom" ? "last7" : preset, new Date())), [preset, custom]);
  const previous = useMemo(() => comparisonPeriod(period, preset), [period, preset]);
  return { preset, setPreset, setCustom, period, previous };
}

export function siteName(sites: Site[] | undefined, id: string): string {
  return sites?.find((s) => s.id === id)?.name ?? id.slice(0, 8);
}

/** Local date and time, to the minute (the console's one way of showing a moment). */
export function when(value: string | null | undefined): string {
  if (!value) return "—";
  return new Date(value).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function duration(seconds: number | null | undefined): string {
  if (seconds == null) return "—";
  return seconds < 90 ? `${Math.round(seconds)} s` : `${Math.round(seconds / 60)} min`;
}
