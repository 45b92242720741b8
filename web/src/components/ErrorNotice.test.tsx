import { render, screen } from "@testing-library/react";

import { ApiError, toApiError } from "../api/result";
import { ErrorNotice } from "./ErrorNotice";

describe("ErrorNotice", () => {
  it("tells 'not allowed' (403) from 'not there' (404) from a refusal", () => {
    const { unmount } = render(<ErrorNotice error={new ApiError(403, "forbidden")} />);
    expect(screen.getByText("Not allowed")).toBeTruthy();
    unmount();
    const again = render(<ErrorNotice error={new ApiError(404, "gone")} />);
    expect(screen.getByText("Not found (or no longer kept)")).toBeTruthy();
    again.unmount();
    render(<ErrorNotice error={toApiError(422, { detail: "invalid input", errors: [{ field: "body.timezone", message: "unknown IANA time zone" }] })} />);
    expect(screen.getByRole("alert").textContent).toContain("body.timezone: unknown IANA time zone");
  });

  it("shows nothing without an error", () => {
    const { container } = render(<ErrorNotice error={null} />);
    expect(container.innerHTML).toBe("");
  });
});

describe("toApiError", () => {
  it("names a field once when its message is the detail", () => {
    const error = toApiError(422, { detail: "2 faces found", errors: [{ field: "image", message: "2 faces found" }] });
    expect(error.message).toBe("2 faces found (image)");
  });

  it("keeps the fields the API named", () => {
    const error = toApiError(422, { detail: "bad", errors: [{ field: "body.name", message: "too long" }] });
    expect(error.status).toBe(422);
    expect(error.fields).toEqual({ "body.name": "too long" });
  });
});
