import { useQuery } from "@tanstack/react-query";
import { Button, Card, Col, Empty, Row, Segmented, Space, Table, Tooltip, Typography } from "antd";
import { useState } from "react";
import { useSearchParams } from "react-router-dom";
import { Bar, BarChart, CartesianGrid, ComposedChart, Legend, Line, ResponsiveContainer, Tooltip as ChartTooltip, XAxis, YAxis } from "recharts";

import { api } from "../api/client";
import { unwrap } from "../api/result";
import type { components } from "../api/schema";
import { ErrorNotice } from "../components/ErrorNotice";
import { PeriodPicker } from "../components/PeriodPicker";
import { t } from "../i18n";
import { duration, usePeriod, useSites, when } from "../lib/hooks";
import { alignComparison, type Period } from "../lib/periods";
import { useTenant } from "../lib/tenant";

type Granularity = "hour" | "day" | "week" | "month";
type Series = components["schemas"]["SeriesOut"];
const GRANULARITIES: Granularity[] = ["hour", "day", "week", "month"];

function reportQuery(period: Period, site?: string) {
  return { start: period.start, end: period.end, site_id: site ?? null };
}

/** The bucket's label as the site's local time says it (the API sends local wall time). */
function label(start: string, granularity: Granularity): string {
  const [day = start, time = ""] = start.split("T");
  if (granularity === "hour") return `${day.slice(5)} ${time.slice(0, 5)}`;
  if (granularity === "month") return day.slice(0, 7);
  return day;
}

function useReport<T>(name: "heatmap" | "dwell" | "demographics", tenant: string, period: Period, site?: string) {
  return useQuery({
    queryKey: ["report", name, tenant, period, site ?? "all"],
    queryFn: () =>
      unwrap(api.GET(`/v1/tenants/{tenant_id}/reports/${name}`, { params: { path: { tenant_id: tenant }, query: reportQuery(period, site) } })) as Promise<T>,
  });
}

