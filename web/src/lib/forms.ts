import type { FormInstance } from "antd";

import { ApiError } from "../api/result";

/** The API's refusal of a body field (`body.name`), shown under that field of the form. */
export function showFieldErrors<T>(form: FormInstance<T>, error: unknown): void {
  if (!(error instanceof ApiError)) return;
  const fields = Object.entries(error.fields)
    .filter(([field]) => field.startsWith("body."))
    .map(([field, message]) => ({ name: field.slice(5).split("."), errors: [message] }));
  form.setFields(fields as Parameters<FormInstance<T>["setFields"]>[0]);
}

/** The form shows the API's refusal itself when it names a field; otherwise an alert does. */
export function unplaced(error: unknown): unknown {
  return error instanceof ApiError && Object.keys(error.fields).some((f) => f.startsWith("body.")) ? null : error;
}
