// JSON Canonicalization Scheme, RFC 8785 — the form every Stave signature is computed over
// (PROTOCOL §2). Plain ES module: runs in the browser and under Node.js unchanged.
//
// RFC 8785 §3.2: members sorted by their names' UTF-16 code units (what Array.prototype.sort
// does with strings), no whitespace, strings escaped as ECMAScript's JSON.stringify escapes
// them, numbers serialised as ECMAScript does (§3.2.2.3 defers to Number.prototype.toString,
// which JSON.stringify uses for finite numbers, -0 becoming 0).

export class CanonicalizationError extends Error {
  constructor(message) {
    super(message);
    this.name = "CanonicalizationError";
  }
}

// Deeper than any Stave document; the Python side refuses the same depth (node/signing.py).
export const MAX_DEPTH = 256;

const isWellFormed = (text) =>
  typeof text.isWellFormed === "function"
    ? text.isWellFormed()
    : !/[\uD800-\uDFFF]/u.test(text); // with the u flag only an unpaired surrogate matches

function isPlainObject(value) {
  if (typeof value !== "object") return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function serializeString(text) {
  // RFC 8785 §3.2.2.2: strings must be valid Unicode; a lone surrogate has no UTF-8 form.
  if (!isWellFormed(text)) {
    throw new CanonicalizationError("string holds a lone UTF-16 surrogate");
  }
  return JSON.stringify(text);
}

function serializeNumber(number) {
  if (!Number.isFinite(number)) {
    throw new CanonicalizationError("document holds a non-finite number");
  }
  return JSON.stringify(number);
}

function serialize(value, depth, out) {
  if (depth > MAX_DEPTH) {
    throw new CanonicalizationError(`document nests deeper than ${MAX_DEPTH} levels`);
  }
  if (value === null) {
    out.push("null");
  } else if (typeof value === "boolean") {
    out.push(value ? "true" : "false");
  } else if (typeof value === "number") {
    out.push(serializeNumber(value));
  } else if (typeof value === "string") {
    out.push(serializeString(value));
  } else if (Array.isArray(value)) {
    out.push("[");
    value.forEach((item, index) => {
      if (index > 0) out.push(",");
      serialize(item, depth + 1, out);
    });
    out.push("]");
  } else if (isPlainObject(value)) {
    out.push("{");
    Object.keys(value).sort().forEach((name, index) => {
      if (index > 0) out.push(",");
      out.push(serializeString(name), ":");
      serialize(value[name], depth + 1, out);
    });
    out.push("}");
  } else {
    throw new CanonicalizationError(`a ${typeof value} is not a JSON value`);
  }
}

/** The JCS text of a JSON value; throws CanonicalizationError for what JSON cannot hold. */
export function canonicalize(value) {
  const out = [];
  serialize(value, 0, out);
  return out.join("");
}

/** The UTF-8 bytes of the JCS text of a JSON value (what gets hashed). */
export function canonicalBytes(value) {
  return new TextEncoder().encode(canonicalize(value));
}
