import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Alert, Button, Card, Drawer, Form, Input, List, Modal, Popconfirm, Select, Space, Table, Tag, Typography, Upload } from "antd";
import { useState } from "react";

import { api } from "../api/client";
import { unwrap } from "../api/result";
import type { components } from "../api/schema";
import { ErrorNotice } from "../components/ErrorNotice";
import { Snapshot } from "../components/Snapshot";
import { GOOD, INFO } from "../components/tags";
import { t } from "../i18n";
import { siteName, useSites, when } from "../lib/hooks";
import { useTenant } from "../lib/tenant";

type Staff = components["schemas"]["StaffOut"];
type Outcome = { name: string; ok: boolean; text: string };

function multipart(file: File): FormData {
  const form = new FormData();
  form.append("image", file, file.name);
  return form;
}

export default function StaffPage() {
  const tenant = useTenant() ?? "";
  const client = useQueryClient();
  const sites = useSites(tenant);
  const staff = useQuery({
    queryKey: ["staff", tenant],
    queryFn: async () => (await unwrap(api.GET("/v1/staff/{tenant_id}", { params: { path: { tenant_id: tenant }, query: { limit: 200 } } }))).items,
  });
  const [adding, setAdding] = useState(false);
  const [open, setOpen] = useState<Staff | null>(null);
  const [testing, setTesting] = useState(false);
  const [form] = Form.useForm<{ display_name: string; external_ref?: string; site_id?: string }>();
  const create = useMutation({
    mutationFn: (body: { display_name: string; external_ref?: string; site_id?: string }) =>
      unwrap(api.POST("/v1/staff/{tenant_id}", { params: { path: { tenant_id: tenant } }, body: { ...body, external_ref: body.external_ref || null, site_id: body.site_id ?? null } })),
    onSuccess: (created) => {
      setAdding(false);
      setOpen(created);
      void client.invalidateQueries({ queryKey: ["staff", tenant] });
    },
  });
  const remove = useMutation({
    mutationFn: (member: Staff) => unwrap(api.DELETE("/v1/staff/{tenant_id}/{staff_id}", { params: { path: { tenant_id: tenant, staff_id: member.id } } })),
    onSuccess: () => client.invalidateQueries({ queryKey: ["staff", tenant] }),
  });
  return (
    <Space direction="vertical" size="large" className="w-full">
      <Space className="w-full justify-between">
        <Typography.Title level={2}>{t("staff.title")}</Typography.Title>
        <Space>
          <Button onClick={() => setTesting(true)}>{t("staff.test")}</Button>
          <Button type="primary" onClick={() => { form.resetFields(); setAdding(true); }}>{t("staff.add")}</Button>
        </Space>
      </Space>
      <Typography.Text type="secondary">{t("staff.why")}</Typography.Text>
      <ErrorNotice error={staff.error ?? remove.error} />
      <Table
        rowKey="id"
        loading={staff.isLoading}
        dataSource={staff.data ?? []}
        pagination={false}
        columns={[
          { title: t("staff.name"), render: (_, s) => <Button type="link" onClick={() => setOpen(s)}>{s.display_name}</Button> },
          { title: t("staff.ref"), render: (_, s) => s.external_ref ?? "—" },
          { title: t("staff.site"), render: (_, s) => (s.site_id ? siteName(sites.data, s.site_id) : t("staff.everySite")) },
          { title: t("staff.active"), render: (_, s) => (s.active ? <Tag color={GOOD}>{t("common.yes")}</Tag> : <Tag>{t("common.no")}</Tag>) },
          {
            title: t("common.actions"),
            render: (_, member) => (
              <Popconfirm title={t("staff.deleteConfirm")} onConfirm={() => remove.mutate(member)} okText={t("common.delete")} okButtonProps={{ danger: true }}>
                <Button size="small" danger>{t("common.delete")}</Button>
              </Popconfirm>
            ),
          },
        ]}
      />
      <Modal open={adding} title={t("staff.add")} onCancel={() => setAdding(false)} onOk={() => form.submit()} okText={t("common.save")} confirmLoading={create.isPending} destroyOnClose>
        <ErrorNotice error={create.error} />
        <Form form={form} layout="vertical" onFinish={(values) => create.mutate(values)} requiredMark={false}>
          <Form.Item label={t("staff.name")} name="display_name" rules={[{ required: true, max: 200 }]}><Input /></Form.Item>
          <Form.Item label={t("staff.ref")} name="external_ref" rules={[{ max: 200 }]}><Input /></Form.Item>
          <Form.Item label={t("staff.site")} name="site_id" extra={t("staff.siteHelp")}>
            <Select allowClear placeholder={t("staff.everySite")} options={(sites.data ?? []).map((s) => ({ value: s.id, label: s.name }))} />
          </Form.Item>
        </Form>
      </Modal>
      <Drawer open={open !== null} onClose={() => setOpen(null)} width={560} title={open?.display_name} destroyOnClose>
        {open && <Photos tenant={tenant} member={open} />}
      </Drawer>
      <Modal open={testing} title={t("staff.test")} footer={null} onCancel={() => setTesting(false)} destroyOnClose>
        <RecognitionTest tenant={tenant} />
      </Modal>
    </Space>
  );
}

