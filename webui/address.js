// The page's address fragment (pure: node can check it). `mpmd open` puts the token there
// (#token=…), the Search tab keeps its query there (#q=…) so a reload keeps it, and a
// notification's link names the session to show (#session=…).

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

/**
 * The session a link asks the page to show (#session=…, alongside a token or not: a
 * notification links to `<viewer>/#session=<id>`), or null.
 */
export function sessionOfFragment(hash) {
  const m = /(?:^#|&)session=([^&]*)/.exec(hash || "");
  if (!m) return null;
  try {
    const id = decodeURIComponent(m[1]).trim();
    return id || null;
  } catch { return null; }
}
