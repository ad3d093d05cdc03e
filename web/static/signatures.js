// Shows on the page what the browser itself checked of the artist's signatures (PROTOCOL §2).
//
// - A page with a [data-feed-check] element (the artist page) fetches the signed feed named by
//   its data-feed, checks the feed's proof and every track's proof, and compares each track
//   card with the signed manifest of the same id (title and audio CID), and each release card
//   (data-release-id) with the feed's signed release of that id.
// - A track card with a data-manifest attribute (track page, embed, timeline, release page)
//   checks that manifest's proof by the did in its data-artist-did.
// - A page with a [data-release-check] element (the release page) checks the signed release in
//   its data-release by its data-did, and that the page's tracks are the release's, in order.
// Each card's [data-signature] line then reads "Signed by did:key:…" or a warning saying why
// not; a browser that cannot check at all (no HTTPS, no Ed25519) says so instead, neutrally.

import {
  VerificationError,
  VerificationUnavailable,
  checkFeed,
  parseDocument,
  verifyManifest,
  verifyRelease,
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

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

function showBanner(banner, did, error, count, releases = 0) {
  banner.hidden = false;
  banner.classList.remove(CHECKED, FAILED, UNCHECKED);
  if (error === null) {
    banner.classList.add(CHECKED);
    banner.removeAttribute("role");
    const what = releases ? `${plural(releases, "release")} and ${plural(count, "track")}`
      : plural(count, "track");
    banner.replaceChildren(
      symbol("✓"),
      `Checked by your browser: this page's feed and its ${what} are signed by `,
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

/** The reason a release card does not show a release the feed lists, signed, or null. */
async function releaseCardError(card, feed, did) {
  const releases = Array.isArray(feed?.releases) ? feed.releases : [];
  const release = releases.find((candidate) => candidate?.id === card.dataset.releaseId);
  if (!release) return new VerificationError("a release on this page is not in the signed feed");
  try {
    await verifyRelease(release, did);
  } catch (error) {
    return error;
  }
  if (card.dataset.title !== undefined && card.dataset.title !== release.title) {
    return new VerificationError("a release's title on this page is not the title the artist signed");
  }
  return null;
}

/** Check the feed behind an artist page and mark the banner, every track card, and every
 * release card (an element with data-release-id) against the feed's signed releases. */
export async function checkFeedPage(banner, cards, releaseCards = []) {
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
  let releaseError = null;
  if (result.error === null) {
    const errors = await Promise.all(releaseCards.map((card) => releaseCardError(card, feed, did)));
    releaseError = errors.find((error) => error !== null) ?? null;
  }
  const pageError = result.error
    ?? (trackError ? new VerificationError("a track on this page did not verify") : null)
    ?? (releaseError ? new VerificationError(
      `a release on this page did not verify (${releaseError.message})`) : null);
  showBanner(banner, did, pageError, cards.length, releaseCards.length);
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

/** The reason the cards do not show the release's tracks in its order, or null when they do. */
function releaseMismatch(release, cards) {
  const entries = release.tracks; // in play order, as signed
  const shown = cards.map((card) => card.dataset.trackId);
  const wanted = entries.map((entry) => entry.id).filter((id) => shown.includes(id));
  if (shown.length !== wanted.length || shown.some((id, index) => id !== wanted[index])) {
    return new VerificationError("the tracks on this page are not the release's, in its order");
  }
  const byId = new Map(entries.map((entry) => [entry.id, entry]));
  for (const card of cards) {
    if (cidOfSource(card) && cidOfSource(card) !== byId.get(card.dataset.trackId).cid) {
      return new VerificationError("a track's audio on this page is not the audio the release lists");
    }
  }
  return null;
}

function showReleaseBanner(banner, did, error, count) {
  banner.hidden = false;
  banner.classList.remove(CHECKED, FAILED, UNCHECKED);
  if (error === null) {
    banner.classList.add(CHECKED);
    banner.removeAttribute("role");
    banner.replaceChildren(
      symbol("✓"),
      `Checked by your browser: this release and its ${count} track${count === 1 ? "" : "s"} `
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
    strong.textContent = "Warning: this release failed its signature check. ";
    banner.replaceChildren(
      symbol("⚠"), strong,
      `${error.message}. Do not rely on its titles, terms or files.`);
  }
}

/** Check the signed release a release page carries, its track cards, and mark the banner. */
export async function checkReleasePage(banner, cards) {
  const did = banner.dataset.did;
  let error = null;
  try {
    const release = parseDocument(banner.dataset.release);
    await verifyRelease(release, did);
    error = releaseMismatch(release, cards);
  } catch (caught) {
    error = caught instanceof VerificationError || caught instanceof VerificationUnavailable
      ? caught : new VerificationError(String(caught));
  }
  await Promise.all(cards.map((card) => checkManifestCard(card)));
  if (error === null && cards.some((card) => card.querySelector("[data-signature].failed"))) {
    error = new VerificationError("a track on this page did not verify");
  }
  showReleaseBanner(banner, did, error, cards.length);
}

/** Check whatever this page offers to check: its feed, its release, or its cards' manifests. */
export function checkPage(root = document) {
  const banner = root.querySelector("[data-feed-check]");
  const releaseBanner = root.querySelector("[data-release-check]");
  const cards = [...root.querySelectorAll("[data-track]")];
  const work = [];
  if (releaseBanner) {
    return Promise.all([checkReleasePage(releaseBanner, cards)]);
  }
  if (banner) {
    const releaseCards = [...root.querySelectorAll("[data-release-id]")];
    work.push(checkFeedPage(banner, cards.filter((card) => !card.dataset.manifest), releaseCards));
  }
  for (const card of cards.filter((card) => card.dataset.manifest)) {
    work.push(checkManifestCard(card));
  }
  return Promise.all(work);
}
