import { fetchEventSource } from "@microsoft/fetch-event-source";
import { useQueries, useQueryClient } from "@tanstack/react-query";
import { Avatar, Badge, Card, Col, List, Row, Select, Space, Tag, Typography } from "antd";
import { useEffect, useRef, useState } from "react";

import { api, refreshSession } from "../api/client";
import { ApiError, unwrap } from "../api/result";
import type { components } from "../api/schema";
import { currentSession } from "../auth/session";
import { ErrorNotice } from "../components/ErrorNotice";
import { Snapshot } from "../components/Snapshot";
import { GOOD, INFO } from "../components/tags";
import { t } from "../i18n";
import { duration, siteName, useSites, when } from "../lib/hooks";
import { useTenant } from "../lib/tenant";

type Visit = components["schemas"]["MonitorEvent"];
const KEEP = 200;
const STALE_MS = 15 * 60_000;

class Fatal extends Error {}

/** The monitor's stream: fetch-event-source, because EventSource cannot send the bearer token; it
 * reconnects by itself and sends Last-Event-ID, so nothing between two connections is lost. */
function useVisitStream(tenant: string, site?: string) {
  const [visits, setVisits] = useState<Visit[]>([]);
  const [state, setState] = useState<"connecting" | "live" | "retrying">("connecting");
  const [error, setError] = useState<unknown>(null);
  const client = useQueryClient();
  const lastRefresh = useRef(0);
  useEffect(() => {
    if (!tenant) return;
    const stop = new AbortController();
    setVisits([]);
    setError(null);
    const query = site ? `?site_id=${encodeURIComponent(site)}` : "";
    void fetchEventSource(`/v1/tenants/${tenant}/monitor${query}`, {
      signal: stop.signal,
      openWhenHidden: true,
      headers: { authorization: `Bearer ${currentSession()?.accessToken ?? ""}` },
      fetch: (input, init) => {
        // the token of the moment (it may have been refreshed since the stream began)
        const headers = new Headers(init?.headers);
        headers.set("authorization", `Bearer ${currentSession()?.accessToken ?? ""}`);
        return fetch(input, { ...init, headers });
      },
      async onopen(response) {
        if (response.ok) {
          setState("live");
          return;
        }
        if (response.status === 401 && (await refreshSession())) throw new Error("token refreshed");
        throw new Fatal(String(response.status));
      },
      onmessage(message) {
        if (message.event === "revoked") throw new Fatal("403");
        if (message.event !== "visit") return;
        const visit = JSON.parse(message.data) as Visit;
        setVisits((list) => [visit, ...list.filter((v) => v.visit_id !== visit.visit_id)].slice(0, KEEP));
        // a visit means its camera was seen: its status refreshes (at most every 5 s)
        if (Date.now() - lastRefresh.current > 5000) {
          lastRefresh.current = Date.now();
          void client.invalidateQueries({ queryKey: ["cameras", tenant] });
        }
      },
      onerror(err) {
        if (err instanceof Fatal) {
          setError(new ApiError(Number(err.message) || 500, t("monitor.ended")));
          throw err; // stop retrying
        }
        setState("retrying");
        return 1000;
      },
    }).catch(() => undefined);
    return () => stop.abort();
  }, [tenant, site, client]);
  return { visits, state, error };
}

export default function Monitor() {
  const tenant = useTenant() ?? "";
  const [site, setSite] = useState<string | undefined>();
  const sites = useSites(tenant);
  const { visits, state, error } = useVisitStream(tenant, site);
  const shown = (sites.data ?? []).filter((s) => !site || s.id === site);
  const cameras = useQueries({
    queries: shown.map((s) => ({
      queryKey: ["cameras", tenant, s.id],
      refetchInterval: 30_000,
      queryFn: async () => (await unwrap(api.GET("/v1/tenants/{tenant_id}/sites/{site_id}/cameras", { params: { path: { tenant_id: tenant, site_id: s.id }, query: { limit: 200 } } }))).items,
    })),
  });
  const now = Date.now();
  return (
    <Space direction="vertical" size="large" className="w-full">
      <Typography.Title level={2}>{t("monitor.title")}</Typography.Title>
      <Space wrap>
        <Select aria-label={t("overview.sites")} className="min-w-48" allowClear placeholder={t("overview.allSites")} value={site} onChange={setSite} options={(sites.data ?? []).map((s) => ({ value: s.id, label: s.name }))} />
        <Badge status={state === "live" ? "success" : "processing"} text={<span data-testid="stream-state">{t(`monitor.${state}`)}</span>} />
      </Space>
      <ErrorNotice error={error ?? sites.error} />
      <Row gutter={[16, 16]}>
        <Col xs={24} lg={16}>
          <Card title={t("monitor.visits")}>
            <List
              data-testid="monitor-visits"
              locale={{ emptyText: t("monitor.waiting") }}
              dataSource={visits}
              rowKey="visit_id"
              renderItem={(visit) => (
                <List.Item data-visit={visit.visit_id}>
                  <List.Item.Meta
                    avatar={visit.has_snapshot ? <Snapshot tenant={tenant} source={{ visit: visit.visit_id }} /> : <Avatar shape="square" size={64}>—</Avatar>}
                    title={
                      <Space>
                        <Tag color={visit.is_new ? INFO : GOOD}>{visit.is_new ? t("monitor.new") : t("monitor.returning")}</Tag>
                        {siteName(sites.data, visit.site_id)}
                      </Space>
                    }
                    description={`${when(visit.started_at)} · ${duration(visit.dwell_s)} · ${visit.sighting_count} ${t("monitor.sightings")}`}
                  />
                </List.Item>
              )}
            />
          </Card>
        </Col>
        <Col xs={24} lg={8}>
          <Card title={t("monitor.cameras")}>
            <List
              dataSource={cameras.flatMap((q) => q.data ?? [])}
              rowKey="id"
              renderItem={(camera) => {
                const last = camera.last_sighting_at ? Date.parse(camera.last_sighting_at) : null;
                const status = !camera.enabled ? "default" : last && now - last < STALE_MS ? "success" : "warning";
                return (
                  <List.Item>
                    <Badge status={status} text={`${siteName(sites.data, camera.site_id)} · ${camera.name}`} />
                    <Typography.Text type="secondary">{camera.enabled ? when(camera.last_sighting_at) : t("cameras.disabled")}</Typography.Text>
                  </List.Item>
                );
              }}
            />
          </Card>
        </Col>
      </Row>
    </Space>
  );
}
