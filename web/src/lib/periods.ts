// Date presets of the overview and the period each is compared with (the same length, just
// before; "this week/month" against the same days of the previous one). Dates are local calendar
// dates (YYYY-MM-DD), as the report API takes them in each site's time zone.

export type Preset =
  | "today"
  | "yesterday"
  | "last7"
  | "thisWeek"
  | "lastWeek"
  | "thisMonth"
  | "lastMonth"
  | "custom";

export interface Period {
  start: string;
  end: string;
}

export function iso(d: Date): string {
  const y = d.getFullYear();
  const m = String(d.getMonth() + 1).padStart(2, "0");
  const day = String(d.getDate()).padStart(2, "0");
  return `${y}-${m}-${day}`;
}

function addDays(d: Date, days: number): Date {
  const out = new Date(d);
  out.setDate(out.getDate() + days);
  return out;
}

function mondayOf(d: Date): Date {
  return addDays(d, -((d.getDay() + 6) % 7));
}

export function presetPeriod(preset: Exclude<Preset, "custom">, today: Date): Period {
  switch (preset) {
    case "today":
      return { start: iso(today), end: iso(today) };
    case "yesterday": {
      const y = addDays(today, -1);
      return { start: iso(y), end: iso(y) };
    }
    case "last7":
      return { start: iso(addDays(today, -6)), end: iso(today) };
    case "thisWeek":
      return { start: iso(mondayOf(today)), end: iso(today) };
    case "lastWeek": {
      const monday = addDays(mondayOf(today), -7);
      return { start: iso(monday), end: iso(addDays(monday, 6)) };
    }
    case "thisMonth":
      return { start: iso(new Date(today.getFullYear(), today.getMonth(), 1)), end: iso(today) };
    case "lastMonth": {
      const first = new Date(today.getFullYear(), today.getMonth() - 1, 1);
      const last = new Date(today.getFullYear(), today.getMonth(), 0);
      return { start: iso(first), end: iso(last) };
    }
  }
}

function parse(date: string): Date {
  const [y, m, d] = date.split("-").map(Number);
  return new Date(y ?? 1970, (m ?? 1) - 1, d ?? 1);
}

/** The period a KPI is compared with: for this week/month the same span of the previous week or
 * month (to date); otherwise the same number of days just before. */
export function comparisonPeriod(period: Period, preset: Preset): Period {
  const start = parse(period.start);
  const end = parse(period.end);
  if (preset === "thisMonth" || preset === "lastMonth") {
    const s = new Date(start.getFullYear(), start.getMonth() - 1, 1);
    const lastOfPrev = new Date(start.getFullYear(), start.getMonth(), 0).getDate();
    // a whole month against the whole month before (November against all 31 days of October);
    // a month to date against the same days of the month before
    const wholeMonth = end.getDate() === new Date(end.getFullYear(), end.getMonth() + 1, 0).getDate();
    const e = new Date(s.getFullYear(), s.getMonth(), wholeMonth ? lastOfPrev : Math.min(end.getDate(), lastOfPrev));
    return { start: iso(s), end: iso(e) };
  }
  const days = Math.round((end.getTime() - start.getTime()) / 86_400_000) + 1;
  const shift = preset === "thisWeek" || preset === "lastWeek" ? 7 : days;
  return { start: iso(addDays(start, -shift)), end: iso(addDays(end, -shift)) };
}

/** Relative change, or null when there is nothing to compare with. */
export function delta(current: number | null | undefined, previous: number | null | undefined): number | null {
  if (current == null || previous == null || previous === 0) return null;
  return (current - previous) / previous;
}

/** The comparison period's bucket for each bucket shown: the same offset from each period's
 * start (days for hour/day/week buckets, calendar months for month buckets), not the same list
 * position (empty buckets are not sent, so positions differ). Keys are the API's local starts. */
export function alignComparison(
  starts: string[],
  period: Period,
  previous: Period,
  granularity: "hour" | "day" | "week" | "month",
): string[] {
  const day = (s: string) => Date.UTC(Number(s.slice(0, 4)), Number(s.slice(5, 7)) - 1, Number(s.slice(8, 10)));
  const iso = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  const months = (s: string) => Number(s.slice(0, 4)) * 12 + Number(s.slice(5, 7)) - 1;
  return starts.map((start) => {
    const rest = start.slice(10);
    if (granularity === "month") {
      const m = months(start) - months(period.start) + months(previous.start);
      return `${Math.floor(m / 12)}-${String((m % 12) + 1).padStart(2, "0")}-01${rest}`;
    }
    return `${iso(day(start) - day(period.start) + day(previous.start))}${rest}`;
  });
}
