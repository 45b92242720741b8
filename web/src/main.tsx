import "./index.css";

import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import React from "react";
import ReactDOM from "react-dom/client";
import { BrowserRouter } from "react-router-dom";

import { App } from "./App";
import { SessionEnded } from "./api/client";

const queries = new QueryClient({
  defaultOptions: {
    queries: {
      staleTime: 30_000,
      // an ended session is not retried: the app sends the user to sign-in
      retry: (count, error) => !(error instanceof SessionEnded) && count < 2,
    },
  },
});

ReactDOM.createRoot(document.getElementById("root")!).render(
  <React.StrictMode>
    <QueryClientProvider client={queries}>
      <BrowserRouter>
        <App />
      </BrowserRouter>
    </QueryClientProvider>
  </React.StrictMode>,
);
