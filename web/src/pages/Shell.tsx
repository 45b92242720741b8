import { Button, Layout, Menu, Switch, Typography } from "antd";
import { Outlet, useLocation, useNavigate } from "react-router-dom";

import { saveSession } from "../auth/session";
import { t } from "../i18n";

export default function Shell({ dark, onDark }: { dark: boolean; onDark: (dark: boolean) => void }) {
  const navigate = useNavigate();
  const location = useLocation();
  return (
    <Layout className="min-h-screen">
      <Layout.Header className="flex items-center gap-4">
        <Typography.Text strong className="text-lg !text-white">
          {t("app.name")}
        </Typography.Text>
        <Menu
          theme="dark"
          mode="horizontal"
          className="flex-1"
          selectedKeys={[location.pathname]}
          items={[{ key: "/overview", label: t("nav.overview") }]}
          onClick={({ key }) => navigate(key)}
        />
        <Switch checked={dark} onChange={onDark} aria-label={t("theme.dark")} />
        <Button onClick={() => saveSession(null)}>{t("nav.signOut")}</Button>
      </Layout.Header>
      <Layout.Content className="p-6">
        <Outlet />
      </Layout.Content>
    </Layout>
  );
}
