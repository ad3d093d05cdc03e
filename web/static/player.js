// The player: progressive enhancement over the pages' own <audio> elements.
//
// Without JavaScript every track keeps its native <audio controls>. With it, each track card
// (an element with data-track holding an <audio data-audio>) gets a Play button, and one
// player bar plays the tracks in page order: play/pause, seek, previous/next, keyboard keys
// (Space, ←/→, N/P) and the Media Session API, so phones show the controls on the lock screen.
// On a phone or a slow link (Save-Data, a 2G/3G connection) a track whose <audio> names a
// listening rendition (data-rendition, data-rendition-type) streams that small copy instead of
// the original, when the browser can play it; the original stays the download link.
// Inside a [data-preload-next] list (a release page) the next track is loaded while one plays,
// so that the change on `ended` is as close to gapless as separate files allow.

const SEEK_STEP_SECONDS = 5;
const RESTART_AFTER_SECONDS = 3;
const SVG = "http://www.w3.org/2000/svg";
const ICONS = {
  play: "M8 5v14l11-7z",
  pause: "M6 5h4v14H6zM14 5h4v14h-4z",
  previous: "M6 5h2v14H6zM9.5 12 18 5v14z",
  next: "M16 5h2v14h-2zM6 5l8.5 7L6 19z",
};

