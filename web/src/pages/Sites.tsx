import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Button, Card, Form, Input, InputNumber, Modal, Popconfirm, Select, Space, Switch, Table, Tag, Typography } from "antd";
import { useState } from "react";

import { api } from "../api/client";
import { unwrap } from "../api/result";
import type { components } from "../api/schema";
import { ErrorNotice } from "../components/ErrorNotice";
import { SecretOnce } from "../components/SecretOnce";
import { GOOD } from "../components/tags";
import { t } from "../i18n";
import { showFieldErrors, unplaced } from "../lib/forms";
import { useSites, when, type Site } from "../lib/hooks";
import { isAdmin, useTenant } from "../lib/tenant";

type Camera = components["schemas"]["CameraOut"];
type SiteForm = { name: string; timezone: string; visit_window_s: number; address?: string | null };
type CameraForm = { name: string; kind: "rtsp" | "usb" | "file" | "folder"; enabled: boolean };

const ZONES = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : ["UTC"];


export default function Sites() {
  const tenant = useTenant() ?? "";
  const admin = isAdmin();
  const client = useQueryClient();
  const sites = useSites(tenant);
  const [editing, setEditing] = useState<Site | "new" | null>(null);
  const [form] = Form.useForm<SiteForm>();
  const save = useMutation({
    mutationFn: async (values: SiteForm) => {
      const body = { ...values, address: values.address || null };
      if (editing === "new") return unwrap(api.POST("/v1/tenants/{tenant_id}/sites", { params: { path: { tenant_id: tenant } }, body }));
      return unwrap(api.PATCH("/v1/tenants/{tenant_id}/sites/{site_id}", { params: { path: { tenant_id: tenant, site_id: (editing as Site).id } }, body }));
    },
    onSuccess: () => {
      setEditing(null);
      void client.invalidateQueries({ queryKey: ["sites", tenant] });
    },
    onError: (error) => showFieldErrors(form, error),
  });
  const remove = useMutation({
    mutationFn: (site: Site) => unwrap(api.DELETE("/v1/tenants/{tenant_id}/sites/{site_id}", { params: { path: { tenant_id: tenant, site_id: site.id } } })),
    onSuccess: () => client.invalidateQueries({ queryKey: ["sites", tenant] }),
  });

  function open(site: Site | "new") {
    setEditing(site);
    save.reset();
    form.resetFields();
    form.setFieldsValue(site === "new" ? { name: "", timezone: Intl.DateTimeFormat().resolvedOptions().timeZone, visit_window_s: 1800, address: "" } : site);
  }

  return (
    <Space direction="vertical" size="large" className="w-full">
      <Space className="w-full justify-between">
        <Typography.Title level={2}>{t("sites.title")}</Typography.Title>
        {admin && (
          <Button type="primary" onClick={() => open("new")}>
            {t("sites.add")}
          </Button>
        )}
      </Space>
      <ErrorNotice error={sites.error ?? remove.error} />
      <Table
        rowKey="id"
        loading={sites.isLoading}
        dataSource={sites.data ?? []}
        pagination={false}
        expandable={{ expandedRowRender: (site) => <Cameras tenant={tenant} site={site} /> }}
        columns={[
          { title: t("sites.name"), dataIndex: "name" },
          { title: t("sites.timezone"), dataIndex: "timezone" },
          { title: t("sites.visitWindow"), render: (_, s) => `${Math.round(s.visit_window_s / 60)} min` },
          { title: t("sites.address"), render: (_, s) => s.address ?? "—" },
          {
            title: t("common.actions"),
            render: (_, site) => (
              <Space>
                <Button size="small" onClick={() => open(site)}>
                  {t("common.edit")}
                </Button>
                {admin && (
                  <Popconfirm title={t("sites.deleteConfirm")} onConfirm={() => remove.mutate(site)} okText={t("common.delete")} okButtonProps={{ danger: true }}>
                    <Button size="small" danger>
                      {t("common.delete")}
                    </Button>
                  </Popconfirm>
                )}
              </Space>
            ),
          },
        ]}
      />
      <Modal open={editing !== null} title={editing === "new" ? t("sites.add") : t("sites.edit")} onCancel={() => setEditing(null)} onOk={() => form.submit()} okText={t("common.save")} confirmLoading={save.isPending} destroyOnClose>
        <ErrorNotice error={unplaced(save.error)} />
        <Form form={form} layout="vertical" onFinish={(values) => save.mutate(values)} requiredMark={false}>
          <Form.Item label={t("sites.name")} name="name" rules={[{ required: true, max: 200 }]}>
            <Input />
          </Form.Item>
          <Form.Item label={t("sites.timezone")} name="timezone" rules={[{ required: true }]} extra={t("sites.timezoneHelp")}>
            <Select showSearch options={ZONES.map((z) => ({ value: z, label: z }))} />
          </Form.Item>
          <Form.Item label={t("sites.visitWindowSeconds")} name="visit_window_s" rules={[{ required: true }]} extra={t("sites.visitWindowHelp")}>
            <InputNumber min={60} max={86400} className="w-full" />
          </Form.Item>
          <Form.Item label={t("sites.address")} name="address" rules={[{ max: 500 }]}>
            <Input />
          </Form.Item>
        </Form>
      </Modal>
      {admin && <TenantSettings tenant={tenant} />}
    </Space>
  );
}