export default function Reports() {
  const tenant = useTenant() ?? "";
  const { preset, setPreset, setCustom, period, previous } = usePeriod("last7");
  const [granularity, setGranularity] = useState<Granularity>("day");
  const [params] = useSearchParams();
  const [site, setSite] = useState<string | undefined>(params.get("site") ?? undefined);
  const [exporting, setExporting] = useState(false);
  const sites = useSites(tenant);
  const series = (p: Period) => ({
    queryKey: ["series", tenant, p, site ?? "all", granularity],
    queryFn: () =>
      unwrap(
        api.GET("/v1/tenants/{tenant_id}/reports/visits", {
          params: { path: { tenant_id: tenant }, query: { ...reportQuery(p, site), granularity } },
        }),
      ),
  });
  const now = useQuery(series(period));
  const before = useQuery(series(previous));
  const heatmap = useReport<components["schemas"]["HeatmapOut"]>("heatmap", tenant, period, site);
  const dwell = useReport<components["schemas"]["DwellOut"]>("dwell", tenant, period, site);
  const demographics = useReport<components["schemas"]["DemographicsOut"]>("demographics", tenant, period, site);

  const buckets = now.data?.buckets ?? [];
  const earlier = new Map((before.data?.buckets ?? []).map((b) => [b.start, b.visits]));
  const paired = alignComparison(buckets.map((b) => b.start), period, previous, granularity);
  const rows = buckets.map((b, i) => ({
    ...b,
    label: label(b.start, granularity),
    // no bucket in the comparison period at that offset: no visits then (when it has loaded)
    previous: before.data ? (earlier.get(paired[i] ?? "") ?? 0) : null,
  }));

  async function exportCsv() {
    setExporting(true);
    try {
      const blob = await unwrap(
        api.GET("/v1/tenants/{tenant_id}/reports/visits.csv", {
          params: { path: { tenant_id: tenant }, query: { ...reportQuery(period, site), granularity } },
          parseAs: "blob",
        }),
      );
      const url = URL.createObjectURL(blob as Blob);
      const link = document.createElement("a");
      link.href = url;
      link.download = `visits-${period.start}-${period.end}-${granularity}.csv`;
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } finally {
      setExporting(false);
    }
  }

  const error = now.error ?? sites.error ?? heatmap.error ?? dwell.error ?? demographics.error;
  const fresh = now.data?.freshness;
  return (
    <Space direction="vertical" size="large" className="w-full">
      <Typography.Title level={2}>{t("reports.title")}</Typography.Title>
      <PeriodPicker preset={preset} onPreset={setPreset} onCustom={setCustom} period={period} previous={previous} sites={sites.data ?? []} site={site} onSite={setSite} />
      <Space wrap>
        <Segmented aria-label={t("reports.granularity")} value={granularity} onChange={(v) => setGranularity(v as Granularity)} options={GRANULARITIES.map((g) => ({ value: g, label: t(`granularity.${g}`) }))} />
        <Button onClick={exportCsv} loading={exporting} disabled={!now.data}>
          {t("reports.csv")}
        </Button>
        {fresh && (
          <Typography.Text type="secondary" data-testid="freshness">
            {t("overview.freshness")} {when(fresh.newest_aggregated_visit_at)}
            {fresh.pending_hours > 0 && ` · ${fresh.pending_hours} ${t("overview.pending")}`}
          </Typography.Text>
        )}
      </Space>
      <ErrorNotice error={error} />
      <Card title={t("reports.visitsOverTime")}>
        <div className="h-72" role="img" aria-label={t("reports.visitsOverTime")}>
          <ResponsiveContainer>
            <ComposedChart data={rows}>
              <CartesianGrid strokeDasharray="3 3" />
              <XAxis dataKey="label" />
              <YAxis allowDecimals={false} />
              <ChartTooltip />
              <Legend />
              <Bar dataKey="new_visits" name={t("overview.new")} stackId="v" fill="#0958d9" />
              <Bar dataKey="returning_visits" name={t("overview.returning")} stackId="v" fill="#237804" />
              <Line dataKey="unique_visitors" name={t("overview.unique")} stroke="#722ed1" dot={false} />
              <Line dataKey="previous" name={t("reports.previous")} stroke="#595959" strokeDasharray="5 5" dot={false} />
            </ComposedChart>
          </ResponsiveContainer>
        </div>
        <SeriesTable series={now.data} rows={rows} />
      </Card>
      <Row gutter={[16, 16]}>
        <Col xs={24} xl={14}>
          <Card title={t("reports.heatmap")}>{heatmap.data ? <Heatmap data={heatmap.data} /> : <Empty />}</Card>
        </Col>
        <Col xs={24} xl={10}>
          <Card title={t("reports.dwell")}>
            {dwell.data && (
              <>
                <Typography.Text type="secondary">
                  {t("overview.dwell")}: {duration(dwell.data.avg_dwell_s)} · {dwell.data.visits} {t("reports.visitsLower")}
                </Typography.Text>
                <div className="h-56" role="img" aria-label={t("reports.dwell")}>
                  <ResponsiveContainer>
                    <BarChart data={dwell.data.buckets.map((b) => ({ ...b, name: b.label }))}>
                      <CartesianGrid strokeDasharray="3 3" />
                      <XAxis dataKey="name" />
                      <YAxis allowDecimals={false} />
                      <ChartTooltip />
                      <Bar dataKey="visits" name={t("overview.visits")} fill="#0958d9" />
                    </BarChart>
                  </ResponsiveContainer>
                </div>
              </>
            )}
          </Card>
        </Col>
      </Row>
      <Card title={t("reports.demographics")}>
        {demographics.data && demographics.data.visits > 0 ? (
          <Row gutter={16}>
            <Col xs={24} md={12}><Breakdown title={t("reports.gender")} counts={demographics.data.gender} /></Col>
            <Col xs={24} md={12}><Breakdown title={t("reports.age")} counts={demographics.data.age_bands} /></Col>
          </Row>
        ) : (
          <Typography.Text type="secondary">{t("reports.noDemographics")}</Typography.Text>
        )}
      </Card>
    </Space>
  );
}

