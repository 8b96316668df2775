// The daemon's JSON API (docs/viewer.md): GET only, the token as a bearer header.

export class ApiError extends Error {
  /** status: the HTTP status (0: no answer at all); message: what to show the user. */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** A `get(path, params)` bound to the token: resolves to the parsed JSON, or throws ApiError. */
export function makeApi(token, fetchImpl = globalThis.fetch.bind(globalThis)) {
  return async function get(path, params = {}) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && v !== "") qs.set(k, String(v));
    }
    const url = qs.toString() ? `${path}?${qs}` : path;
    let res;
    try {
      res = await fetchImpl(url, { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
    } catch {
      throw new ApiError(0, "The daemon does not answer (is it running? `mpmd status`).");
    }
    let data = null;
    try { data = await res.json(); } catch { data = null; }
    if (!res.ok) {
      let msg = data && typeof data.error === "string" ? data.error : `${res.status} ${res.statusText || "error"}`;
      if (res.status === 404 && msg === "no such route") {
        msg = "This daemon does not serve history yet: restart it with a newer mpmd.";
      } else if (res.status === 401 || res.status === 403) {
        msg = "The daemon refused this page's token: open the viewer again with `mpmd open`.";
      }
      throw new ApiError(res.status, msg);
    }
    return data && typeof data === "object" ? data : {};
  };
}
