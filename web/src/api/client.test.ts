import { currentSession, mayRestore, saveSession } from "../auth/session";
import { makeClient, restoreSession, SessionEnded, signOut } from "./client";

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

describe("the API client", () => {
  beforeEach(() => {
    sessionStorage.clear();
    saveSession({ accessToken: "old", expiresAt: 0, role: "tenant_admin", tenantId: "t" });
  });

  it("refreshes once on a 401 with the cookie, never a token of its own, and retries with the body", async () => {
    const seen: string[] = [];
    const fetcher = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = input instanceof Request ? input : new Request(String(input), init);
      const url = new URL(request.url, "http://x").pathname;
      const body = request.method === "POST" ? await request.text() : "";
      seen.push(`${request.method} ${url} ${request.headers.get("authorization") ?? ""} ${body}`);
      if (url === "/v1/auth/token") {
        return json(200, { access_token: "new", refresh_token: null, expires_in: 900, role: "tenant_admin", token_type: "bearer" });
      }
      return request.headers.get("authorization") === "Bearer new" ? json(201, { id: "s1" }) : json(401, { detail: "expired" });
    }) as unknown as typeof fetch;
    const client = makeClient(fetcher);
    const { data, response } = await client.POST("/v1/tenants/{tenant_id}/sites", {
      params: { path: { tenant_id: "t" } },
      body: { name: "Main street", timezone: "Europe/Berlin" } as never,
    });
    expect(response.status).toBe(201);
    expect(data).toEqual({ id: "s1" });
    expect(seen[1]).toContain('{"grant_type":"refresh_token","refresh_cookie":true}');
    expect(seen[2]).toContain("Bearer new");
    expect(seen[2]).toContain("Main street");
    expect(currentSession()?.accessToken).toBe("new");
    // nothing of the session is left where a script of the page could read it later
    expect(sessionStorage.length).toBe(0);
    expect(localStorage.getItem("visitlens.session")).toBeNull();
  });

  it("ends the session when the refresh is refused", async () => {
    const fetcher = vi.fn(async () => json(401, { detail: "revoked" })) as unknown as typeof fetch;
    const client = makeClient(fetcher);
    await expect(client.GET("/v1/auth/me")).rejects.toBeInstanceOf(SessionEnded);
    expect(currentSession()).toBeNull();
  });

  it("restores a session only where the browser says it holds a refresh cookie", async () => {
    saveSession(null);
    const fetcher = vi.fn(async () => json(200, { access_token: "again", expires_in: 900, role: "site_manager" })) as unknown as typeof fetch;
    expect(mayRestore("theme=dark")).toBe(false);
    expect(await restoreSession(fetcher)).toBeNull(); // jsdom holds no such cookie: nothing asked
    expect(fetcher).not.toHaveBeenCalled();
    expect(mayRestore("a=b; visitlens_signed_in=1")).toBe(true);
  });

  it("signs out on the server and forgets the token", async () => {
    const fetcher = vi.fn(async () => new Response(null, { status: 204 })) as unknown as typeof fetch;
    await signOut(fetcher);
    expect(fetcher).toHaveBeenCalledWith(expect.stringContaining("/v1/auth/token"), expect.objectContaining({ method: "DELETE" }));
    expect(currentSession()).toBeNull();
  });
});
