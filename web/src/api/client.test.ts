import { saveSession } from "../auth/session";
import { makeClient, SessionEnded } from "./client";

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

describe("the API client", () => {
  beforeEach(() => {
    sessionStorage.clear();
    saveSession({ accessToken: "old", refreshToken: "r1", expiresAt: 0, role: "tenant_admin", tenantId: "t" });
  });

  it("refreshes once on a 401, rotates the refresh token and retries with the body", async () => {
    const seen: string[] = [];
    const fetcher = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = input instanceof Request ? input : new Request(String(input), init);
      const url = new URL(request.url, "http://x").pathname;
      const body = request.method === "POST" ? await request.text() : "";
      seen.push(`${request.method} ${url} ${request.headers.get("authorization") ?? ""} ${body}`);
      if (url === "/v1/auth/token") {
        return json(200, { access_token: "new", refresh_token: "r2", expires_in: 900, role: "tenant_admin", token_type: "bearer" });
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
    expect(seen[1]).toContain('"refresh_token":"r1"');
    expect(seen[2]).toContain("Bearer new");
    expect(seen[2]).toContain("Main street");
    expect(JSON.parse(sessionStorage.getItem("visitlens.session") ?? "{}").refreshToken).toBe("r2");
  });

  it("ends the session when the refresh is refused", async () => {
    const fetcher = vi.fn(async () => json(401, { detail: "revoked" })) as unknown as typeof fetch;
    const client = makeClient(fetcher);
    await expect(client.GET("/v1/auth/me")).rejects.toBeInstanceOf(SessionEnded);
    expect(sessionStorage.getItem("visitlens.session")).toBeNull();
  });
});
