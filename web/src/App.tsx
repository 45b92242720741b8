import { ConfigProvider, Spin, theme } from "antd";
import { lazy, Suspense, useEffect, useState } from "react";
import { Navigate, Route, Routes, useLocation } from "react-router-dom";

import { currentSession, onSessionChange, type Session } from "./auth/session";

const SignIn = lazy(() => import("./pages/SignIn"));
const Shell = lazy(() => import("./pages/Shell"));
const Overview = lazy(() => import("./pages/Overview"));

// Ant Design's defaults miss WCAG AA contrast (white on #1677ff is 4.1:1, secondary text 45 %
// black is 2.8:1): darker primary and stronger secondary text, checked by axe in the browser tests.
const LIGHT = {
  colorPrimary: "#0958d9",
  colorTextSecondary: "rgba(0, 0, 0, 0.68)",
  colorTextDescription: "rgba(0, 0, 0, 0.68)",
  colorTextTertiary: "rgba(0, 0, 0, 0.62)",
  colorTextPlaceholder: "rgba(0, 0, 0, 0.58)",
};
const DARK = {
  colorPrimary: "#3c89e8",
  colorTextSecondary: "rgba(255, 255, 255, 0.72)",
  colorTextDescription: "rgba(255, 255, 255, 0.72)",
  colorTextTertiary: "rgba(255, 255, 255, 0.66)",
  colorTextPlaceholder: "rgba(255, 255, 255, 0.6)",
};

function useSession(): Session | null {
  const [session, setSession] = useState(currentSession);
  useEffect(() => onSessionChange(setSession), []);
  return session;
}

export function App() {
  const session = useSession();
  const location = useLocation();
  const [dark, setDark] = useState(() => localStorage.getItem("visitlens.theme") === "dark");
  useEffect(() => {
    localStorage.setItem("visitlens.theme", dark ? "dark" : "light");
    document.documentElement.classList.toggle("dark", dark);
  }, [dark]);

  const back = `${location.pathname}${location.search}`;
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
            <Route path="/overview" element={<Overview />} />
          </Route>
        </Routes>
      </Suspense>
    </ConfigProvider>
  );
}
