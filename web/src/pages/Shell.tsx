import { useQuery } from "@tanstack/react-query";
import { Button, Layout, Menu, Select, Space, Switch, Tag, Typography } from "antd";
import { Outlet, useLocation, useNavigate } from "react-router-dom";

import { api, signOut } from "../api/client";
import { unwrap } from "../api/result";
import { currentSession } from "../auth/session";
import { t, type MessageKey } from "../i18n";
import { chooseTenant, type Role, useTenant } from "../lib/tenant";
import { SCREENS, type Screen } from "../screens";

const NAV: [Screen, MessageKey][] = [
  ["overview", "nav.overview"],
  ["reports", "nav.reports"],
  ["monitor", "nav.monitor"],
  ["sites", "nav.sites"],
  ["staff", "nav.staff"],
  ["customers", "nav.customers"],
  ["access", "nav.access"],
  ["audit", "nav.audit"],
];

function TenantChooser() {
  const tenant = useTenant();
  const tenants = useQuery({
    queryKey: ["tenants"],
    queryFn: async () => (await unwrap(api.GET("/v1/tenants", { params: { query: { limit: 200 } } }))).items,
  });
  return (
    <Select
      aria-label={t("nav.tenant")}
      className="min-w-48"
      placeholder={t("nav.chooseTenant")}
      value={tenant ?? undefined}
      onChange={(value: string) => chooseTenant(value)}
      options={(tenants.data ?? []).map((x) => ({ value: x.id, label: x.name }))}
    />
  );
}

export default function Shell({ dark, onDark }: { dark: boolean; onDark: (dark: boolean) => void }) {
  const navigate = useNavigate();
  const location = useLocation();
  const role = (currentSession()?.role ?? "") as Role;
  const items = NAV.filter(([screen]) => SCREENS[screen].includes(role)).map(([screen, label]) => ({ key: `/${screen}`, label: t(label) }));
  const selected = `/${location.pathname.split("/")[1] ?? ""}`;
  return (
    <Layout className="min-h-screen">
      <Layout.Sider breakpoint="lg" collapsedWidth={0} width={200}>
        <nav aria-label={t("app.name")}>
          <Typography.Text strong className="block px-6 py-4 text-lg !text-white">
            {t("app.name")}
          </Typography.Text>
          <Menu theme="dark" mode="inline" selectedKeys={[selected]} items={items} onClick={({ key }) => navigate(key)} />
        </nav>
      </Layout.Sider>
      <Layout>
        <Layout.Header className="flex items-center justify-end gap-4 !bg-transparent">
          <Space wrap>
            {role === "system_admin" && <TenantChooser />}
            <Tag>{role ? t(`role.${role}`) : ""}</Tag>
            <Switch checked={dark} onChange={onDark} aria-label={t("theme.dark")} />
            <Button
              onClick={() => {
                chooseTenant(null);
                void signOut();
              }}
            >
              {t("nav.signOut")}
            </Button>
          </Space>
        </Layout.Header>
        <Layout.Content className="px-6 pb-6">
          <main>
            <Outlet />
          </main>
        </Layout.Content>
      </Layout>
    </Layout>
  );
}
