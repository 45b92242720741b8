import { useQuery } from "@tanstack/react-query";
import { Avatar } from "antd";
import { useEffect, useMemo } from "react";

import { api } from "../api/client";
import { unwrap } from "../api/result";
import { t } from "../i18n";

type Source = { visit: string } | { sighting: string };

/** A retained snapshot, fetched with the session's token (an <img src> could not carry it) and
 * shown from a blob: URL, which the console's Content-Security-Policy allows. */
export function Snapshot({ tenant, source, size = 64 }: { tenant: string; source: Source; size?: number }) {
  const key = "visit" in source ? source.visit : source.sighting;
  const image = useQuery({
    queryKey: ["snapshot", tenant, key],
    staleTime: 300_000,
    queryFn: async () =>
      (await unwrap(
        "visit" in source
          ? api.GET("/v1/tenants/{tenant_id}/visits/{visit_id}/snapshot", { params: { path: { tenant_id: tenant, visit_id: source.visit } }, parseAs: "blob" })
          : api.GET("/v1/persons/{tenant_id}/sightings/{sighting_id}/snapshot", { params: { path: { tenant_id: tenant, sighting_id: source.sighting } }, parseAs: "blob" }),
      )) as unknown as Blob,
  });
  const url = useMemo(() => (image.data ? URL.createObjectURL(image.data) : null), [image.data]);
  useEffect(() => () => (url ? URL.revokeObjectURL(url) : undefined), [url]);
  return url ? <Avatar shape="square" size={size} src={url} alt={t("monitor.snapshot")} /> : <Avatar shape="square" size={size}>—</Avatar>;
}
