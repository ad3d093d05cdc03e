// A Fedify (https://fedify.dev) ActivityPub peer on 127.0.0.1, the independent implementation
// the fediverse tests run Stave against. Driven by tests/support/fedify.py; needs Node.js 22 and
// $STAVE_FEDIFY_DIR (where scripts/test installs tests/js/fedify/package.json).
//
// Serves one actor, /users/peer (a Person with RSA and Ed25519 keys made at start), its inbox
// and the shared inbox /inbox, and a control API on the same port:
//   GET  /control/received  every activity Fedify verified: [{type, id, actor, object, activity}]
//   GET  /control/rejected  every inbox request Fedify refused to verify: [{reason, activity}]
//   GET  /control/inbox-log every POST to an inbox as it arrived, before Fedify saw it:
//                           [{path, status, id, type, scheme ("cavage" | "rfc9421" | null)}]
//   GET  /control/actor-fetches with --authorized-fetch, every GET of the actor: [{signedBy:
//                           the verified signer's actor id, or null (refused with 401)}]
//   POST /control/pause     {"paused": true|false}: while paused every inbox POST gets 503
//   POST /control/send      {"inbox": URL, "activity": {...}} or {"follow": ACTOR_URL}: Fedify
//                           signs it (ctx.sendActivity) and delivers it at once; answers
//                           {"ok": true, "id": ...} or {"ok": false, "error": ...}
//   POST /control/sign      {"inbox": URL, "activity": {...}, "spec": ..., "ago": SECONDS}:
//                           Fedify's signRequest signs a POST of the activity (dated SECONDS
//                           ago, default 0) but does not send it; answers
//                           {"url", "headers": {...}, "body": TEXT} for the test to send, alter
//                           or replay byte for byte
//   POST /control/lookup    {"url": URL}: Fedify's lookupObject; {"ok", "object": JSON-LD}
//   POST /control/collection {"url": URL}: Fedify looks the collection up and walks its pages;
//                           {"ok", "totalItems", "items": [JSON-LD of each item]}
//   POST /control/nodeinfo  {"url": URL}: the NodeInfo 2.1 its /.well-known/nodeinfo links to,
//                           parsed by Fedify strictly; {"ok", "nodeinfo": JSON, null if invalid}
//   POST /control/verify-object {"url": URL}: fetches the object and checks its Object
//                           Integrity Proofs (FEP-8b32) with Fedify's verifyObject;
//                           {"ok", "verified": bool, "proofs": n}
// Prints {"url": "http://127.0.0.1:PORT", "actor": ACTOR_URL} on stdout once it listens; logs
// Fedify's warnings and errors (or $STAVE_FEDIFY_LOG's level) on stderr.
// Options: --first-knock draft-cavage-http-signatures-12 (the default) | rfc9421;
// --authorized-fetch: the actor is served only to signed GETs, as Mastodon's secure mode does.
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { join } from "node:path";
import { parseArgs } from "node:util";

const require = createRequire(join(process.env.STAVE_FEDIFY_DIR, "package.json"));
const {
  createFederation,
  generateCryptoKeyPair,
  MemoryKvStore,
  nodeInfoToJson,
  parseNodeInfo,
  signRequest,
  verifyObject,
} = require("@fedify/fedify");
const {
  Activity,
  Collection,
  Endpoints,
  Follow,
  Object: ApObject,
  Person,
  isActor,
  traverseCollection,
} = require("@fedify/vocab");
const { configure, defaultTextFormatter } = require("@logtape/logtape");
const { Temporal } = require("@js-temporal/polyfill");

const { values: options } = parseArgs({
  options: {
    "first-knock": { type: "string", default: "draft-cavage-http-signatures-12" },
    "authorized-fetch": { type: "boolean", default: false },
  },
});
const IDENTIFIER = "peer";
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);
const INBOX_PATHS = new Set([`/users/${IDENTIFIER}/inbox`, "/inbox"]);

await configure({
  sinks: { stderr: (record) => process.stderr.write(defaultTextFormatter(record)) },
  loggers: [
    {
      category: "fedify",
      sinks: ["stderr"],
      lowestLevel: process.env.STAVE_FEDIFY_LOG || "warning",
    },
    { category: ["logtape", "meta"], sinks: ["stderr"], lowestLevel: "error" },
  ],
});

// Nothing may leave loopback: every request Fedify makes (key and actor fetches, deliveries)
// goes through the global fetch, looked up at each call, so refuse any other host there.
const realFetch = globalThis.fetch;
globalThis.fetch = (input, init) => {
  const url = new URL(input instanceof Request ? input.url : input);
  if (!LOOPBACK.has(url.hostname)) {
    return Promise.reject(new Error(`fedify_peer: refusing non-loopback fetch of ${url.href}`));
  }
  return realFetch(input, init);
};

