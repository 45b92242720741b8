import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Alert, Button, Card, Descriptions, Form, Input, Modal, Result, Space, Table, Tag, Typography } from "antd";
import { useState } from "react";
import { Link, useParams } from "react-router-dom";

import { api } from "../api/client";
import { unwrap } from "../api/result";
import type { components } from "../api/schema";
import { ErrorNotice } from "../components/ErrorNotice";
import { Snapshot } from "../components/Snapshot";
import { t } from "../i18n";
import { siteName, useSites, when } from "../lib/hooks";
import { useTenant } from "../lib/tenant";

type Merge = components["schemas"]["MergeOut"];
type Receipt = components["schemas"]["ErasureOut"];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export default function Person() {
  const { customerId = "" } = useParams();
  const tenant = useTenant() ?? "";
  const client = useQueryClient();
  const sites = useSites(tenant);
  const path = { tenant_id: tenant, customer_id: customerId };
  const person = useQuery({ queryKey: ["customer", tenant, customerId], queryFn: () => unwrap(api.GET("/v1/persons/{tenant_id}/customers/{customer_id}", { params: { path } })) });
  const sightings = useQuery({
    queryKey: ["sightings", tenant, customerId],
    enabled: person.isSuccess,
    queryFn: async () => (await unwrap(api.GET("/v1/persons/{tenant_id}/customers/{customer_id}/sightings", { params: { path, query: { limit: 200 } } }))).items,
  });
  const [merged, setMerged] = useState<Merge | null>(null);
  const [receipt, setReceipt] = useState<Receipt | null>(null);
  const [dialog, setDialog] = useState<"merge" | "distinct" | "erase" | null>(null);
  const [form] = Form.useForm<{ other: string; confirm: string }>();
  const refresh = () => client.invalidateQueries({ predicate: (q) => ["customer", "sightings", "customers"].includes(String(q.queryKey[0])) });

  const merge = useMutation({
    mutationFn: (other: string) => unwrap(api.POST("/v1/persons/{tenant_id}/merge", { params: { path: { tenant_id: tenant } }, body: { kept_id: customerId, merged_id: other } })),
    onSuccess: (result) => {
      setMerged(result);
      setDialog(null);
      void refresh();
    },
  });
  const undo = useMutation({
    mutationFn: (mergeId: string) => unwrap(api.POST("/v1/persons/{tenant_id}/merges/{merge_id}/undo", { params: { path: { tenant_id: tenant, merge_id: mergeId } } })),
    onSuccess: () => {
      setMerged(null);
      void refresh();
    },
  });
  const distinct = useMutation({
    mutationFn: (other: string) => unwrap(api.POST("/v1/persons/{tenant_id}/not-same", { params: { path: { tenant_id: tenant } }, body: { person_a: customerId, person_b: other } })),
    onSuccess: () => setDialog(null),
  });
  const erase = useMutation({
    mutationFn: () => unwrap(api.POST("/v1/erasure/{tenant_id}", { params: { path: { tenant_id: tenant } }, body: { customer_id: customerId } })),
    onSuccess: (result) => {
      setReceipt(result);
      setDialog(null);
      void client.invalidateQueries({ queryKey: ["customers"] });
    },
  });

  if (receipt)
    return (
      <Result
        status="success"
        title={t("person.erased")}
        subTitle={
          <span data-testid="receipt">
            {t("person.receipt")} {receipt.receipt_id}
          </span>
        }
        extra={
          <Descriptions column={1} size="small" bordered>
            <Descriptions.Item label={t("person.visitsAnonymised")}>{receipt.visits_anonymised}</Descriptions.Item>
            <Descriptions.Item label={t("person.sightingsDeleted")}>{receipt.sightings_deleted}</Descriptions.Item>
            <Descriptions.Item label={t("person.embeddingsDeleted")}>{receipt.embeddings_deleted}</Descriptions.Item>
            <Descriptions.Item label={t("person.snapshotsDeleted")}>{receipt.snapshots_deleted}</Descriptions.Item>
          </Descriptions>
        }
      />
    );
  if (person.error) return <ErrorNotice error={person.error} />;
  const data = person.data;
  const pending = merge.isPending || distinct.isPending || erase.isPending;
  return (
    <Space direction="vertical" size="large" className="w-full">
      <Link to="/customers">← {t("customers.title")}</Link>
      <Typography.Title level={2}>
        {t("person.title")} {customerId.slice(0, 8)}
      </Typography.Title>
      {merged && (
        <Alert
          type="success"
          showIcon
          message={`${t("person.mergedMessage")} ${merged.merged_id.slice(0, 8)} (${merged.moved.visits} ${t("reports.visitsLower")}, ${merged.moved.sightings} ${t("monitor.sightings")})`}
          action={<Button onClick={() => undo.mutate(merged.merge_id)} loading={undo.isPending}>{t("person.undo")}</Button>}
        />
      )}
      <ErrorNotice error={undo.error} />
      {data && (
        <Descriptions bordered size="small" column={{ xs: 1, md: 3 }}>
          <Descriptions.Item label={t("customers.id")}>{data.id}</Descriptions.Item>
          <Descriptions.Item label={t("customers.firstSeen")}>{when(data.first_seen_at)}</Descriptions.Item>
          <Descriptions.Item label={t("customers.lastSeen")}>{when(data.last_seen_at)}</Descriptions.Item>
          <Descriptions.Item label={t("customers.visits")}><span data-testid="visit-count">{data.visit_count}</span></Descriptions.Item>
          <Descriptions.Item label={t("customers.views")}>{data.views}</Descriptions.Item>
          <Descriptions.Item label={t("reports.gender")}>{data.gender ?? "—"} · {data.age_band ?? "—"}</Descriptions.Item>
        </Descriptions>
      )}
      <Space wrap>
        <Button onClick={() => { form.resetFields(); merge.reset(); setDialog("merge"); }}>{t("person.merge")}</Button>
        <Button onClick={() => { form.resetFields(); distinct.reset(); setDialog("distinct"); }}>{t("person.notSame")}</Button>
        <Button danger onClick={() => { form.resetFields(); erase.reset(); setDialog("erase"); }}>{t("person.erase")}</Button>
      </Space>
      <Card title={t("person.timeline")}>
        <ErrorNotice error={sightings.error} />
        <Table
          rowKey="id"
          size="small"
          pagination={{ pageSize: 50, hideOnSinglePage: true }}
          dataSource={sightings.data ?? []}
          columns={[
            { title: t("person.snapshot"), render: (_, s) => (s.has_snapshot ? <Snapshot tenant={tenant} source={{ sighting: s.id }} size={48} /> : "—") },
            { title: t("person.when"), render: (_, s) => when(s.captured_at) },
            { title: t("staff.site"), render: (_, s) => siteName(sites.data, s.site_id) },
            { title: t("person.decision"), render: (_, s) => <Tag>{s.decision.replace("_", " ")}</Tag> },
            { title: t("person.similarity"), render: (_, s) => (s.similarity == null ? "—" : s.similarity.toFixed(3)) },
            { title: t("person.openedVisit"), render: (_, s) => (s.opened_visit ? t("common.yes") : t("common.no")) },
          ]}
        />
      </Card>
      <Modal
        open={dialog !== null}
        title={dialog === "merge" ? t("person.merge") : dialog === "distinct" ? t("person.notSame") : t("person.erase")}
        onCancel={() => setDialog(null)}
        onOk={() => form.submit()}
        okText={dialog === "erase" ? t("person.eraseNow") : t("common.confirm")}
        okButtonProps={{ danger: dialog === "erase" }}
        confirmLoading={pending}
        destroyOnClose
      >
        <ErrorNotice error={merge.error ?? distinct.error ?? erase.error} />
        <Form
          form={form}
          layout="vertical"
          requiredMark={false}
          onFinish={(values) => {
            if (dialog === "merge") merge.mutate(values.other.trim());
            else if (dialog === "distinct") distinct.mutate(values.other.trim());
            else erase.mutate();
          }}
        >
          {dialog === "erase" ? (
            <>
              <Alert type="warning" showIcon className="mb-4" message={t("person.eraseWarning")} />
              <Form.Item
                label={`${t("person.typeToConfirm")} ${customerId.slice(0, 8)}`}
                name="confirm"
                rules={[{ validator: (_, v: string) => (v?.trim() === customerId.slice(0, 8) ? Promise.resolve() : Promise.reject(new Error(t("person.typeMismatch")))) }]}
              >
                <Input autoComplete="off" />
              </Form.Item>
            </>
          ) : (
            <Form.Item
              label={dialog === "merge" ? t("person.mergeInto") : t("person.otherPerson")}
              name="other"
              rules={[{ required: true }, { pattern: UUID, message: t("person.uuidHelp") }, { validator: (_, v: string) => (v?.trim() === customerId ? Promise.reject(new Error(t("person.sameId"))) : Promise.resolve()) }]}
            >
              <Input autoComplete="off" placeholder="00000000-0000-0000-0000-000000000000" />
            </Form.Item>
          )}
        </Form>
      </Modal>
    </Space>
  );
}
