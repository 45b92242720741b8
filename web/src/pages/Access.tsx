import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Button, DatePicker, Form, Input, Modal, Popconfirm, Select, Space, Switch, Table, Tabs, Tag, Typography } from "antd";
import { useState } from "react";

import { api } from "../api/client";
import { unwrap } from "../api/result";
import type { components } from "../api/schema";
import { ErrorNotice } from "../components/ErrorNotice";
import { SecretOnce } from "../components/SecretOnce";
import { t } from "../i18n";
import { showFieldErrors, unplaced } from "../lib/forms";
import { siteName, useSites, when } from "../lib/hooks";
import { isAdmin, useTenant } from "../lib/tenant";

type User = components["schemas"]["UserOut"];
type Key = components["schemas"]["ApiKeyOut"];
type Role = "tenant_admin" | "site_manager" | "worker";


export default function Access() {
  const admin = isAdmin();
  return (
    <Space direction="vertical" size="large" className="w-full">
      <Typography.Title level={2}>{t("access.title")}</Typography.Title>
      <Tabs
        items={[
          ...(admin ? [{ key: "users", label: t("access.users"), children: <Users /> }] : []),
          { key: "keys", label: t("access.keys"), children: <Keys /> },
        ]}
      />
    </Space>
  );
}

function Users() {
  const tenant = useTenant() ?? "";
  const client = useQueryClient();
  const sites = useSites(tenant);
  const users = useQuery({ queryKey: ["users", tenant], queryFn: async () => (await unwrap(api.GET("/v1/tenants/{tenant_id}/users", { params: { path: { tenant_id: tenant }, query: { limit: 200 } } }))).items });
  const [adding, setAdding] = useState(false);
  const [form] = Form.useForm<{ email: string; display_name: string; role: Role; site_ids: string[]; password: string }>();
  const role = Form.useWatch("role", form);
  const refresh = () => client.invalidateQueries({ queryKey: ["users", tenant] });
  const create = useMutation({
    mutationFn: (body: { email: string; display_name: string; role: Role; site_ids: string[]; password: string }) =>
      unwrap(api.POST("/v1/tenants/{tenant_id}/users", { params: { path: { tenant_id: tenant } }, body: { ...body, site_ids: body.site_ids ?? [] } })),
    onSuccess: () => {
      setAdding(false);
      void refresh();
    },
    onError: (error) => showFieldErrors(form, error),
  });
  const toggle = useMutation({
    mutationFn: (user: User) => unwrap(api.PATCH("/v1/tenants/{tenant_id}/users/{user_id}", { params: { path: { tenant_id: tenant, user_id: user.id } }, body: { disabled: !user.disabled } })),
    onSuccess: refresh,
  });
  const remove = useMutation({
    mutationFn: (user: User) => unwrap(api.DELETE("/v1/tenants/{tenant_id}/users/{user_id}", { params: { path: { tenant_id: tenant, user_id: user.id } } })),
    onSuccess: refresh,
  });
  return (
    <Space direction="vertical" className="w-full">
      <Button type="primary" onClick={() => { form.resetFields(); create.reset(); setAdding(true); }}>{t("access.addUser")}</Button>
      <ErrorNotice error={users.error ?? toggle.error ?? remove.error} />
      <Table
        rowKey="id"
        pagination={false}
        dataSource={users.data ?? []}
        columns={[
          { title: t("signIn.email"), dataIndex: "email" },
          { title: t("access.name"), dataIndex: "display_name" },
          { title: t("access.role"), render: (_, u) => <Tag>{t(`role.${u.role}`)}</Tag> },
          { title: t("overview.sites"), render: (_, u) => (u.site_ids.length ? u.site_ids.map((s) => siteName(sites.data, s)).join(", ") : t("staff.everySite")) },
          { title: t("access.lastLogin"), render: (_, u) => when(u.last_login_at) },
          { title: t("access.active"), render: (_, u) => <Switch aria-label={`${t("access.active")} ${u.email}`} checked={!u.disabled} onChange={() => toggle.mutate(u)} /> },
          {
            title: t("common.actions"),
            render: (_, user) => (
              <Popconfirm title={t("access.deleteUser")} onConfirm={() => remove.mutate(user)} okText={t("common.delete")} okButtonProps={{ danger: true }}>
                <Button size="small" danger>{t("common.delete")}</Button>
              </Popconfirm>
            ),
          },
        ]}
      />
      <Modal open={adding} title={t("access.addUser")} onCancel={() => setAdding(false)} onOk={() => form.submit()} okText={t("common.save")} confirmLoading={create.isPending} destroyOnClose>
        <ErrorNotice error={unplaced(create.error)} />
        <Form form={form} layout="vertical" requiredMark={false} initialValues={{ role: "site_manager", site_ids: [] }} onFinish={(values) => create.mutate(values)}>
          <Form.Item label={t("signIn.email")} name="email" rules={[{ required: true, type: "email" }]}><Input autoComplete="off" /></Form.Item>
          <Form.Item label={t("access.name")} name="display_name" rules={[{ max: 200 }]}><Input /></Form.Item>
          <Form.Item label={t("access.role")} name="role"><Select options={(["tenant_admin", "site_manager"] as const).map((r) => ({ value: r, label: t(`role.${r}`) }))} /></Form.Item>
          {role !== "tenant_admin" && (
            <Form.Item label={t("overview.sites")} name="site_ids" rules={[{ required: true, type: "array", min: 1 }]}>
              <Select mode="multiple" options={(sites.data ?? []).map((s) => ({ value: s.id, label: s.name }))} />
            </Form.Item>
          )}
          <Form.Item label={t("signIn.password")} name="password" rules={[{ required: true, min: 12 }]} extra={t("access.passwordHelp")}><Input.Password autoComplete="new-password" /></Form.Item>
        </Form>
      </Modal>
    </Space>
  );
}

