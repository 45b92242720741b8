import { Alert, Modal, Typography } from "antd";

import { t } from "../i18n";

/** A key is shown once: the server keeps only its hash. */
export function SecretOnce({ secret, onClose }: { secret: string | null; onClose: () => void }) {
  return (
    <Modal open={secret !== null} title={t("keys.shownOnce")} onCancel={onClose} onOk={onClose} okText={t("keys.stored")} cancelButtonProps={{ style: { display: "none" } }}>
      <Alert type="warning" showIcon message={t("keys.copyNow")} className="mb-4" />
      <Typography.Paragraph copyable={{ text: secret ?? "" }} code data-testid="secret-once">
        {secret}
      </Typography.Paragraph>
    </Modal>
  );
}
