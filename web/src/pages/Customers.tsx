import { useQuery } from "@tanstack/react-query";
import { Button, Input, Space, Table, Typography } from "antd";
import { useState } from "react";
import { Link } from "react-router-dom";

import { api } from "../api/client";
import { unwrap } from "../api/result";
import { ErrorNotice } from "../components/ErrorNotice";
import { t } from "../i18n";
import { when } from "../lib/hooks";
import { useTenant } from "../lib/tenant";

const ID_START = /^[0-9a-fA-F-]{1,36}$/;

export default function Customers() {
  const tenant = useTenant() ?? "";
  const [q, setQ] = useState("");
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const cursor = cursors[cursors.length - 1];
  const search = q.trim();
  const valid = !search || ID_START.test(search);
  const page = useQuery({
    queryKey: ["customers", tenant, search, cursor],
    enabled: valid,
    queryFn: () =>
      unwrap(api.GET("/v1/persons/{tenant_id}/customers", { params: { path: { tenant_id: tenant }, query: { limit: 50, cursor, q: search || null } } })),
  });
  return (
    <Space direction="vertical" size="large" className="w-full">
      <Typography.Title level={2}>{t("customers.title")}</Typography.Title>
      <Link to="/customers/duplicates">{t("customers.reviewDuplicates")}</Link>
      <Input.Search
        aria-label={t("customers.search")}
        placeholder={t("customers.search")}
        allowClear
        className="max-w-md"
        status={valid ? undefined : "error"}
        onSearch={(value) => {
          setQ(value);
          setCursors([null]);
        }}
      />
      {!valid && <Typography.Text type="danger">{t("customers.searchHelp")}</Typography.Text>}
      <ErrorNotice error={page.error} />
      <Table
        rowKey="id"
        loading={page.isLoading}
        dataSource={page.data?.items ?? []}
        pagination={false}
        columns={[
          { title: t("customers.id"), render: (_, c) => <Link to={`/customers/${c.id}`}>{c.id.slice(0, 8)}</Link> },
          { title: t("customers.firstSeen"), render: (_, c) => when(c.first_seen_at) },
          { title: t("customers.lastSeen"), render: (_, c) => when(c.last_seen_at) },
          { title: t("customers.visits"), dataIndex: "visit_count" },
          { title: t("customers.views"), dataIndex: "views" },
          { title: t("reports.gender"), render: (_, c) => c.gender ?? "—" },
          { title: t("reports.age"), render: (_, c) => c.age_band ?? "—" },
        ]}
      />
      <Space>
        <Button disabled={cursors.length < 2} onClick={() => setCursors((list) => list.slice(0, -1))}>{t("common.previous")}</Button>
        <Button disabled={!page.data?.next_cursor} onClick={() => setCursors((list) => [...list, page.data?.next_cursor ?? null])}>{t("common.next")}</Button>
      </Space>
    </Space>
  );
}
