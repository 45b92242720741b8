// Every string the console shows, by key (English first; another language is another table).
const en = {
  "app.name": "visitlens",
  "nav.overview": "Overview",
  "nav.signOut": "Sign out",
  "signIn.title": "Sign in",
  "signIn.email": "Email",
  "signIn.password": "Password",
  "signIn.submit": "Sign in",
  "signIn.failed": "Wrong email or password",
  "signIn.expired": "Your session ended; sign in again to continue",
  "error.forbidden": "You are signed in, but your role may not see this",
  "overview.title": "Overview",
  "overview.sites": "Sites",
  "overview.allSites": "All sites",
  "overview.visits": "Visits",
  "overview.unique": "Unique visitors",
  "overview.new": "New",
  "overview.returning": "Returning",
  "overview.dwell": "Average dwell",
  "overview.vs": "vs",
  "overview.freshness": "Statistics include visits up to",
  "overview.pending": "hours still being aggregated",
  "overview.league": "Sites",
  "preset.today": "Today",
  "preset.yesterday": "Yesterday",
  "preset.last7": "Last 7 days",
  "preset.thisWeek": "This week",
  "preset.lastWeek": "Last week",
  "preset.thisMonth": "This month",
  "preset.lastMonth": "Last month",
  "preset.custom": "Custom",
  "theme.dark": "Dark",
} as const;

export type MessageKey = keyof typeof en;

export function t(key: MessageKey): string {
  return en[key];
}
