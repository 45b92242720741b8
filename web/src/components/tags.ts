// Solid tag colours with white text at ≥ 4.5:1 (Ant Design's light "green"/"blue" presets miss AA
// contrast; axe checks every screen in the browser tests).
export const GOOD = "#237804";
export const INFO = "#0958d9";
