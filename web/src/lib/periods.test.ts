import { alignComparison, comparisonPeriod, delta, presetPeriod } from "./periods";

const wednesday = new Date(2026, 10, 25); // 2026-11-25

describe("date presets", () => {
  it("give the calendar periods a store owner expects", () => {
    expect(presetPeriod("today", wednesday)).toEqual({ start: "2026-11-25", end: "2026-11-25" });
    expect(presetPeriod("yesterday", wednesday)).toEqual({ start: "2026-11-24", end: "2026-11-24" });
    expect(presetPeriod("last7", wednesday)).toEqual({ start: "2026-11-19", end: "2026-11-25" });
    expect(presetPeriod("thisWeek", wednesday)).toEqual({ start: "2026-11-23", end: "2026-11-25" });
    expect(presetPeriod("lastWeek", wednesday)).toEqual({ start: "2026-11-16", end: "2026-11-22" });
    expect(presetPeriod("thisMonth", wednesday)).toEqual({ start: "2026-11-01", end: "2026-11-25" });
    expect(presetPeriod("lastMonth", wednesday)).toEqual({ start: "2026-10-01", end: "2026-10-31" });
  });

  it("compare like with like", () => {
    const week = presetPeriod("thisWeek", wednesday);
    expect(comparisonPeriod(week, "thisWeek")).toEqual({ start: "2026-11-16", end: "2026-11-18" });
    const month = presetPeriod("thisMonth", new Date(2026, 2, 31));
    // March 1-31 against February 1-28: the comparison never runs past the month's end
    expect(comparisonPeriod(month, "thisMonth")).toEqual({ start: "2026-02-01", end: "2026-02-28" });
    // last month (November, 30 days) against the whole of October — its 31st included
    const november = presetPeriod("lastMonth", new Date(2026, 11, 6));
    expect(comparisonPeriod(november, "lastMonth")).toEqual({ start: "2026-10-01", end: "2026-10-31" });
    // and October against all of September; a month to date against the same days before
    expect(comparisonPeriod({ start: "2026-10-01", end: "2026-10-31" }, "lastMonth")).toEqual({ start: "2026-09-01", end: "2026-09-30" });
    expect(comparisonPeriod({ start: "2026-12-01", end: "2026-12-06" }, "thisMonth")).toEqual({ start: "2026-11-01", end: "2026-11-06" });
    const last7 = presetPeriod("last7", wednesday);
    expect(comparisonPeriod(last7, "last7")).toEqual({ start: "2026-11-12", end: "2026-11-18" });
  });

  it("give no delta without a base", () => {
    expect(delta(12, 10)).toBeCloseTo(0.2);
    expect(delta(5, 0)).toBeNull();
    expect(delta(null, 3)).toBeNull();
  });
});

describe("alignComparison", () => {
  it("pairs buckets by offset from each period's start, not by list position", () => {
    const period = { start: "2026-11-24", end: "2026-11-30" };
    const previous = { start: "2026-11-17", end: "2026-11-23" };
    expect(alignComparison(["2026-11-28T00:00:00", "2026-11-30T00:00:00"], period, previous, "day")).toEqual(["2026-11-21T00:00:00", "2026-11-23T00:00:00"]);
    expect(alignComparison(["2026-11-25T13:00:00"], period, previous, "hour")).toEqual(["2026-11-18T13:00:00"]);
  });
  it("moves month buckets by calendar months", () => {
    const period = { start: "2026-01-01", end: "2026-03-31" };
    const previous = { start: "2025-10-01", end: "2025-12-31" };
    expect(alignComparison(["2026-01-01T00:00:00", "2026-03-01T00:00:00"], period, previous, "month")).toEqual(["2025-10-01T00:00:00", "2025-12-01T00:00:00"]);
  });
});