function SeriesTable({ series, rows }: { series?: Series; rows: (components["schemas"]["Bucket"] & { label: string; previous: number | null })[] }) {
  return (
    <Table
      className="mt-4"
      size="small"
      rowKey="start"
      pagination={{ pageSize: 24, hideOnSinglePage: true }}
      dataSource={rows}
      data-testid="series-table"
      columns={[
        { title: t("reports.bucket"), dataIndex: "label" },
        { title: t("overview.visits"), dataIndex: "visits" },
        { title: t("overview.new"), dataIndex: "new_visits" },
        { title: t("overview.returning"), dataIndex: "returning_visits" },
        { title: t("overview.unique"), dataIndex: "unique_visitors" },
        { title: t("overview.dwell"), render: (_, r) => duration(r.avg_dwell_s) },
        { title: t("reports.previous"), render: (_, r) => r.previous ?? "—" },
      ]}
      summary={() =>
        series && (
          <Table.Summary.Row data-testid="series-totals">
            <Table.Summary.Cell index={0}>{t("reports.total")}</Table.Summary.Cell>
            <Table.Summary.Cell index={1}>{series.totals.visits}</Table.Summary.Cell>
            <Table.Summary.Cell index={2}>{series.totals.new_visits}</Table.Summary.Cell>
            <Table.Summary.Cell index={3}>{series.totals.returning_visits}</Table.Summary.Cell>
            <Table.Summary.Cell index={4}>{series.totals.unique_visitors ?? "—"}</Table.Summary.Cell>
            <Table.Summary.Cell index={5}>{duration(series.totals.avg_dwell_s)}</Table.Summary.Cell>
            <Table.Summary.Cell index={6} />
          </Table.Summary.Row>
        )
      }
    />
  );
}

function Heatmap({ data }: { data: components["schemas"]["HeatmapOut"] }) {
  const max = Math.max(1, ...data.visits.flat());
  return (
    <div className="overflow-x-auto">
      <table className="border-collapse text-xs" aria-label={t("reports.heatmap")}>
        <thead>
          <tr>
            <th scope="col" className="p-1 text-left">{t("reports.weekday")}</th>
            {Array.from({ length: 24 }, (_, h) => (
              <th scope="col" key={h} className="p-1 font-normal">{h}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {data.visits.map((hours, d) => (
            <tr key={d}>
              <th scope="row" className="p-1 text-left font-normal">{data.days[d] ?? d}</th>
              {hours.map((count, h) => (
                <Tooltip key={h} title={`${data.days[d] ?? d} ${h}:00 — ${count}`}>
                  <td
                    className="h-6 w-6 text-center"
                    style={{ background: count ? `rgba(9, 88, 217, ${0.15 + (0.85 * count) / max})` : "transparent", color: count / max > 0.5 ? "#fff" : undefined }}
                  >
                    {count || ""}
                  </td>
                </Tooltip>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Breakdown({ title, counts }: { title: string; counts: Record<string, number> }) {
  const data = Object.entries(counts).map(([name, visits]) => ({ name, visits }));
  return (
    <div className="h-56" role="img" aria-label={title}>
      <Typography.Text strong>{title}</Typography.Text>
      <ResponsiveContainer>
        <BarChart data={data} layout="vertical">
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis type="number" allowDecimals={false} />
          <YAxis type="category" dataKey="name" width={80} />
          <ChartTooltip />
          <Bar dataKey="visits" name={t("overview.visits")} fill="#0958d9" />
        </BarChart>
      </ResponsiveContainer>
    </div>
  );
}
