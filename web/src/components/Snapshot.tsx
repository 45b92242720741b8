import { useQuery } from "@tanstack/react-query";
import { Avatar } from "antd";
import { useEffect, useMemo } from "react";

import { api } from "../api/client";
import { unwrap } from "../api/result";
import { t } from "../i18n";

type Source = { visit: string } | { sighting: string } | { staff: string; image: string };

function load(tenant: string, source: Source) {
  if ("visit" in source)
    return api.GET("/v1/tenants/{tenant_id}/visits/{visit_id}/snapshot", { params: { path: { tenant_id: tenant, visit_id: source.visit } }, parseAs: "blob" });
  if ("sighting" in source)
    return api.GET("/v1/persons/{tenant_id}/sightings/{sighting_id}/snapshot", { params: { path: { tenant_id: tenant, sighting_id: source.sighting } }, parseAs: "blob" });
  return api.GET("/v1/staff/{tenant_id}/{staff_id}/images/{image_id}/content", {
    params: { path: { tenant_id: tenant, staff_id: source.staff, image_id: source.image } },
    parseAs: "blob",
  });
}

/** A retained snapshot or a staff photo, fetched with the session's token (an <img src> could not
 * carry it) and shown from a blob: URL, which the console's Content-Security-Policy allows. */
export function Snapshot({ tenant, source, size = 64 }: { tenant: string; source: Source; size?: number }) {
  const key = JSON.stringify(source);
  const image = useQuery({
    queryKey: ["image", tenant, key],
    staleTime: 300_000,
    queryFn: async () => (await unwrap(load(tenant, source) as Promise<{ data?: unknown; error?: unknown; response: Response }>)) as Blob,
  });
  const url = useMemo(() => (image.data ? URL.createObjectURL(image.data) : null), [image.data]);
  useEffect(() => () => (url ? URL.revokeObjectURL(url) : undefined), [url]);
  const alt = "staff" in source ? t("staff.photo") : t("monitor.snapshot");
  return url ? <Avatar shape="square" size={size} src={url} alt={alt} /> : <Avatar shape="square" size={size}>—</Avatar>;
}
