// Reads a JSON array of {"text", "did", "kind"} on stdin (kind: "document", "release" or "feed") and checks
// each with web/static/proof.js; prints [{"ok": true} | {"error": "...", "name": "..."}] or, for
// feeds, {"error": ..., "tracks": {id: null | "reason"}}. Driven by tests/test_browser_js.py.
import { checkFeed, parseDocument, verifyDocument, verifyRelease } from "../../web/static/proof.js";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const cases = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const results = [];
for (const { text, did, kind } of cases) {
  try {
    const document = parseDocument(text);
    if (kind === "feed") {
      const checked = await checkFeed(document, { expectedArtist: did });
      results.push({
        error: checked.error ? checked.error.message : null,
        tracks: Object.fromEntries(
          [...checked.tracks].map(([id, error]) => [id, error ? error.message : null])),
      });
    } else if (kind === "release") {
      await verifyRelease(document, did);
      results.push({ ok: true });
    } else {
      await verifyDocument(document, did);
      results.push({ ok: true });
    }
  } catch (error) {
    results.push({ error: error.message, name: error.name });
  }
}
process.stdout.write(JSON.stringify(results));
