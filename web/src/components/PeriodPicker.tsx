import { DatePicker, Segmented, Select, Space, Typography } from "antd";

import { t } from "../i18n";
import { iso, type Period, type Preset } from "../lib/periods";

export const PRESETS: Exclude<Preset, "custom">[] = ["today", "yesterday", "last7", "thisWeek", "lastWeek", "thisMonth", "lastMonth"];

export interface SiteOption {
  id: string;
  name: string;
}

export function PeriodPicker(props: {
  preset: Preset;
  onPreset: (preset: Preset) => void;
  onCustom: (period: Period) => void;
  period: Period;
  previous: Period;
  sites: SiteOption[];
  site?: string;
  onSite: (site?: string) => void;
}) {
  return (
    <Space wrap>
      <Segmented
        value={props.preset}
        onChange={(value) => props.onPreset(value as Preset)}
        options={[...PRESETS, "custom" as const].map((p) => ({ value: p, label: t(`preset.${p}`) }))}
      />
      {props.preset === "custom" && (
        <DatePicker.RangePicker
          aria-label={t("preset.custom")}
          onChange={(range) => range?.[0] && range[1] && props.onCustom({ start: iso(range[0].toDate()), end: iso(range[1].toDate()) })}
        />
      )}
      <Select
        aria-label={t("overview.sites")}
        className="min-w-48"
        allowClear
        placeholder={t("overview.allSites")}
        value={props.site}
        onChange={props.onSite}
        options={props.sites.map((s) => ({ value: s.id, label: s.name }))}
      />
      <Typography.Text type="secondary">
        {props.period.start} – {props.period.end} {t("overview.vs")} {props.previous.start} – {props.previous.end}
      </Typography.Text>
    </Space>
  );
}
