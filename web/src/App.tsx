import { ConfigProvider, Spin, theme } from "antd";
import { lazy, Suspense, useEffect, useState } from "react";
import { Navigate, Route, Routes, useLocation } from "react-router-dom";

import { currentSession, onSessionChange, type Session } from "./auth/session";

const SignIn = lazy(() => import("./pages/SignIn"));
const Shell = lazy(() => import("./pages/Shell"));
const Overview = lazy(() => import("./pages/Overview"));

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
    <ConfigProvider theme={{ algorithm: dark ? theme.darkAlgorithm : theme.defaultAlgorithm }}>
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
