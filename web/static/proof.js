// Checking Stave's signed documents with WebCrypto, exactly as PROTOCOL §2 says:
// eddsa-jcs-2022 Data Integrity proofs by a did:key Ed25519 key. Plain ES module: runs in the
// browser and under Node.js (tests/js/) unchanged.
//
// Signing input: SHA-256(JCS(proof without proofValue)) ‖ SHA-256(JCS(document without proof)),
// verified with pure Ed25519 against the key inside the did:key (multicodec 0xed 0x01).

import { CanonicalizationError, canonicalBytes } from "./jcs.js";

export const PROOF_TYPE = "DataIntegrityProof";
export const CRYPTOSUITE = "eddsa-jcs-2022";
export const PROOF_PURPOSE = "assertionMethod";
export const FEED_TYPE = "StaveFeed";
export const MANIFEST_TYPE = "StaveTrack";
export const RELEASE_TYPE = "StaveRelease";
const DID_KEY_PREFIX = "did:key:";
const ED25519_MULTICODEC = [0xed, 0x01];
// A 64-byte signature is at most 88 base58btc characters, after the multibase "z".
const MAX_PROOF_VALUE = 1 + 88;
const MAX_DID = DID_KEY_PREFIX.length + 1 + 48;
const BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/** The document is not what its signer signed, or is not a well-formed signed document. */
export class VerificationError extends Error {
  constructor(message) {
    super(message);
    this.name = "VerificationError";
  }
}

/** This browser cannot check the signature at all (no secure context, no Ed25519). */
export class VerificationUnavailable extends Error {
  constructor(message) {
    super(message);
    this.name = "VerificationUnavailable";
  }
}

/** The bytes of a base58btc string (Bitcoin alphabet); VerificationError on a bad digit. */
export function base58btcDecode(text) {
  let zeros = 0;
  while (zeros < text.length && text[zeros] === "1") zeros += 1;
  let number = 0n;
  for (const digit of text) {
    const value = BASE58.indexOf(digit);
    if (value < 0) throw new VerificationError(`"${digit}" is not a base58btc digit`);
    number = number * 58n + BigInt(value);
  }
  const bytes = [];
  while (number > 0n) {
    bytes.push(Number(number & 0xffn));
    number >>= 8n;
  }
  return Uint8Array.from([...new Array(zeros).fill(0), ...bytes.reverse()]);
}

/** The 32-byte Ed25519 public key inside a `did:key:z6Mk…` identifier. */
export function publicKeyOfDid(did) {
  if (typeof did !== "string" || !did.startsWith(DID_KEY_PREFIX + "z") || did.length > MAX_DID) {
    throw new VerificationError(`${String(did).slice(0, 60)} is not a did:key`);
  }
  const bytes = base58btcDecode(did.slice(DID_KEY_PREFIX.length + 1));
  if (bytes.length !== 34 || bytes[0] !== ED25519_MULTICODEC[0]
      || bytes[1] !== ED25519_MULTICODEC[1]) {
    throw new VerificationError(`${did} is not an Ed25519 did:key`);
  }
  return bytes.slice(2);
}

/** The verification method of a did:key: the did, "#", and its multibase value again. */
export function verificationMethodOf(did) {
  return `${did}#${did.slice(DID_KEY_PREFIX.length)}`;
}

function subtle() {
  const crypto = globalThis.crypto;
  if (!crypto || !crypto.subtle) {
    throw new VerificationUnavailable(
      "this browser offers no WebCrypto here (pages need HTTPS for it)");
  }
  return crypto.subtle;
}

function canonical(value, what) {
  try {
    return canonicalBytes(value);
  } catch (error) {
    if (error instanceof CanonicalizationError) {
      throw new VerificationError(`${what} has no JCS form (${error.message})`);
    }
    throw error;
  }
}

