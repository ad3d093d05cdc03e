// Shows on the page what the browser itself checked of the artist's signatures (PROTOCOL §2).
//
// - A page with a [data-feed-check] element (the artist page) fetches the signed feed named by
//   its data-feed, checks the feed's proof and every track's proof, and compares each track
//   card with the signed manifest of the same id (title and audio CID).
// - A track card with a data-manifest attribute (track page, embed, timeline) checks that
//   manifest's proof by the did in its data-artist-did.
// Each card's [data-signature] line then reads "Signed by did:key:…" or a warning saying why
// not; a browser that cannot check at all (no HTTPS, no Ed25519) says so instead, neutrally.

import {
  VerificationError,
  VerificationUnavailable,
  checkFeed,
  parseDocument,
  verifyManifest,
} from "./proof.js";

const CHECKED = "signed";
const FAILED = "failed";
const UNCHECKED = "unchecked";

function mark(line, state, ...content) {
  line.hidden = false;
  line.classList.remove(CHECKED, FAILED, UNCHECKED);
  line.classList.add(state);
  line.replaceChildren(...content);
  if (state === FAILED) line.setAttribute("role", "alert");
  else line.removeAttribute("role");
}

function code(text) {
  const node = document.createElement("code");
  node.className = "did";
  node.textContent = text;
  return node;
}

function symbol(text) {
  const node = document.createElement("span");
  node.className = "signature-symbol";
  node.setAttribute("aria-hidden", "true");
  node.textContent = text;
  return node;
}

function showSigned(line, did) {
  mark(line, CHECKED, symbol("✓"), "Signed by ", code(did),
       " — checked by your browser just now.");
}

function showFailed(line, reason) {
  mark(line, FAILED, symbol("⚠"), `Not verified: ${reason}. `,
       "This may not be what the artist published.");
}

function showUnchecked(line, reason) {
  mark(line, UNCHECKED, `Signature not checked: ${reason}.`);
}

function show(line, did, error) {
  if (!line) return;
  if (error === null) showSigned(line, did);
  else if (error instanceof VerificationUnavailable) showUnchecked(line, error.message);
  else showFailed(line, error.message);
}

function cidOfSource(card) {
  return card.dataset.audioCid || "";
}

/** The reason a card does not show what its signed manifest says, or null when it does. */
function mismatch(card, manifest) {
  if (card.dataset.title !== undefined && card.dataset.title !== manifest.title) {
    return new VerificationError("the title on this page is not the title the artist signed");
  }
  if (cidOfSource(card) && cidOfSource(card) !== manifest.audio?.cid) {
    return new VerificationError("the audio on this page is not the audio the artist signed");
  }
  return null;
}

async function fetchFeed(url) {
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-cache" });
  } catch (error) {
    throw new VerificationError(`the signed feed could not be fetched (${error.message})`);
  }
  if (!response.ok) {
    throw new VerificationError(`the signed feed could not be fetched (HTTP ${response.status})`);
  }
  return parseDocument(await response.text());
}

function showBanner(banner, did, error, count) {
  banner.hidden = false;
  banner.classList.remove(CHECKED, FAILED, UNCHECKED);
  if (error === null) {
    banner.classList.add(CHECKED);
    banner.removeAttribute("role");
    banner.replaceChildren(
      symbol("✓"),
      `Checked by your browser: this page's feed and its ${count} track${count === 1 ? "" : "s"} `
        + "are signed by ",
      code(did), ".");
  } else if (error instanceof VerificationUnavailable) {
    banner.classList.add(UNCHECKED);
    banner.removeAttribute("role");
    banner.replaceChildren(`Signatures not checked: ${error.message}.`);
  } else {
    banner.classList.add(FAILED);
    banner.setAttribute("role", "alert");
    const strong = document.createElement("strong");
    strong.textContent = "Warning: this page failed its signature check. ";
    banner.replaceChildren(
      symbol("⚠"), strong,
      `${error.message}. The tracks below may have been changed on the way to you: `
        + "do not rely on their titles, terms or files.");
  }
}

/** Check the feed behind an artist page and mark the banner and every track card. */
export async function checkFeedPage(banner, cards) {
  const did = banner.dataset.did;
  let feed;
  let result;
  try {
    feed = await fetchFeed(banner.dataset.feed || "/feed.json");
    result = await checkFeed(feed, { expectedArtist: did });
  } catch (error) {
    result = { error, tracks: new Map() };
  }
  const manifests = new Map(
    (Array.isArray(feed?.tracks) ? feed.tracks : []).map((manifest) => [manifest?.id, manifest]));
  for (const card of cards) {
    const line = card.querySelector("[data-signature]");
    const id = card.dataset.trackId;
    let error = result.error;
    if (error === null) {
      if (!result.tracks.has(id)) {
        error = new VerificationError("this track is not in the artist's signed feed");
      } else {
        error = result.tracks.get(id) || mismatch(card, manifests.get(id));
      }
    } else if (!(error instanceof VerificationUnavailable)) {
      error = new VerificationError(
        `the feed this page comes from did not verify (${error.message})`);
    }
    show(line, did, error);
  }
  const trackError = cards
    .map((card) => card.querySelector("[data-signature]"))
    .some((line) => line?.classList.contains(FAILED));
  const pageError = result.error
    ?? (trackError ? new VerificationError("a track on this page did not verify") : null);
  showBanner(banner, did, pageError, cards.length);
}

/** Check the manifest a card carries in its data-manifest and mark the card. */
export async function checkManifestCard(card) {
  const line = card.querySelector("[data-signature]");
  const did = card.dataset.artistDid;
  let error = null;
  try {
    const manifest = parseDocument(card.dataset.manifest);
    await verifyManifest(manifest, did);
    error = mismatch(card, manifest);
  } catch (caught) {
    error = caught instanceof VerificationError || caught instanceof VerificationUnavailable
      ? caught : new VerificationError(String(caught));
  }
  show(line, did, error);
}

/** Check whatever this page offers to check: its feed, or the manifests its cards carry. */
export function checkPage(root = document) {
  const banner = root.querySelector("[data-feed-check]");
  const cards = [...root.querySelectorAll("[data-track]")];
  const work = [];
  if (banner) {
    work.push(checkFeedPage(banner, cards.filter((card) => !card.dataset.manifest)));
  }
  for (const card of cards.filter((card) => card.dataset.manifest)) {
    work.push(checkManifestCard(card));
  }
  return Promise.all(work);
}
