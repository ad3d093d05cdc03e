// Unit tests of web/static/proof.js and jcs.js that need no Python: `node --test tests/js/`.
import assert from "node:assert/strict";
import { test } from "node:test";

import { CanonicalizationError, canonicalize } from "../../web/static/jcs.js";
import {
  VerificationError,
  VerificationUnavailable,
  base58btcDecode,
  checkNumber,
  parseDocument,
  publicKeyOfDid,
  verificationMethodOf,
  verifyDocument,
} from "../../web/static/proof.js";

const hex = (bytes) => Buffer.from(bytes).toString("hex");

test("base58btc decodes the draft-msporny-base58 examples", () => {
  assert.equal(Buffer.from(base58btcDecode("2NEpo7TZRRrLZSi2U")).toString(), "Hello World!");
  assert.equal(hex(base58btcDecode("11233QC4")), "0000287fb4cd");
  assert.equal(hex(base58btcDecode("")), "");
  assert.throws(() => base58btcDecode("0OIl"), VerificationError);
});

test("a did:key gives its 32-byte Ed25519 key and its verification method", () => {
  // The did:key spec's Ed25519 example.
  const did = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";
  assert.equal(publicKeyOfDid(did).length, 32);
  assert.equal(verificationMethodOf(did), `${did}#z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK`);
  assert.throws(() => publicKeyOfDid("did:web:example.com"), VerificationError);
  // A secp256k1 did:key (multicodec 0xe7 0x01) is not an Ed25519 key.
  assert.throws(
    () => publicKeyOfDid("did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme"),
    /not an Ed25519 did:key/);
});

test("integers past 2^53-1 are refused, integral floats pass", () => {
  checkNumber("9007199254740991");
  checkNumber("-9007199254740991");
  assert.throws(() => checkNumber("9007199254740993"), VerificationError);
  assert.throws(() => checkNumber("-9007199254740992"), VerificationError);
  checkNumber("9007199254740992.0");
  checkNumber("1e20");
  assert.throws(() => checkNumber("1e400"), VerificationError);
  // Digits inside strings are not numbers.
  assert.deepEqual(parseDocument('{"a":"12345678901234567890","b":[1,-2.5e3]}'),
                   { a: "12345678901234567890", b: [1, -2500] });
  assert.throws(() => parseDocument('{"a":"\\"","b":12345678901234567890}'), /outside/);
  assert.throws(() => parseDocument("{"), /not valid JSON/);
});

test("values JSON cannot hold have no JCS form", () => {
  assert.throws(() => canonicalize(NaN), CanonicalizationError);
  assert.throws(() => canonicalize({ a: undefined }), CanonicalizationError);
  assert.throws(() => canonicalize(10n), CanonicalizationError);
  assert.throws(() => canonicalize(new Date(0)), CanonicalizationError);
  assert.throws(() => canonicalize("\uD800"), CanonicalizationError);
  assert.throws(() => canonicalize({ "\uDC00": 1 }), CanonicalizationError);
  let deep = 1;
  for (let i = 0; i < 300; i += 1) deep = [deep];
  assert.throws(() => canonicalize(deep), /deeper than 256/);
});

test("the RFC 8785 section 3.2.2 example canonicalizes as the RFC prints it", () => {
  const input = {
    numbers: [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
    string: "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
    literals: [null, true, false],
  };
  assert.equal(
    canonicalize(input),
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
      + '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
});

test("a browser without WebCrypto says it cannot check, not that the document is bad", async () => {
  const saved = Object.getOwnPropertyDescriptor(globalThis, "crypto");
  Object.defineProperty(globalThis, "crypto", { value: undefined, configurable: true });
  try {
    const did = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";
    const proof = {
      type: "DataIntegrityProof", cryptosuite: "eddsa-jcs-2022", proofPurpose: "assertionMethod",
      verificationMethod: verificationMethodOf(did), proofValue: "z" + "1".repeat(64), // 64 zero bytes
    };
    await assert.rejects(verifyDocument({ proof }, did), VerificationUnavailable);
  } finally {
    Object.defineProperty(globalThis, "crypto", saved);
  }
});