const received = [];
const rejected = [];
const inboxLog = [];
const actorFetches = [];
let paused = false;
// An RSA key for HTTP signatures and an Ed25519 key for the FEP-8b32 proofs Fedify adds to what
// it sends, as Fedify-based servers have.
const keyPairs = [
  await generateCryptoKeyPair("RSASSA-PKCS1-v1_5"),
  await generateCryptoKeyPair("Ed25519"),
];

const federation = createFederation({
  kv: new MemoryKvStore(),
  allowPrivateAddress: true,
  firstKnock: options["first-knock"],
});

federation
  .setActorDispatcher("/users/{identifier}", async (ctx, identifier) => {
    if (identifier !== IDENTIFIER) return null;
    const keys = await ctx.getActorKeyPairs(identifier);
    return new Person({
      id: ctx.getActorUri(identifier),
      preferredUsername: identifier,
      name: "Fedify peer",
      inbox: ctx.getInboxUri(identifier),
      endpoints: new Endpoints({ sharedInbox: ctx.getInboxUri() }),
      publicKey: keys[0].cryptographicKey,
      assertionMethods: keys.map((key) => key.multikey),
    });
  })
  .setKeyPairsDispatcher((_ctx, identifier) => (identifier === IDENTIFIER ? keyPairs : []))
  .authorize(async (ctx) => {
    if (!options["authorized-fetch"]) return true;
    // Mastodon's secure mode: only a GET signed by a key Fedify can verify gets the actor.
    const owner = await ctx.getSignedKeyOwner();
    actorFetches.push({ signedBy: owner?.id?.href ?? null });
    return owner !== null;
  });

federation
  .setInboxListeners("/users/{identifier}/inbox", "/inbox")
  .on(Activity, async (_ctx, activity) => {
    const json = await activity.toJsonLd({ format: "compact" });
    received.push({
      type: json.type,
      id: activity.id?.href ?? null,
      actor: activity.actorId?.href ?? null,
      object: typeof json.object === "undefined" ? null : json.object,
      activity: json,
    });
  })
  .onUnverifiedActivity((_ctx, activity, reason) => {
    rejected.push({ reason: reason.type, activity: activity.id?.href ?? null });
  });

async function send(ctx, command) {
  const actor = ctx.getActorUri(IDENTIFIER);
  let activity;
  let recipient;
  if (command.follow) {
    const target = await ctx.lookupObject(command.follow);
    if (!isActor(target)) throw new Error(`${command.follow} is not an actor`);
    const id = new URL(`#follow-${crypto.randomUUID()}`, actor);
    activity = new Follow({ id, actor, object: target.id });
    recipient = target;
  } else {
    activity = await Activity.fromJsonLd(withDefaults(ctx, command.activity), ctx);
    // Fedify skips a recipient without an id; the inbox stands in for the actor's.
    recipient = { id: new URL(command.inbox), inboxId: new URL(command.inbox) };
  }
  await ctx.sendActivity({ identifier: IDENTIFIER }, recipient, activity, { immediate: true });
  return activity.id?.href ?? null;
}

function withDefaults(ctx, activity) {
  const actor = ctx.getActorUri(IDENTIFIER).href;
  return {
    "@context": "https://www.w3.org/ns/activitystreams",
    id: `${actor}#activity-${crypto.randomUUID()}`,
    actor,
    ...activity,
  };
}

async function sign(ctx, command) {
  const body = JSON.stringify(withDefaults(ctx, command.activity));
  const request = new Request(command.inbox, {
    method: "POST",
    headers: { "Content-Type": "application/activity+json", Accept: "application/activity+json" },
    body,
  });
  const [key] = await ctx.getActorKeyPairs(IDENTIFIER);
  const signed = await signRequest(request, key.privateKey, key.keyId, {
    spec: command.spec ?? "draft-cavage-http-signatures-12",
    currentTime: Temporal.Now.instant().subtract({ seconds: command.ago ?? 0 }),
    body: new TextEncoder().encode(body).buffer,
  });
  return { url: signed.url, headers: Object.fromEntries(signed.headers), body };
}

// Fedify's getNodeInfo refuses loopback addresses whatever the federation allows, so the two
// fetches are made here, as getNodeInfo makes them, and the document parsed by Fedify's strict
// parseNodeInfo.
async function fetchNodeInfo(base) {
  const links = await (await fetch(new URL("/.well-known/nodeinfo", base))).json();
  const link = (links.links ?? []).find(
    (l) => l.rel === "http://nodeinfo.diaspora.software/ns/schema/2.1",
  );
  if (!link) throw new Error("/.well-known/nodeinfo has no NodeInfo 2.1 link");
  return await (await fetch(link.href)).json();
}