function Photos({ tenant, member }: { tenant: string; member: Staff }) {
  const client = useQueryClient();
  const key = ["staff-images", tenant, member.id];
  const path = { tenant_id: tenant, staff_id: member.id };
  const images = useQuery({ queryKey: key, queryFn: async () => (await unwrap(api.GET("/v1/staff/{tenant_id}/{staff_id}/images", { params: { path } }))).items });
  const [outcomes, setOutcomes] = useState<Outcome[]>([]);
  const refresh = () => client.invalidateQueries({ queryKey: key });
  const primary = useMutation({
    mutationFn: (image: string) => unwrap(api.POST("/v1/staff/{tenant_id}/{staff_id}/images/{image_id}/primary", { params: { path: { ...path, image_id: image } } })),
    onSuccess: refresh,
  });
  const remove = useMutation({
    mutationFn: (image: string) => unwrap(api.DELETE("/v1/staff/{tenant_id}/{staff_id}/images/{image_id}", { params: { path: { ...path, image_id: image } } })),
    onSuccess: refresh,
  });

  async function upload(file: File) {
    try {
      const image = await unwrap(
        api.POST("/v1/staff/{tenant_id}/{staff_id}/images", { params: { path }, body: multipart(file) as never, bodySerializer: (body: unknown) => body as FormData }),
      );
      setOutcomes((list) => [{ name: file.name, ok: true, text: `${t("staff.quality")} ${(image.quality ?? 0).toFixed(2)}` }, ...list]);
    } catch (error) {
      setOutcomes((list) => [{ name: file.name, ok: false, text: error instanceof Error ? error.message : String(error) }, ...list]);
    }
    await refresh();
  }

  return (
    <Space direction="vertical" className="w-full">
      <Upload.Dragger
        accept="image/jpeg,image/png"
        multiple
        showUploadList={false}
        customRequest={({ file, onSuccess }) => {
          void upload(file as File).then(() => onSuccess?.("ok"));
        }}
      >
        <p className="p-4">{t("staff.drop")}</p>
      </Upload.Dragger>
      <List
        data-testid="upload-outcomes"
        dataSource={outcomes}
        renderItem={(o) => (
          <List.Item>
            <Alert className="w-full" type={o.ok ? "success" : "error"} showIcon message={o.name} description={o.ok ? o.text : `${t("staff.refused")}: ${o.text}`} />
          </List.Item>
        )}
      />
      <ErrorNotice error={images.error ?? primary.error ?? remove.error} />
      <Table
        rowKey="id"
        size="small"
        pagination={false}
        dataSource={images.data ?? []}
        columns={[
          { title: t("staff.photo"), render: (_, i) => <Snapshot tenant={tenant} source={{ staff: member.id, image: i.id }} size={56} /> },
          { title: t("staff.quality"), render: (_, i) => (i.quality == null ? "—" : i.quality.toFixed(2)) },
          { title: t("staff.added"), render: (_, i) => when(i.created_at) },
          {
            title: t("common.actions"),
            render: (_, image) => (
              <Space>
                {image.is_primary ? <Tag color={INFO}>{t("staff.primary")}</Tag> : <Button size="small" onClick={() => primary.mutate(image.id)}>{t("staff.makePrimary")}</Button>}
                <Popconfirm title={t("staff.deletePhoto")} onConfirm={() => remove.mutate(image.id)} okText={t("common.delete")} okButtonProps={{ danger: true }}>
                  <Button size="small" danger>{t("common.delete")}</Button>
                </Popconfirm>
              </Space>
            ),
          },
        ]}
      />
    </Space>
  );
}

function RecognitionTest({ tenant }: { tenant: string }) {
  const [result, setResult] = useState<components["schemas"]["RecognitionTest"] | null>(null);
  const [error, setError] = useState<unknown>(null);
  return (
    <Space direction="vertical" className="w-full">
      <Upload.Dragger
        accept="image/jpeg,image/png"
        showUploadList={false}
        customRequest={({ file, onSuccess }) => {
          setError(null);
          setResult(null);
          void unwrap(api.POST("/v1/staff/{tenant_id}/test-recognition", { params: { path: { tenant_id: tenant } }, body: multipart(file as File) as never, bodySerializer: (body: unknown) => body as FormData }))
            .then(setResult, setError)
            .finally(() => onSuccess?.("ok"));
        }}
      >
        <p className="p-4">{t("staff.testDrop")}</p>
      </Upload.Dragger>
      <ErrorNotice error={error} />
      {result && (
        <Card size="small">
          <Typography.Paragraph>
            {t("staff.quality")} {result.quality.toFixed(2)} · {t("staff.threshold")} {result.threshold.toFixed(2)}
          </Typography.Paragraph>
          <List
            dataSource={result.scores}
            locale={{ emptyText: t("staff.noMatch") }}
            renderItem={(s) => (
              <List.Item>
                <Space>
                  {s.match ? <Tag color={GOOD}>{t("staff.match")}</Tag> : <Tag>{t("staff.noMatchTag")}</Tag>}
                  {s.display_name}
                  <Typography.Text type="secondary">{s.similarity.toFixed(3)}</Typography.Text>
                </Space>
              </List.Item>
            )}
          />
        </Card>
      )}
    </Space>
  );
}
