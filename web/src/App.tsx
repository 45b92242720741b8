import { Alert, ConfigProvider, Spin, theme } from "antd";
import { lazy, Suspense, useEffect, useState } from "react";
import { Navigate, Route, Routes, useLocation } from "react-router-dom";

import { restoreSession } from "./api/client";
import { currentSession, mayRestore, onSessionChange, type Session } from "./auth/session";
import { Forbidden } from "./components/ErrorNotice";
import { t } from "./i18n";
import { SCREENS, type Screen } from "./screens";
import { type Role, useTenant } from "./lib/tenant";

const SignIn = lazy(() => import("./pages/SignIn"));
const Shell = lazy(() => import("./pages/Shell"));
const Overview = lazy(() => import("./pages/Overview"));
const Reports = lazy(() => import("./pages/Reports"));
const Monitor = lazy(() => import("./pages/Monitor"));
const Sites = lazy(() => import("./pages/Sites"));
const Staff = lazy(() => import("./pages/Staff"));
const Customers = lazy(() => import("./pages/Customers"));
const Person = lazy(() => import("./pages/Person"));
const Duplicates = lazy(() => import("./pages/Duplicates"));
const Access = lazy(() => import("./pages/Access"));
const Audit = lazy(() => import("./pages/Audit"));

// Ant Design's defaults miss WCAG AA contrast (white on #1677ff is 4.1:1, secondary text 45 %
// black is 2.8:1): darker primary and stronger secondary text, checked by axe in the browser tests.
const LIGHT = {
  colorPrimary: "#0958d9",
  colorLink: "#0958d9",
  colorError: "#cf1322",
  colorSuccess: "#237804",
  colorSuccessBg: "#f6ffed",
  colorSuccessBorder: "#b7eb8f",
  colorTextSecondary: "rgba(0, 0, 0, 0.68)",
  colorTextDescription: "rgba(0, 0, 0, 0.68)",
  colorTextTertiary: "rgba(0, 0, 0, 0.62)",
  colorTextPlaceholder: "rgba(0, 0, 0, 0.58)",
};
const DARK = {
  colorPrimary: "#3c89e8",
  colorLink: "#69b1ff",
  colorError: "#ff7875",
  colorTextSecondary: "rgba(255, 255, 255, 0.72)",
  colorTextDescription: "rgba(255, 255, 255, 0.72)",
  colorTextTertiary: "rgba(255, 255, 255, 0.66)",
  colorTextPlaceholder: "rgba(255, 255, 255, 0.6)",
};

/** A screen the role may not open says so (403), rather than pretending it is not there; a system
 * administrator first chooses the tenant to act on. */
function Guard({ screen, session, children }: { screen: Screen; session: Session | null; children: JSX.Element }) {
  const tenant = useTenant();
  if (!session || !SCREENS[screen].includes(session.role as Role)) return <Forbidden />;
  if (!tenant) return <Alert type="info" showIcon message={t("error.chooseTenant")} />;
  // a new tenant is a new page: nothing of the previous tenant's state survives
  return <div key={tenant}>{children}</div>;
}

/** The session, and whether it is still being restored from the refresh cookie (a reload or a
 * new tab: the access token lives in memory only). */
function useSession(): { session: Session | null; restoring: boolean } {
  const [session, setSession] = useState(currentSession);
  const [restoring, setRestoring] = useState(() => currentSession() === null && mayRestore());
  useEffect(() => onSessionChange(setSession), []);
  useEffect(() => {
    if (restoring) void restoreSession().finally(() => setRestoring(false));
  }, [restoring]);
  return { session, restoring };
}

export function App() {
  const { session, restoring } = useSession();
  const location = useLocation();
  const [dark, setDark] = useState(() => localStorage.getItem("visitlens.theme") === "dark");
  useEffect(() => {
    localStorage.setItem("visitlens.theme", dark ? "dark" : "light");
    document.documentElement.classList.toggle("dark", dark);
  }, [dark]);

  const back = `${location.pathname}${location.search}`;
  if (restoring) return <Spin className="m-8" aria-label={t("app.loading")} />;
  return (
    <ConfigProvider theme={{ algorithm: dark ? theme.darkAlgorithm : theme.defaultAlgorithm, token: dark ? DARK : LIGHT }}>
      <Suspense fallback={<Spin className="m-8" />}>
        <Routes>
          <Route path="/sign-in" element={<SignIn />} />
          <Route
            element={
              session ? (
                <Shell dark={dark} onDark={setDark} />
              ) : (
                // expiry or revocation: back to sign-in, keeping the page to return to
                <Navigate to={`/sign-in?next=${encodeURIComponent(back)}`} replace />
              )
            }
          >
            <Route index element={<Navigate to="/overview" replace />} />
            <Route path="/overview" element={<Guard screen="overview" session={session}><Overview /></Guard>} />
            <Route path="/reports" element={<Guard screen="reports" session={session}><Reports /></Guard>} />
            <Route path="/monitor" element={<Guard screen="monitor" session={session}><Monitor /></Guard>} />
            <Route path="/sites" element={<Guard screen="sites" session={session}><Sites /></Guard>} />
            <Route path="/staff" element={<Guard screen="staff" session={session}><Staff /></Guard>} />
            <Route path="/customers" element={<Guard screen="customers" session={session}><Customers /></Guard>} />
            <Route path="/customers/duplicates" element={<Guard screen="customers" session={session}><Duplicates /></Guard>} />
            <Route path="/customers/:customerId" element={<Guard screen="customers" session={session}><Person /></Guard>} />
            <Route path="/access" element={<Guard screen="access" session={session}><Access /></Guard>} />
            <Route path="/audit" element={<Guard screen="audit" session={session}><Audit /></Guard>} />
            <Route path="*" element={<Navigate to="/overview" replace />} />
          </Route>
        </Routes>
      </Suspense>
    </ConfigProvider>
  );
}