function Keys() {
  const tenant = useTenant() ?? "";
  const client = useQueryClient();
  const sites = useSites(tenant);
  const keys = useQuery({ queryKey: ["api-keys", tenant], queryFn: async () => (await unwrap(api.GET("/v1/tenants/{tenant_id}/api-keys", { params: { path: { tenant_id: tenant }, query: { limit: 200 } } }))).items });
  const [adding, setAdding] = useState(false);
  const [secret, setSecret] = useState<string | null>(null);
  const [form] = Form.useForm<{ name: string; role: Role; site_ids: string[]; expires_at?: { toISOString: () => string } }>();
  const refresh = () => client.invalidateQueries({ queryKey: ["api-keys", tenant] });
  const create = useMutation({
    mutationFn: (values: { name: string; role: Role; site_ids: string[]; expires_at?: { toISOString: () => string } }) =>
      unwrap(
        api.POST("/v1/tenants/{tenant_id}/api-keys", {
          params: { path: { tenant_id: tenant } },
          body: { name: values.name, role: values.role, site_ids: values.site_ids ?? [], camera_ids: [], expires_at: values.expires_at ? values.expires_at.toISOString() : null },
        }),
      ),
    onSuccess: (created) => {
      setAdding(false);
      setSecret(created.api_key);
      void refresh();
    },
    onError: (error) => showFieldErrors(form, error),
  });
  const revoke = useMutation({
    mutationFn: (key: Key) => unwrap(api.DELETE("/v1/tenants/{tenant_id}/api-keys/{key_id}", { params: { path: { tenant_id: tenant, key_id: key.id } } })),
    onSuccess: refresh,
  });
  return (
    <Space direction="vertical" className="w-full">
      <Button type="primary" onClick={() => { form.resetFields(); create.reset(); setAdding(true); }}>{t("access.addKey")}</Button>
      <ErrorNotice error={keys.error ?? revoke.error} />
      <Table
        rowKey="id"
        pagination={false}
        dataSource={keys.data ?? []}
        columns={[
          { title: t("access.name"), dataIndex: "name" },
          { title: t("access.prefix"), render: (_, k) => <Typography.Text code>{k.prefix}</Typography.Text> },
          { title: t("access.role"), render: (_, k) => <Tag>{t(`role.${k.role}`)}</Tag> },
          { title: t("overview.sites"), render: (_, k) => (k.site_ids.length ? k.site_ids.map((s) => siteName(sites.data, s)).join(", ") : t("staff.everySite")) },
          { title: t("access.lastUsed"), render: (_, k) => when(k.last_used_at) },
          { title: t("access.expires"), render: (_, k) => when(k.expires_at) },
          {
            title: t("common.actions"),
            render: (_, key) =>
              key.revoked_at ? (
                <Tag>{t("access.revoked")}</Tag>
              ) : (
                <Popconfirm title={t("access.revokeConfirm")} onConfirm={() => revoke.mutate(key)} okText={t("access.revoke")} okButtonProps={{ danger: true }}>
                  <Button size="small" danger>{t("access.revoke")}</Button>
                </Popconfirm>
              ),
          },
        ]}
      />
      <Modal open={adding} title={t("access.addKey")} onCancel={() => setAdding(false)} onOk={() => form.submit()} okText={t("common.save")} confirmLoading={create.isPending} destroyOnClose>
        <ErrorNotice error={unplaced(create.error)} />
        <Form form={form} layout="vertical" requiredMark={false} initialValues={{ role: "worker", site_ids: [] }} onFinish={(values) => create.mutate(values)}>
          <Form.Item label={t("access.name")} name="name" rules={[{ required: true, max: 200 }]}><Input /></Form.Item>
          <Form.Item label={t("access.role")} name="role"><Select options={(["worker", "site_manager", "tenant_admin"] as const).map((r) => ({ value: r, label: t(`role.${r}`) }))} /></Form.Item>
          <Form.Item label={t("overview.sites")} name="site_ids"><Select mode="multiple" options={(sites.data ?? []).map((s) => ({ value: s.id, label: s.name }))} /></Form.Item>
          <Form.Item label={t("access.expires")} name="expires_at"><DatePicker showTime /></Form.Item>
        </Form>
      </Modal>
      <SecretOnce secret={secret} onClose={() => setSecret(null)} />
    </Space>
  );
}
