import { Alert, Button, Card, Form, Input, Typography } from "antd";
import { useState } from "react";
import { useNavigate, useSearchParams } from "react-router-dom";

import { fromGrant, saveSession, type TokenGrant } from "../auth/session";
import { t } from "../i18n";

export default function SignIn() {
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const next = params.get("next");

  async function submit(values: { email: string; password: string }) {
    setBusy(true);
    setError(null);
    try {
      const response = await fetch("/v1/auth/token", {
        method: "POST",
        headers: { "content-type": "application/json" },
        credentials: "same-origin",
        // the refresh token comes back as an HttpOnly cookie, never to script
        body: JSON.stringify({ grant_type: "password", refresh_cookie: true, ...values }),
      });
      if (!response.ok) {
        setError(response.status === 429 ? t("signIn.tooMany") : t("signIn.failed"));
        return;
      }
      saveSession(fromGrant((await response.json()) as TokenGrant));
      navigate(next && next.startsWith("/") && !next.startsWith("//") ? next : "/overview", {
        replace: true,
      });
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="flex min-h-screen items-center justify-center p-4">
      <Card className="w-full max-w-sm">
        <Typography.Title level={2}>{t("signIn.title")}</Typography.Title>
        {next && !error && <Alert className="mb-4" type="info" message={t("signIn.expired")} />}
        {error && <Alert className="mb-4" type="error" message={error} role="alert" />}
        <Form layout="vertical" onFinish={submit} requiredMark={false}>
          <Form.Item label={t("signIn.email")} name="email" rules={[{ required: true, type: "email" }]}>
            <Input autoComplete="username" autoFocus />
          </Form.Item>
          <Form.Item label={t("signIn.password")} name="password" rules={[{ required: true }]}>
            <Input.Password autoComplete="current-password" />
          </Form.Item>
          <Button type="primary" htmlType="submit" loading={busy} block>
            {t("signIn.submit")}
          </Button>
        </Form>
      </Card>
    </main>
  );
}
