// The page's address fragment (webui/address.js): the session a notification's link names.

import { test } from "node:test";
import assert from "node:assert/strict";

import { sessionOfFragment, tokenOfFragment } from "../../webui/address.js";

test("sessionOfFragment reads #session=, alone or next to a token or a query", () => {
  assert.equal(sessionOfFragment("#session=abc-123"), "abc-123");
  assert.equal(sessionOfFragment("#token=t0k&session=abc-123"), "abc-123");
  assert.equal(sessionOfFragment("#session=abc&token=t0k"), "abc");
  assert.equal(sessionOfFragment("#q=x&session=s%201"), "s 1");
});

test("sessionOfFragment: no session, an empty one or a bad escape is none", () => {
  for (const hash of ["", undefined, null, "#", "#token=t0k", "#q=session%3Dx", "#session=",
                      "#session=%20", "#session=%E0%A4%A", "#xsession=abc", "#mysession=abc"]) {
    assert.equal(sessionOfFragment(hash), null, String(hash));
  }
});

test("the token leaves the fragment and the session stays in it", () => {
  const found = tokenOfFragment("#token=t0k&session=abc-123");
  assert.deepEqual(found, { token: "t0k", rest: "session=abc-123" });
  assert.equal(sessionOfFragment(`#${found.rest}`), "abc-123");
});
