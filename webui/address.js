// The page's address fragment (pure: node can check it). `mpmd open` puts the token there
// (#token=…), and the Search tab keeps its query there (#q=…) so a reload keeps it.

/**
 * The token in a fragment ("#token=…&q=…"), and the fragment without it (the rest stays in
 * the address bar): {token, rest}, `rest` without its "#"; null when there is no token.
 */
export function tokenOfFragment(hash) {
  const m = /(?:^#|&)token=([^&]+)/.exec(hash || "");
  if (!m) return null;
  const rest = (hash || "").slice(1).split("&").filter((p) => p && !p.startsWith("token=")).join("&");
  return { token: decodeURIComponent(m[1]), rest };
}

/** The search query in a fragment (#q=…), or null. */
export function queryOfFragment(hash) {
  const m = /(?:^#|&)q=([^&]*)/.exec(hash || "");
  if (!m) return null;
  try { return decodeURIComponent(m[1].replace(/\+/g, " ")); } catch { return null; }
}

/** The fragment that keeps query `q` ("" for null: no query). */
export function fragmentOfQuery(q) {
  return q === null ? "" : `#q=${encodeURIComponent(q)}`;
}
