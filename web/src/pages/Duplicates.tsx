import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Alert, Button, Card, Empty, Popconfirm, Space, Typography } from "antd";
import { useState } from "react";
import { Link } from "react-router-dom";

import { api } from "../api/client";
import { unwrap } from "../api/result";
import type { components } from "../api/schema";
import { ErrorNotice } from "../components/ErrorNotice";
import { Snapshot } from "../components/Snapshot";
import { t } from "../i18n";
import { when } from "../lib/hooks";
import { useTenant } from "../lib/tenant";

type Pair = components["schemas"]["DuplicateOut"];
type Glance = components["schemas"]["PersonGlanceOut"];

function Side({ tenant, person, label }: { tenant: string; person: Glance; label: string }) {
  return (
    <Space direction="vertical" size="small" className="min-w-0">
      <Typography.Text type="secondary">{label}</Typography.Text>
      {person.snapshot_sighting_id ? (
        <Snapshot tenant={tenant} source={{ sighting: person.snapshot_sighting_id }} size={96} />
      ) : (
        <Typography.Text type="secondary">{t("duplicates.noSnapshot")}</Typography.Text>
      )}
      <Link to={`/customers/${person.id}`}>{person.id.slice(0, 8)}</Link>
      <Typography.Text>
        {t("customers.visits")}: {person.visit_count}
      </Typography.Text>
      <Typography.Text type="secondary">
        {t("customers.lastSeen")}: {when(person.last_seen_at)}
      </Typography.Text>
    </Space>
  );
}

/** Likely duplicates: passes that scored just below the link threshold, shown face to face for a
 * person to merge (the older customer keeps the history) or to mark as different people. */
export default function Duplicates() {
  const tenant = useTenant() ?? "";
  const client = useQueryClient();
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [done, setDone] = useState<string | null>(null);
  const [lastMerge, setLastMerge] = useState<string | null>(null);
  const cursor = cursors[cursors.length - 1];
  const pairs = useQuery({
    queryKey: ["duplicates", tenant, cursor],
    queryFn: () => unwrap(api.GET("/v1/persons/{tenant_id}/duplicates", { params: { path: { tenant_id: tenant }, query: { limit: 20, cursor } } })),
  });
  const refresh = () => client.invalidateQueries({ predicate: (q) => ["duplicates", "customers", "customer", "sightings"].includes(String(q.queryKey[0])) });
  const merge = useMutation({
    mutationFn: (pair: Pair) =>
      unwrap(api.POST("/v1/persons/{tenant_id}/merge", { params: { path: { tenant_id: tenant } }, body: { kept_id: pair.candidate.id, merged_id: pair.customer.id } })),
    onSuccess: (result) => {
      setDone(t("duplicates.merged"));
      setLastMerge(result.merge_id);
      void refresh();
    },
  });
  const undo = useMutation({
    mutationFn: (mergeId: string) => unwrap(api.POST("/v1/persons/{tenant_id}/merges/{merge_id}/undo", { params: { path: { tenant_id: tenant, merge_id: mergeId } } })),
    onSuccess: () => {
      setDone(t("duplicates.undone"));
      setLastMerge(null);
      void refresh();
    },
  });
  const distinct = useMutation({
    mutationFn: (pair: Pair) =>
      unwrap(api.POST("/v1/persons/{tenant_id}/not-same", { params: { path: { tenant_id: tenant } }, body: { person_a: pair.customer.id, person_b: pair.candidate.id } })),
    onSuccess: () => {
      setDone(t("duplicates.markedDistinct"));
      setLastMerge(null);
      void refresh();
    },
  });
  const items = pairs.data?.items ?? [];
  return (
    <Space direction="vertical" size="large" className="w-full">
      <Typography.Title level={2}>{t("duplicates.title")}</Typography.Title>
      <Typography.Paragraph type="secondary" className="max-w-3xl">
        {t("duplicates.explain")}
      </Typography.Paragraph>
      {done && (
        <Alert
          type="success"
          showIcon
          message={done}
          action={
            lastMerge ? (
              <Button size="small" loading={undo.isPending} onClick={() => undo.mutate(lastMerge)}>
                {t("person.undo")}
              </Button>
            ) : undefined
          }
        />
      )}
      <ErrorNotice error={pairs.error ?? merge.error ?? undo.error ?? distinct.error} />
      {pairs.isSuccess && items.length === 0 && <Empty description={t("duplicates.none")} />}
      {items.map((pair) => (
        <Card key={`${pair.customer.id}:${pair.candidate.id}`} data-testid="duplicate-pair" size="small">
          <Space wrap size="large" align="start" className="w-full justify-between">
            <Space wrap size="large" align="start">
              <Side tenant={tenant} person={pair.customer} label={t("duplicates.newer")} />
              <Side tenant={tenant} person={pair.candidate} label={t("duplicates.older")} />
            </Space>
            <Space direction="vertical">
              <Typography.Text>
                {t("person.similarity")}: {pair.similarity.toFixed(3)}
              </Typography.Text>
              <Button type="primary" loading={merge.isPending && merge.variables === pair} onClick={() => merge.mutate(pair)}>
                {t("duplicates.merge")}
              </Button>
              <Popconfirm title={t("duplicates.distinctConfirm")} okText={t("person.notSame")} onConfirm={() => distinct.mutate(pair)}>
                <Button>{t("person.notSame")}</Button>
              </Popconfirm>
            </Space>
          </Space>
        </Card>
      ))}
      <Space>
        <Button disabled={cursors.length < 2} onClick={() => setCursors((list) => list.slice(0, -1))}>
          {t("common.previous")}
        </Button>
        <Button disabled={!pairs.data?.next_cursor} onClick={() => setCursors((list) => [...list, pairs.data?.next_cursor ?? null])}>
          {t("common.next")}
        </Button>
      </Space>
    </Space>
  );
}
