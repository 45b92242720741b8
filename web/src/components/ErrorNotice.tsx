import { Alert, Result } from "antd";

import { ApiError } from "../api/result";
import { t } from "../i18n";

/** 403 is "signed in, but not allowed"; 404 "not there"; the rest say what the API said. */
export function ErrorNotice({ error }: { error: unknown }) {
  if (!error) return null;
  if (error instanceof ApiError && error.status === 403)
    return <Result status="403" title={t("error.forbiddenTitle")} subTitle={t("error.forbidden")} />;
  if (error instanceof ApiError && error.status === 404) return <Alert type="warning" showIcon message={t("error.notFound")} />;
  return <Alert type="error" showIcon role="alert" message={error instanceof Error ? error.message : String(error)} />;
}

export function Forbidden() {
  return <Result status="403" title={t("error.forbiddenTitle")} subTitle={t("error.forbidden")} />;
}