async function verifyRemoteObject(ctx, url) {
  const { document } = await ctx.documentLoader(url);
  const proofs = Array.isArray(document.proof) ? document.proof.length : document.proof ? 1 : 0;
  const object = await verifyObject(ApObject, document, {
    documentLoader: ctx.documentLoader,
    contextLoader: ctx.contextLoader,
  });
  return { verified: object !== null, proofs, type: document.type ?? null };
}

async function control(request, ctx) {
  const path = new URL(request.url).pathname;
  if (request.method === "GET" && path === "/control/received") return Response.json(received);
  if (request.method === "GET" && path === "/control/rejected") return Response.json(rejected);
  if (request.method === "GET" && path === "/control/inbox-log") return Response.json(inboxLog);
  if (request.method === "GET" && path === "/control/actor-fetches") {
    return Response.json(actorFetches);
  }
  if (request.method !== "POST") return new Response("not found\n", { status: 404 });
  const command = await request.json();
  try {
    if (path === "/control/pause") {
      paused = Boolean(command.paused);
      return Response.json({ ok: true, paused });
    }
    if (path === "/control/send") return Response.json({ ok: true, id: await send(ctx, command) });
    if (path === "/control/sign") return Response.json({ ok: true, ...(await sign(ctx, command)) });
    if (path === "/control/lookup") {
      const object = await ctx.lookupObject(command.url);
      if (object === null) throw new Error(`Fedify could not look up ${command.url}`);
      return Response.json({
        ok: true,
        actor: isActor(object),
        object: await object.toJsonLd({ format: "compact" }),
      });
    }
    if (path === "/control/collection") {
      const collection = await ctx.lookupObject(command.url);
      if (!(collection instanceof Collection)) {
        throw new Error(`${command.url} is not a collection`);
      }
      const items = [];
      for await (const item of traverseCollection(collection, ctx)) {
        items.push(await item.toJsonLd({ format: "compact" }));
      }
      return Response.json({ ok: true, totalItems: collection.totalItems, items });
    }
    if (path === "/control/nodeinfo") {
      const info = parseNodeInfo(await fetchNodeInfo(command.url));
      return Response.json({ ok: true, nodeinfo: info === null ? null : nodeInfoToJson(info) });
    }
    if (path === "/control/verify-object") {
      return Response.json({ ok: true, ...(await verifyRemoteObject(ctx, command.url)) });
    }
  } catch (error) {
    return Response.json({ ok: false, error: String(error?.message ?? error) });
  }
  return new Response("not found\n", { status: 404 });
}

function logInboxPost(path, headers, body) {
  let activity = {};
  try {
    activity = JSON.parse(body.toString("utf8"));
  } catch {}
  const scheme = headers["signature-input"] ? "rfc9421" : headers.signature ? "cavage" : null;
  const entry = {
    path,
    status: null,
    id: activity.id ?? null,
    type: activity.type ?? null,
    scheme,
  };
  inboxLog.push(entry);
  return entry;
}

// node:http in front of Fedify's fetch-style handler.
const server = createServer(async (incoming, outgoing) => {
  try {
    const chunks = [];
    for await (const chunk of incoming) chunks.push(chunk);
    const body = chunks.length ? Buffer.concat(chunks) : Buffer.alloc(0);
    const url = new URL(incoming.url, origin);
    const entry =
      incoming.method === "POST" && INBOX_PATHS.has(url.pathname)
        ? logInboxPost(url.pathname, incoming.headers, body)
        : null;
    let response;
    if (entry && paused) {
      response = new Response("paused by the test\n", { status: 503 });
    } else {
      const request = new Request(url, {
        method: incoming.method,
        headers: Object.entries(incoming.headers).map(([name, value]) => [name, String(value)]),
        body: incoming.method === "GET" || incoming.method === "HEAD" ? undefined : body,
      });
      response = url.pathname.startsWith("/control/")
        ? await control(request, federation.createContext(request, undefined))
        : await federation.fetch(request, { contextData: undefined });
    }
    if (entry) entry.status = response.status;
    outgoing.writeHead(response.status, Object.fromEntries(response.headers));
    outgoing.end(Buffer.from(await response.arrayBuffer()));
  } catch (error) {
    outgoing.writeHead(500, { "content-type": "text/plain" });
    outgoing.end(`fedify_peer: ${error?.stack ?? error}\n`);
  }
});
let origin;
server.listen(0, "127.0.0.1", () => {
  origin = `http://127.0.0.1:${server.address().port}`;
  const actor = `${origin}/users/${IDENTIFIER}`;
  process.stdout.write(`${JSON.stringify({ url: origin, actor })}\n`);
});
process.on("SIGTERM", () => process.exit(0)); // nothing to flush: every state is in memory