/** m:ss, or h:mm:ss from an hour on — as the pages print durations. */
export function clock(seconds) {
  const total = Number.isFinite(seconds) ? Math.max(0, Math.round(seconds)) : 0;
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.classList.add("icon");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

function setIcon(button, name) {
  button.querySelector("svg")?.replaceWith(icon(name));
}

// Keys typed into these stay theirs: Space presses a button, arrows move a slider.
function keepsKey(target, key) {
  if (!(target instanceof Element)) return false;
  if (target.closest("input, textarea, select, [contenteditable]:not([contenteditable=false])")) {
    return true;
  }
  return key === " " && Boolean(target.closest("button, a, summary, audio, [role=button]"));
}

/** Whether this device should stream the small listening copies: a phone, or a slow link. */
export function prefersRenditions() {
  const connection = navigator.connection;
  if (connection?.saveData) return true;
  if (["slow-2g", "2g", "3g"].includes(connection?.effectiveType)) return true;
  return window.matchMedia?.("(pointer: coarse) and (max-width: 48rem)").matches ?? false;
}

/** Point `audio` at its listening rendition when it has one this browser plays. */
function useRendition(audio) {
  const { rendition, renditionType } = audio.dataset;
  const source = audio.querySelector("source");
  if (!rendition || !source || !audio.canPlayType(renditionType || "")) return false;
  source.src = rendition;
  source.type = renditionType;
  audio.load();
  return true;
}

class Track {
  constructor(card, renditions = false) {
    this.card = card;
    this.audio = card.querySelector("audio[data-audio]");
    this.rendition = renditions && useRendition(this.audio);
    this.title = card.dataset.title || "";
    this.artist = card.dataset.artist || "";
    this.album = card.dataset.album || "";
    this.cover = card.dataset.cover || "";
    this.coverType = card.dataset.coverType || "";
    // What the page says until the browser has loaded the audio's own metadata.
    this.knownDuration = Number(card.dataset.duration) || 0;
  }

  get duration() {
    const { duration } = this.audio;
    return Number.isFinite(duration) && duration > 0 ? duration : this.knownDuration;
  }
}

export class Player {
  constructor(cards) {
    const renditions = prefersRenditions();
    this.tracks = cards.map((card) => new Track(card, renditions));
    this.index = 0;
    this.preloadsNext = Boolean(cards[0]?.closest("[data-preload-next]"));
    this.bar = this.buildBar();
    this.tracks.forEach((track, index) => this.enhance(track, index));
    this.show(0);
    document.addEventListener("keydown", (event) => this.onKey(event));
    this.setUpMediaSession();
  }

  get current() {
    return this.tracks[this.index];
  }

  get playing() {
    return !this.current.audio.paused && !this.current.audio.ended;
  }

  // --- the markup -----------------------------------------------------------------------------

  buildBar() {
    const button = (action, label, iconName) => {
      const node = element("button", { type: "button", class: `player-${action}`, "aria-label": label });
      node.append(icon(iconName));
      node.addEventListener("click", () => this[action]());
      return node;
    };
    const bar = {
      root: element("section", { class: "player", "aria-label": "Player" }),
      cover: element("img", { class: "player-cover", alt: "", width: "48", height: "48" }),
      title: element("p", { class: "player-title" }),
      artist: element("p", { class: "player-artist" }),
      previousButton: button("previous", "Previous track", "previous"),
      toggleButton: button("toggle", "Play", "play"),
      nextButton: button("next", "Next track", "next"),
      position: element("span", { class: "player-time" }, "0:00"),
      seek: element("input", {
        type: "range", class: "player-seek", min: "0", max: "0", step: "1", value: "0",
        "aria-label": "Seek",
      }),
      duration: element("span", { class: "player-time" }, "0:00"),
    };
    bar.cover.hidden = true;
    bar.seek.addEventListener("input", () => {
      this.current.audio.currentTime = Number(bar.seek.value);
    });
    bar.root.append(
      element("div", { class: "player-now" }, bar.cover,
              element("div", { class: "player-words" }, bar.title, bar.artist)),
      element("div", { class: "player-buttons" },
              bar.previousButton, bar.toggleButton, bar.nextButton),
      element("div", { class: "player-position" }, bar.position, bar.seek, bar.duration),
      element("p", { class: "player-keys" },
              "Keys: Space play or pause · ← → seek 5 s · N next · P previous"),
    );
    const slot = document.querySelector("[data-player-slot]");
    if (slot) {
      slot.append(bar.root);
    } else {
      document.body.append(bar.root);
      document.body.classList.add("has-player");
    }
    if (this.tracks.length === 1) {
      bar.previousButton.hidden = true;
      bar.nextButton.hidden = true;
    }
    return bar;
  }

  enhance(track, index) {
    const { audio, card } = track;
    audio.controls = false;
    card.classList.add("enhanced");
    const label = element("span", { class: "play-label" }, "Play");
    const button = element("button", { type: "button", class: "play-button" },
                           icon("play"), label,
                           element("span", { class: "visually-hidden" }, ` “${track.title}”`));
    button.addEventListener("click", () => {
      if (this.index === index && this.playing) this.pause();
      else this.play(index);
    });
    track.button = button;
    track.label = label;
    audio.before(button);
    audio.addEventListener("play", () => this.onPlay(index));
    audio.addEventListener("pause", () => this.onPause(index));
    audio.addEventListener("ended", () => this.onEnded(index));
    audio.addEventListener("timeupdate", () => index === this.index && this.showPosition());
    audio.addEventListener("durationchange", () => index === this.index && this.showPosition());
  }

  // --- what the listener does -----------------------------------------------------------------

  play(index = this.index) {
    if (index !== this.index) {
      this.current.audio.pause();
      this.show(index);
    }
    const { audio } = this.current;
    if (audio.preload === "none") audio.preload = "auto";
    return audio.play().catch((error) => {
      // A browser refusing to play (no user gesture yet, a format it lacks) says why here.
      this.bar.artist.textContent = `Cannot play: ${error.message}`;
    });
  }

  pause() {
    this.current.audio.pause();
  }

  toggle() {
    if (this.playing) this.pause();
    else this.play();
  }

  previous() {
    if (this.current.audio.currentTime > RESTART_AFTER_SECONDS || this.index === 0) {
      this.current.audio.currentTime = 0;
    } else {
      this.play(this.index - 1);
    }
  }

  next() {
    if (this.index < this.tracks.length - 1) this.play(this.index + 1);
  }

  seekBy(seconds) {
    const { audio } = this.current;
    const end = Number.isFinite(audio.duration) ? audio.duration : Infinity;
    audio.currentTime = Math.min(end, Math.max(0, audio.currentTime + seconds));
  }

  seekTo(seconds) {
    this.current.audio.currentTime = Math.max(0, seconds);
  }

  onKey(event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (keepsKey(event.target, event.key)) return;
    const actions = {
      " ": () => this.toggle(),
      ArrowLeft: () => this.seekBy(-SEEK_STEP_SECONDS),
      ArrowRight: () => this.seekBy(SEEK_STEP_SECONDS),
      n: () => this.next(),
      N: () => this.next(),
      p: () => this.previous(),
      P: () => this.previous(),
    };
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  }

  // --- what the page shows --------------------------------------------------------------------

  onPlay(index) {
    this.tracks.forEach((track, other) => other !== index && track.audio.pause());
    if (index !== this.index) this.show(index);
    this.showState();
    if (this.preloadsNext) this.preload(index + 1);
  }

  /** Start loading a track that has not been, so it can start at once when its turn comes. */
  preload(index) {
    const audio = this.tracks[index]?.audio;
    if (!audio || audio.preload === "auto") return;
    audio.preload = "auto";
    if (audio.readyState === HTMLMediaElement.HAVE_NOTHING) audio.load();
  }

  onPause(index) {
    if (index === this.index) this.showState();
    else this.showTrackState(this.tracks[index], false);
  }

  onEnded(index) {
    if (index === this.index && index < this.tracks.length - 1) this.play(index + 1);
    else this.showState();
  }

  show(index) {
    this.index = index;
    const track = this.current;
    this.bar.title.textContent = track.title;
    this.bar.artist.textContent = track.artist;
    this.bar.cover.hidden = !track.cover;
    if (track.cover) this.bar.cover.src = track.cover;
    this.bar.previousButton.disabled = false;
    this.bar.nextButton.disabled = index >= this.tracks.length - 1;
    this.tracks.forEach((other) => other.card.classList.toggle("current", other === track));
    this.showPosition();
    this.showState();
    this.showMetadata();
  }

  showTrackState(track, playing) {
    track.label.textContent = playing ? "Pause" : "Play";
    setIcon(track.button, playing ? "pause" : "play");
  }

  showState() {
    const playing = this.playing;
    this.tracks.forEach((track) => this.showTrackState(track, playing && track === this.current));
    this.bar.toggleButton.setAttribute("aria-label", playing ? "Pause" : "Play");
    setIcon(this.bar.toggleButton, playing ? "pause" : "play");
    if ("mediaSession" in navigator) {
      navigator.mediaSession.playbackState = playing ? "playing" : "paused";
    }
  }

  showPosition() {
    const { audio, duration } = this.current;
    this.bar.seek.max = String(duration);
    this.bar.seek.value = String(audio.currentTime);
    this.bar.seek.setAttribute(
      "aria-valuetext", `${clock(audio.currentTime)} of ${clock(duration)}`);
    this.bar.position.textContent = clock(audio.currentTime);
    this.bar.duration.textContent = clock(duration);
    const loaded = Number.isFinite(audio.duration) && audio.duration > 0;
    if ("mediaSession" in navigator && loaded && audio.currentTime <= duration) {
      try {
        navigator.mediaSession.setPositionState({
          duration, position: audio.currentTime, playbackRate: audio.playbackRate || 1,
        });
      } catch {
        // Some browsers refuse position state mid-seek; the next timeupdate sets it again.
      }
    }
  }

  // --- the Media Session API (lock screens, headsets, media keys) ----------------------------

  showMetadata() {
    if (!("mediaSession" in navigator) || typeof MediaMetadata !== "function") return;
    const track = this.current;
    const artwork = track.cover
      ? [{ src: new URL(track.cover, document.baseURI).href, ...(track.coverType && { type: track.coverType }) }]
      : [];
    navigator.mediaSession.metadata = new MediaMetadata({
      title: track.title, artist: track.artist, album: track.album, artwork,
    });
  }

  setUpMediaSession() {
    if (!("mediaSession" in navigator)) return;
    const handlers = {
      play: () => this.play(),
      pause: () => this.pause(),
      stop: () => { this.pause(); this.seekTo(0); },
      previoustrack: () => this.previous(),
      nexttrack: () => this.next(),
      seekbackward: (details) => this.seekBy(-(details.seekOffset || SEEK_STEP_SECONDS)),
      seekforward: (details) => this.seekBy(details.seekOffset || SEEK_STEP_SECONDS),
      seekto: (details) => this.seekTo(details.seekTime),
    };
    for (const [action, handler] of Object.entries(handlers)) {
      try {
        navigator.mediaSession.setActionHandler(action, handler);
      } catch {
        // An action this browser does not know; the others still work.
      }
    }
  }
}

/** A Player over every playable track card under `root`, or null when there is none. */
export function enhancePlaylist(root = document) {
  const cards = [...root.querySelectorAll("[data-track]")]
    .filter((card) => card.querySelector("audio[data-audio]"));
  return cards.length ? new Player(cards) : null;
}
