// Reads a JSON array of JSON texts on stdin; prints, for each, its JCS form by web/static/jcs.js
// or the error it raised: [{"jcs": "..."} | {"error": "..."}]. Driven by tests/test_browser_js.py.
import { canonicalize } from "../../web/static/jcs.js";
import { parseDocument } from "../../web/static/proof.js";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const texts = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const results = texts.map((text) => {
  try {
    return { jcs: canonicalize(parseDocument(text)) };
  } catch (error) {
    return { error: `${error.name}: ${error.message}` };
  }
});
process.stdout.write(JSON.stringify(results));
