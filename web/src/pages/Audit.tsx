import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { Alert, Button, Card, DatePicker, Input, Space, Table, Tag, Typography } from "antd";
import { useState } from "react";

import { api } from "../api/client";
import { unwrap } from "../api/result";
import type { components } from "../api/schema";
import { ErrorNotice } from "../components/ErrorNotice";
import { t } from "../i18n";
import { when } from "../lib/hooks";
import { useTenant } from "../lib/tenant";

type AuditPage = components["schemas"]["AuditPage"];
const ACTION = /^[a-z_]+(\.[a-z_]+)*\.?$/;

export default function Audit() {
  const tenant = useTenant() ?? "";
  const [action, setAction] = useState("");
  const [range, setRange] = useState<[string, string] | null>(null);
  const valid = !action || ACTION.test(action);
  const entries = useInfiniteQuery({
    queryKey: ["audit", tenant, action, range],
    enabled: valid,
    initialPageParam: null as string | null,
    getNextPageParam: (page: AuditPage) => page.next_cursor ?? null,
    queryFn: ({ pageParam }): Promise<AuditPage> =>
      unwrap(
        api.GET("/v1/tenants/{tenant_id}/audit", {
          params: { path: { tenant_id: tenant }, query: { action: action || null, since: range?.[0] ?? null, until: range?.[1] ?? null, cursor: pageParam, limit: 100 } },
        }),
      ),
  });
  const verification = useQuery({
    queryKey: ["audit-verification", tenant],
    queryFn: () => unwrap(api.GET("/v1/tenants/{tenant_id}/audit/verification", { params: { path: { tenant_id: tenant } } })),
  });
  const v = verification.data;
  return (
    <Space direction="vertical" size="large" className="w-full">
      <Typography.Title level={2}>{t("audit.title")}</Typography.Title>
      <Card title={t("audit.chain")} extra={<Button onClick={() => verification.refetch()} loading={verification.isFetching}>{t("audit.verifyAgain")}</Button>}>
        <ErrorNotice error={verification.error} />
        {v && (
          <Alert
            data-testid="chain-status"
            type={v.ok ? "success" : "error"}
            showIcon
            message={v.ok ? t("audit.intact") : t("audit.broken")}
            description={
              <>
                <div>
                  {v.rows} {t("audit.rows")} · {t("audit.head")} {v.head_seq} <Typography.Text code>{v.head_hash.slice(0, 16)}…</Typography.Text> · {when(v.verified_at)}
                </div>
                {v.problems.map((p) => (
                  <div key={p}>{p}</div>
                ))}
              </>
            }
          />
        )}
      </Card>
      <Space wrap>
        <Input.Search aria-label={t("audit.action")} placeholder={t("audit.actionHelp")} allowClear status={valid ? undefined : "error"} onSearch={(value) => setAction(value.trim())} className="w-72" />
        <DatePicker.RangePicker aria-label={t("audit.when")} showTime onChange={(r) => setRange(r?.[0] && r[1] ? [r[0].toISOString(), r[1].toISOString()] : null)} />
      </Space>
      <ErrorNotice error={entries.error} />
      <Table
        rowKey="id"
        size="small"
        loading={entries.isLoading}
        pagination={false}
        dataSource={entries.data?.pages.flatMap((p) => p.items) ?? []}
        columns={[
          { title: t("audit.seq"), render: (_, e) => e.seq ?? "—" },
          { title: t("audit.when"), render: (_, e) => when(e.at) },
          { title: t("audit.actor"), render: (_, e) => `${e.actor_kind}${e.actor_id ? ` ${e.actor_id.slice(0, 8)}` : ""}` },
          { title: t("audit.action"), render: (_, e) => <Tag>{e.action}</Tag> },
          { title: t("audit.target"), render: (_, e) => `${e.target_type}${e.target_id ? ` ${e.target_id.slice(0, 8)}` : ""}` },
          { title: t("audit.details"), render: (_, e) => <Typography.Text type="secondary">{JSON.stringify(e.details)}</Typography.Text> },
        ]}
      />
      {entries.hasNextPage && <Button onClick={() => entries.fetchNextPage()} loading={entries.isFetchingNextPage}>{t("common.more")}</Button>}
    </Space>
  );
}