function Cameras({ tenant, site }: { tenant: string; site: Site }) {
  const client = useQueryClient();
  const key = ["cameras", tenant, site.id];
  const cameras = useQuery({
    queryKey: key,
    queryFn: async () => (await unwrap(api.GET("/v1/tenants/{tenant_id}/sites/{site_id}/cameras", { params: { path: { tenant_id: tenant, site_id: site.id }, query: { limit: 200 } } }))).items,
  });
  const [editing, setEditing] = useState<Camera | "new" | null>(null);
  const [secret, setSecret] = useState<string | null>(null);
  const [form] = Form.useForm<CameraForm>();
  const save = useMutation({
    mutationFn: async (body: CameraForm) => {
      const path = { tenant_id: tenant, site_id: site.id };
      if (editing === "new") return unwrap(api.POST("/v1/tenants/{tenant_id}/sites/{site_id}/cameras", { params: { path }, body }));
      return unwrap(api.PATCH("/v1/tenants/{tenant_id}/cameras/{camera_id}", { params: { path: { tenant_id: tenant, camera_id: (editing as Camera).id } }, body }));
    },
    onSuccess: () => {
      setEditing(null);
      void client.invalidateQueries({ queryKey: key });
    },
    onError: (error) => showFieldErrors(form, error),
  });
  const remove = useMutation({
    mutationFn: (camera: Camera) => unwrap(api.DELETE("/v1/tenants/{tenant_id}/cameras/{camera_id}", { params: { path: { tenant_id: tenant, camera_id: camera.id } } })),
    onSuccess: () => client.invalidateQueries({ queryKey: key }),
  });
  const workerKey = useMutation({
    mutationFn: (camera: Camera) =>
      unwrap(
        api.POST("/v1/tenants/{tenant_id}/api-keys", {
          params: { path: { tenant_id: tenant } },
          body: { name: `edge ${site.name} / ${camera.name}`.slice(0, 200), role: "worker", site_ids: [site.id], camera_ids: [camera.id] },
        }),
      ),
    onSuccess: (created) => setSecret(created.api_key),
  });
  return (
    <Card size="small" title={`${t("cameras.title")} — ${site.name}`} extra={<Button size="small" onClick={() => { setEditing("new"); form.setFieldsValue({ name: "", kind: "rtsp", enabled: true }); }}>{t("cameras.add")}</Button>}>
      <ErrorNotice error={cameras.error ?? remove.error ?? workerKey.error} />
      <Table
        rowKey="id"
        size="small"
        pagination={false}
        dataSource={cameras.data ?? []}
        columns={[
          { title: t("cameras.name"), dataIndex: "name" },
          { title: t("cameras.kind"), dataIndex: "kind" },
          { title: t("cameras.enabled"), render: (_, c) => (c.enabled ? <Tag color={GOOD}>{t("common.yes")}</Tag> : <Tag>{t("common.no")}</Tag>) },
          { title: t("cameras.lastSighting"), render: (_, c) => when(c.last_sighting_at) },
          {
            title: t("common.actions"),
            render: (_, camera) => (
              <Space>
                <Button size="small" onClick={() => { setEditing(camera); form.setFieldsValue(camera as CameraForm); }}>{t("common.edit")}</Button>
                <Button size="small" onClick={() => workerKey.mutate(camera)} loading={workerKey.isPending}>{t("cameras.workerKey")}</Button>
                <Popconfirm title={t("cameras.deleteConfirm")} onConfirm={() => remove.mutate(camera)} okText={t("common.delete")} okButtonProps={{ danger: true }}>
                  <Button size="small" danger>{t("common.delete")}</Button>
                </Popconfirm>
              </Space>
            ),
          },
        ]}
      />
      <Modal open={editing !== null} title={editing === "new" ? t("cameras.add") : t("cameras.edit")} onCancel={() => setEditing(null)} onOk={() => form.submit()} okText={t("common.save")} confirmLoading={save.isPending} destroyOnClose>
        <Form form={form} layout="vertical" onFinish={(values) => save.mutate(values)} requiredMark={false}>
          <Form.Item label={t("cameras.name")} name="name" rules={[{ required: true, max: 200 }]}><Input /></Form.Item>
          <Form.Item label={t("cameras.kind")} name="kind"><Select options={["rtsp", "usb", "file", "folder"].map((k) => ({ value: k, label: k }))} /></Form.Item>
          <Form.Item label={t("cameras.enabled")} name="enabled" valuePropName="checked"><Switch /></Form.Item>
        </Form>
      </Modal>
      <SecretOnce secret={secret} onClose={() => setSecret(null)} />
    </Card>
  );
}

function TenantSettings({ tenant }: { tenant: string }) {
  const client = useQueryClient();
  const [form] = Form.useForm<{ raw_retention_days: number; demographics_enabled: boolean }>();
  const current = useQuery({
    queryKey: ["tenant", tenant],
    queryFn: () => unwrap(api.GET("/v1/tenants/{tenant_id}", { params: { path: { tenant_id: tenant } } })),
  });
  const save = useMutation({
    mutationFn: (body: { raw_retention_days: number; demographics_enabled: boolean }) => unwrap(api.PATCH("/v1/tenants/{tenant_id}", { params: { path: { tenant_id: tenant } }, body })),
    onSuccess: () => client.invalidateQueries({ queryKey: ["tenant", tenant] }),
    onError: (error) => showFieldErrors(form, error),
  });
  if (!current.data) return <ErrorNotice error={current.error} />;
  return (
    <Card title={t("tenant.settings")}>
      <Form form={form} layout="inline" initialValues={current.data} onFinish={(values) => save.mutate(values)}>
        <Form.Item label={t("tenant.retention")} name="raw_retention_days" rules={[{ required: true }]}>
          <InputNumber min={1} max={3650} />
        </Form.Item>
        <Form.Item label={t("tenant.demographics")} name="demographics_enabled" valuePropName="checked">
          <Switch />
        </Form.Item>
        <Button htmlType="submit" loading={save.isPending}>{t("common.save")}</Button>
        {save.isSuccess && <Typography.Text type="success">{t("common.saved")}</Typography.Text>}
      </Form>
    </Card>
  );
}