/** SHA-256(JCS(proof config)) ‖ SHA-256(JCS(document)): the 64 bytes Ed25519 signs. */
export async function hashData(proofConfig, document) {
  const crypto = subtle();
  const [configHash, documentHash] = await Promise.all([
    crypto.digest("SHA-256", canonical(proofConfig, "proof")),
    crypto.digest("SHA-256", canonical(document, "document")),
  ]);
  const data = new Uint8Array(64);
  data.set(new Uint8Array(configHash), 0);
  data.set(new Uint8Array(documentHash), 32);
  return data;
}

const importedKeys = new Map();

async function importPublicKey(did) {
  if (!importedKeys.has(did)) {
    const raw = publicKeyOfDid(did);
    const imported = subtle()
      .importKey("raw", raw, { name: "Ed25519" }, false, ["verify"])
      .catch((error) => {
        importedKeys.delete(did);
        if (error && error.name === "NotSupportedError") {
          throw new VerificationUnavailable("this browser cannot check Ed25519 signatures");
        }
        throw new VerificationError(`${did}: not a usable Ed25519 key (${error})`);
      });
    importedKeys.set(did, imported);
  }
  return importedKeys.get(did);
}

const isObject = (value) => typeof value === "object" && value !== null && !Array.isArray(value);
const shown = (value) => JSON.stringify(value ?? null).slice(0, 60);

/**
 * Resolves if `document` carries a valid eddsa-jcs-2022 proof by `did`; rejects with a
 * VerificationError saying why not (or VerificationUnavailable when the browser cannot check).
 */
export async function verifyDocument(document, did) {
  if (!isObject(document)) throw new VerificationError("document is not a JSON object");
  const proof = document.proof;
  if (proof === undefined) throw new VerificationError("document has no proof");
  if (!isObject(proof)) throw new VerificationError("proof is not a JSON object");
  if (proof.type !== PROOF_TYPE) {
    throw new VerificationError(`proof type ${shown(proof.type)} is not ${PROOF_TYPE}`);
  }
  if (proof.cryptosuite !== CRYPTOSUITE) {
    throw new VerificationError(`cryptosuite ${shown(proof.cryptosuite)} is not ${CRYPTOSUITE}`);
  }
  if (proof.proofPurpose !== PROOF_PURPOSE) {
    throw new VerificationError(`proof purpose ${shown(proof.proofPurpose)} is not ${PROOF_PURPOSE}`);
  }
  if (proof.verificationMethod !== verificationMethodOf(did)) {
    throw new VerificationError(`proof is by ${shown(proof.verificationMethod)}, not ${did}`);
  }
  const value = proof.proofValue;
  if (typeof value !== "string" || !value.startsWith("z")) {
    throw new VerificationError("proofValue is not a base58btc multibase string");
  }
  if (value.length > MAX_PROOF_VALUE) {
    throw new VerificationError("proofValue is too long for a 64-byte Ed25519 signature");
  }
  const signature = base58btcDecode(value.slice(1));
  if (signature.length !== 64) {
    throw new VerificationError("proofValue is not a 64-byte Ed25519 signature");
  }
  const { proofValue, ...config } = proof;
  const { proof: _, ...unsecured } = document;
  const key = await importPublicKey(did);
  const data = await hashData(config, unsecured);
  if (!(await subtle().verify({ name: "Ed25519" }, key, signature, data))) {
    throw new VerificationError(`the signature does not match the document signed by ${did}`);
  }
}

/** Resolves if `manifest` is a StaveTrack signed by `artist` (PROTOCOL §5); else rejects why. */
export async function verifyManifest(manifest, artist) {
  if (!isObject(manifest)) throw new VerificationError("track manifest is not a JSON object");
  if (manifest.type !== MANIFEST_TYPE) {
    throw new VerificationError(`track type ${shown(manifest.type)} is not ${MANIFEST_TYPE}`);
  }
  if (manifest.artist !== artist) {
    throw new VerificationError(`track is by ${shown(manifest.artist)}, not ${artist}`);
  }
  if (!isObject(manifest.audio) || typeof manifest.audio.cid !== "string") {
    throw new VerificationError("track audio has no CID");
  }
  await verifyDocument(manifest, artist);
}

