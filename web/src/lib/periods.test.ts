import { comparisonPeriod, delta, presetPeriod } from "./periods";

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
    const last7 = presetPeriod("last7", wednesday);
    expect(comparisonPeriod(last7, "last7")).toEqual({ start: "2026-11-12", end: "2026-11-18" });
  });

  it("give no delta without a base", () => {
    expect(delta(12, 10)).toBeCloseTo(0.2);
    expect(delta(5, 0)).toBeNull();
    expect(delta(null, 3)).toBeNull();
  });
});
