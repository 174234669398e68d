// The sputnik HTTP API as the page uses it: relative URLs, the browser's Basic-auth credentials, errors in words.

/** An API answer other than 2xx, with the API's own words. */
export class ApiError extends Error {
  constructor(method, path, status, detail) {
    super(`${method} ${path.split("?")[0]} failed (${status}): ${detail}`);
    this.status = status;
  }
}

/** Turn FastAPI's `detail` (text, or a list of validation errors) into one sentence. */
export function describe(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((e) => {
        const where = (e.loc || []).filter((p) => p !== "body" && p !== "query").join(".");
        return where ? `${where}: ${e.msg}` : e.msg;
      })
      .join("; ");
  }
  return JSON.stringify(detail);
}

const STATUS_WORDS = {
  401: "not logged in, or the login or password is wrong (reload the page to log in again)",
  403: "not allowed",
  404: "not found",
  429: "a limit of your account was reached",
  500: "the server failed; this is a bug",
  502: "the server failed; this is a bug",
  503: "the service is unavailable, try again",
  504: "the server took too long to answer",
};

/** Retry-After (seconds) in words: "try again in 2 minutes". */
export function retryWords(seconds) {
  const s = Number(seconds);
  if (!Number.isFinite(s) || s <= 0) return "";
  if (s < 90) return `try again in ${Math.ceil(s)} seconds`;
  if (s < 5400) return `try again in ${Math.round(s / 60)} minutes`;
  return `try again in ${Math.round(s / 3600)} hours`;
}

/** Call the API at a path relative to the page; answer the parsed JSON or throw an ApiError. */
export async function api(path, { method = "GET", body } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(method, path, "no answer", `the API could not be reached (${err.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const detail = data && (data.detail ?? data.message);
    let words = detail ? describe(detail) : STATUS_WORDS[response.status] || response.statusText;
    const retry = response.status === 429 ? retryWords(response.headers.get("Retry-After")) : "";
    if (retry) words += ` (${retry})`;
    throw new ApiError(method, path, response.status, words);
  }
  return data;
}

/** A query string from an object, for relative API paths. */
export function query(params) {
  return new URLSearchParams(params).toString();
}