/** Resolves if `release` is a StaveRelease signed by `artist`; else rejects saying why. */
export async function verifyRelease(release, artist) {
  if (!isObject(release)) throw new VerificationError("release is not a JSON object");
  if (release.type !== RELEASE_TYPE) {
    throw new VerificationError(`release type ${shown(release.type)} is not ${RELEASE_TYPE}`);
  }
  if (release.artist !== artist) {
    throw new VerificationError(`release is by ${shown(release.artist)}, not ${artist}`);
  }
  if (!Array.isArray(release.tracks)) throw new VerificationError("release has no list of tracks");
  await verifyDocument(release, artist);
}

const MAX_SAFE = 2n ** 53n - 1n;
// A JSON string or a JSON number; strings are matched whole so digits inside them are skipped.
const TOKENS = /"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;

/**
 * Refuses a JSON number that has no JCS form (PROTOCOL §2), given as it is written: a
 * non-finite one, or an integer outside ±(2^53−1). An integral float such as
 * 9007199254740992.0 passes, as it does in Python.
 */
export function checkNumber(lexeme) {
  if (/^-?\d+$/.test(lexeme)) {
    const value = BigInt(lexeme);
    if (value > MAX_SAFE || value < -MAX_SAFE) {
      throw new VerificationError(`integer ${lexeme.slice(0, 40)} is outside ±(2^53−1)`);
    }
  } else if (!Number.isFinite(Number(lexeme))) {
    throw new VerificationError(`number ${lexeme.slice(0, 40)} is too large to represent`);
  }
}

/** The JSON value in `text`, every number in it checked by `checkNumber`. */
export function parseDocument(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new VerificationError(`not valid JSON (${error.message})`);
  }
  for (const [token] of text.matchAll(TOKENS)) {
    if (token[0] !== '"') checkNumber(token);
  }
  return value;
}

function describe(error) {
  if (error instanceof VerificationError || error instanceof VerificationUnavailable) {
    return error;
  }
  return new VerificationError(String(error && error.message ? error.message : error));
}

/**
 * Checks a feed document as PROTOCOL §6 asks a listener to: the feed's own proof by its
 * `artist` (which must be `expectedArtist` when given) and every track's proof by that artist.
 *
 * Resolves to `{artist, error, tracks}`: `error` is null or the Error that makes the feed
 * untrustworthy; `tracks` maps each track id to null (signed) or the Error for that track.
 */
export async function checkFeed(feed, { expectedArtist } = {}) {
  const result = { artist: null, error: null, tracks: new Map(), expires: null };
  if (!isObject(feed) || feed.type !== FEED_TYPE) {
    result.error = new VerificationError("the document is not a Stave feed");
    return result;
  }
  const artist = feed.artist;
  result.artist = typeof artist === "string" ? artist : null;
  result.expires = typeof feed.expires === "string" ? feed.expires : null;
  if (expectedArtist !== undefined && artist !== expectedArtist) {
    result.error = new VerificationError(`the feed is by ${shown(artist)}, not ${expectedArtist}`);
    return result;
  }
  try {
    await verifyDocument(feed, artist);
  } catch (error) {
    result.error = describe(error);
  }
  const tracks = Array.isArray(feed.tracks) ? feed.tracks : [];
  if (!Array.isArray(feed.tracks) && result.error === null) {
    result.error = new VerificationError("the feed has no list of tracks");
  }
  await Promise.all(tracks.map(async (manifest) => {
    const id = isObject(manifest) && typeof manifest.id === "string" ? manifest.id : null;
    if (id === null) return;
    try {
      await verifyManifest(manifest, artist);
      result.tracks.set(id, null);
    } catch (error) {
      result.tracks.set(id, describe(error));
    }
  }));
  return result;
}
