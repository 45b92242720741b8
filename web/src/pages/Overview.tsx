import { useQueries, useQuery } from "@tanstack/react-query";
import { Alert, Card, Col, DatePicker, Row, Segmented, Select, Space, Statistic, Table, Typography } from "antd";
import { useMemo, useState } from "react";

import { api, problemText } from "../api/client";
import type { components } from "../api/schema";
import { Link } from "react-router-dom";

import { useTenant } from "../lib/tenant";
import { t } from "../i18n";
import { comparisonPeriod, delta, iso, presetPeriod, type Period, type Preset } from "../lib/periods";

type Totals = components["schemas"]["Totals"];
const PRESETS: Exclude<Preset, "custom">[] = ["today", "yesterday", "last7", "thisWeek", "lastWeek", "thisMonth", "lastMonth"];

function useTotals(tenant: string, period: Period, site?: string) {
  return useQuery({
    queryKey: ["visits-report", tenant, period, site ?? "all"],
    queryFn: async () => {
      const { data, error } = await api.GET("/v1/tenants/{tenant_id}/reports/visits", {
        params: { path: { tenant_id: tenant }, query: { start: period.start, end: period.end, site_id: site ?? null, granularity: "day" } },
      });
      if (error) throw new Error(problemText(error));
      return data;
    },
  });
}

function Kpi({ title, value, previous, format }: { title: string; value?: number | null; previous?: number | null; format?: (v: number) => string }) {
  const change = delta(value, previous);
  return (
    <Card>
      <Statistic title={title} value={value == null ? "—" : format ? format(value) : value} />
      <Typography.Text type={change == null ? "secondary" : change >= 0 ? "success" : "danger"} data-testid={`delta-${title}`}>
        {change == null ? "—" : `${change >= 0 ? "+" : ""}${(change * 100).toFixed(1)} % ${t("overview.vs")} ${previous ?? "—"}`}
      </Typography.Text>
    </Card>
  );
}

function minutes(seconds: number): string {
  return seconds < 90 ? `${Math.round(seconds)} s` : `${Math.round(seconds / 60)} min`;
}

export default function Overview() {
  const tenant = useTenant() ?? "";
  const [preset, setPreset] = useState<Preset>("last7");
  const [custom, setCustom] = useState<Period | null>(null);
  const [site, setSite] = useState<string | undefined>();
  const period = useMemo(() => (preset === "custom" && custom ? custom : presetPeriod(preset === "custom" ? "last7" : preset, new Date())), [preset, custom]);
  const previous = useMemo(() => comparisonPeriod(period, preset), [period, preset]);

  const sites = useQuery({
    queryKey: ["sites", tenant],
    queryFn: async () => {
      const { data, error } = await api.GET("/v1/tenants/{tenant_id}/sites", { params: { path: { tenant_id: tenant }, query: { limit: 200 } } });
      if (error) throw new Error(problemText(error));
      return data.items;
    },
    enabled: Boolean(tenant),
  });
  const now = useTotals(tenant, period, site);
  const before = useTotals(tenant, previous, site);
  const league = useQueries({
    queries: (sites.data ?? []).map((s) => ({
      queryKey: ["visits-report", tenant, period, s.id],
      queryFn: async () => {
        const { data, error } = await api.GET("/v1/tenants/{tenant_id}/reports/visits", {
          params: { path: { tenant_id: tenant }, query: { start: period.start, end: period.end, site_id: s.id, granularity: "day" } },
        });
        if (error) throw new Error(problemText(error));
        return { site: s, totals: data.totals };
      },
    })),
  });

  const totals: Totals | undefined = now.data?.totals;
  const base: Totals | undefined = before.data?.totals;
  const fresh = now.data?.freshness;
  return (
    <Space direction="vertical" size="large" className="w-full">
      <Typography.Title level={2}>{t("overview.title")}</Typography.Title>
      <Space wrap>
        <Segmented
          value={preset}
          onChange={(value) => setPreset(value as Preset)}
          options={[...PRESETS, "custom" as const].map((p) => ({ value: p, label: t(`preset.${p}`) }))}
        />
        {preset === "custom" && (
          <DatePicker.RangePicker
            aria-label={t("preset.custom")}
            onChange={(range) => range?.[0] && range[1] && setCustom({ start: iso(range[0].toDate()), end: iso(range[1].toDate()) })}
          />
        )}
        <Select
          aria-label={t("overview.sites")}
          className="min-w-48"
          allowClear
          placeholder={t("overview.allSites")}
          value={site}
          onChange={setSite}
          options={(sites.data ?? []).map((s) => ({ value: s.id, label: s.name }))}
        />
        <Typography.Text type="secondary">
          {period.start} – {period.end} {t("overview.vs")} {previous.start} – {previous.end}
        </Typography.Text>
      </Space>
      {(now.error || sites.error) && <Alert type="error" message={String(now.error ?? sites.error)} />}
      <Row gutter={[16, 16]}>
        <Col xs={24} md={8} lg={4}><Kpi title={t("overview.visits")} value={totals?.visits} previous={base?.visits} /></Col>
        <Col xs={24} md={8} lg={5}><Kpi title={t("overview.unique")} value={totals?.unique_visitors} previous={base?.unique_visitors} /></Col>
        <Col xs={24} md={8} lg={5}><Kpi title={t("overview.new")} value={totals?.new_visits} previous={base?.new_visits} /></Col>
        <Col xs={24} md={12} lg={5}><Kpi title={t("overview.returning")} value={totals?.returning_visits} previous={base?.returning_visits} /></Col>
        <Col xs={24} md={12} lg={5}><Kpi title={t("overview.dwell")} value={totals?.avg_dwell_s} previous={base?.avg_dwell_s} format={minutes} /></Col>
      </Row>
      {fresh && (
        <Typography.Text type="secondary">
          {t("overview.freshness")} {fresh.newest_aggregated_visit_at ?? "—"}
          {fresh.pending_hours > 0 && ` · ${fresh.pending_hours} ${t("overview.pending")}`}
        </Typography.Text>
      )}
      <Table
        rowKey={(row) => row.site.id}
        pagination={false}
        dataSource={league.flatMap((q) => (q.data ? [q.data] : [])).sort((a, b) => b.totals.visits - a.totals.visits)}
        columns={[
          { title: t("overview.league"), render: (_, row) => <Link to={`/reports?site=${row.site.id}`}>{row.site.name}</Link> },
          { title: t("overview.visits"), render: (_, row) => row.totals.visits },
          { title: t("overview.unique"), render: (_, row) => row.totals.unique_visitors ?? "—" },
          { title: t("overview.new"), render: (_, row) => row.totals.new_visits },
          { title: t("overview.returning"), render: (_, row) => row.totals.returning_visits },
        ]}
      />
    </Space>
  );
}
