// app.js: the page at /. It lists the server's files and shows each download
// made with ferry.js; the work itself happens in ferry.js's workers.
//
// Every URL it asks for is relative to the page, so that the page works
// behind a proxy that serves it under a sub-path (location /ferry/ {
// proxy_pass http://replicas/; }): the server's paths (wire.js, "/sse/")
// are taken below the page's folder, "." + PathSSE.
import * as ferry from "./ferry.js";
import { Entry, PathList, PathSSE, read } from "./wire.js";

const $ = (sel, root = document) => root.querySelector(sel);

/** downloads maps a path to its card; window.ferryPage exposes it for debugging and tests. */
const downloads = new Map();
window.ferryPage = { downloads };

let files = []; // from PathList: Entry fields under their Go names
let listError = ""; // why PathList could not be read
let linkError = ""; // why the link in the page's fragment cannot be downloaded

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== false && v != null) el.setAttribute(k, v === true ? "" : v);
  }
  el.append(...children.filter((c) => c != null));
  return el;
}

function size(n) {
  if (n < 0 || n == null) return "";
  const u = ["bytes", "KB", "MB", "GB", "TB"];
  let i = 0;
  for (; n >= 1000 && i < u.length - 1; i++) n /= 1000;
  return i === 0 ? `${n} ${n === 1 ? "byte" : "bytes"}` : `${n.toFixed(n < 10 ? 2 : 1)} ${u[i]}`;
}

function duration(s) {
  if (s == null || !isFinite(s)) return "";
  s = Math.ceil(s);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// below returns the URL of one of the server's paths (from wire.js) below
// the page's folder: the server's root, behind any prefix a proxy adds.
function below(serverPath) {
  return new URL("." + serverPath, document.baseURI);
}

function sseURL(path) {
  return below(PathSSE + path.split("/").map(encodeURIComponent).join("/")).href;
}

// followBox is the "Wait for it" checkbox: downloads started while it is
// checked follow files still being written.
const followBox = $("#follow");

// seedInput is "Update from a copy I have": its file is a seed of the next
// download started, which copies the blocks it holds instead of fetching them.
const seedInput = $("#seed");

// takeSeed returns the file picked as a seed, once: [file], or undefined.
function takeSeed() {
  const f = seedInput.files?.[0];
  if (!f) return undefined;
  seedInput.value = "";
  return [f];
}

// Card is one download on the page.
class Card {
  constructor(path, total, url = sseURL(path)) {
    this.path = path;
    this.follow = false; // follow the file while it is being written
    this.url = url; // the PathSSE URL, with its query (a signed link's exp and sig)
    this.total = total;
    this.log = [];
    this.dl = null;
    this.result = null;
    this.el = h("li", { class: "dl", "data-path": path, "data-state": "starting" },
      h("div", { class: "dl-head" }, h("span", { class: "name", title: path }, path), h("span", { class: "size muted" }, size(total))),
      h("progress", { max: 1, value: 0, "aria-label": `Progress of ${path}` }),
      h("div", { class: "stats muted" }),
      h("p", { class: "notice", hidden: true }),
      h("p", { class: "message", role: "status", hidden: true }),
      h("div", { class: "verified", hidden: true }),
      h("div", { class: "actions" }),
      h("details", { class: "log" }, h("summary", {}, "Details"), h("ol")),
    );
    $("#downloads").prepend(this.el);
    $("#downloads-section").hidden = false;
    downloads.set(path, this);
  }

  // start downloads the file, resuming from storage when it is there (a
  // finished earlier version there is a seed of the new one, as are seeds).
  start(etag, seeds) {
    this.setError("");
    this.el.classList.remove("failed", "done");
    if (this.result) this.reset();
    this.seedName = seeds?.[0]?.name ?? "";
    try {
      this.dl = ferry.download(this.url, {
        etag, follow: this.follow || undefined, // undefined: as the link says
        seeds,
        onProgress: (p) => this.show(p),
        onLog: (e) => this.addLog(e),
      });
    } catch (err) {
      this.dl = null;
      return this.failed({ code: "failed", message: err.message });
    }
    this.actions("active");
    this.dl.done.then((r) => this.finished(r), (err) => this.failed(err));
  }

  show(p) {
    this.progress = p;
    const el = this.el;
    el.dataset.state = p.state;
    el.dataset.bytes = p.bytes;
    el.dataset.total = p.total;
    el.dataset.reconnects = p.reconnects;
    el.dataset.corrupt = p.corrupt;
    el.dataset.live = !!p.live;
    el.dataset.seeded = p.bytesSeeded ?? 0;
    if (p.total >= 0) this.total = p.total;
    $(".size", el).textContent = p.live ? "still being written" : size(this.total);
    // While live the total is unknown: an indeterminate bar.
    const bar = $("progress", el);
    if (p.live) bar.removeAttribute("value");
    else bar.value = p.total > 0 ? p.bytes / p.total : p.total === 0 ? 1 : 0;
    const parts = [p.live ? `${size(p.bytes)} so far` : `${size(p.bytes)} of ${size(p.total)}`];
    if (p.live && p.state === "downloading") parts.push(h("span", { class: "live" }, "waiting for the file to grow"));
    if (p.state === "downloading" && p.rate > 0) parts.push(`${size(p.rate)}/s`, ...(p.live ? [] : [`${duration(p.eta)} left`]));
    if (p.state === "paused") parts.push("paused");
    if (p.state === "checking") parts.push("checking");
    if (p.state === "seeding") parts.push(p.message || "looking for the file's blocks in your copy");
    if (p.bytesSeeded) parts.push(`${size(p.bytesSeeded)} copied from ${this.seedFrom()}`);
    if (p.reconnects) parts.push(`${p.reconnects} reconnect${p.reconnects > 1 ? "s" : ""}`);
    if (p.corrupt) parts.push(`${p.corrupt} bad block${p.corrupt > 1 ? "s" : ""} fetched again`);
    if (p.storage === "memory") parts.push("in memory");
    $(".stats", el).replaceChildren(...parts.flatMap((x, i) => (i ? [" · ", x] : [x])));
    const notice = $(".notice", el);
    notice.hidden = !p.notice;
    notice.textContent = p.notice;
    if (p.state !== this.lastState) {
      this.lastState = p.state;
      renderFiles();
    }
    const warn = p.state === "waiting" || p.state === "reconnecting";
    this.setError(warn ? p.message : "", "warn");
    if (p.state === "paused" || p.state === "downloading") this.actions(p.state === "paused" ? "paused" : "active");
  }

  addLog(e) {
    this.log.push(e);
    const time = new Date(e.t).toLocaleTimeString();
    $(".log ol", this.el).append(h("li", {}, h("span", { class: "muted" }, time + " "), e.text));
  }

  setError(text, kind = "error") {
    const m = $(".message", this.el);
    m.hidden = !text;
    m.textContent = text;
    m.className = `message ${kind}`;
  }

  actions(mode) {
    if (mode === this.mode) return; // keep the buttons under the pointer
    this.mode = mode;
    const a = $(".actions", this.el);
    a.replaceChildren();
    const btn = (label, fn, cls = "") => h("button", { type: "button", class: cls, onclick: fn }, label);
    switch (mode) {
      case "active":
        a.append(btn("Pause", () => this.dl?.pause()), btn("Cancel", () => this.cancel(), "quiet"));
        break;
      case "paused":
        a.append(btn("Resume", () => (this.dl ? this.dl.resume() : this.start())), btn("Cancel", () => this.cancel(), "quiet"));
        break;
      case "done":
        a.append(
          h("a", { class: "button primary", href: this.result.objectURL(), download: this.result.name }, "Save file"),
          btn("Remove", () => this.removeDone(), "quiet"),
        );
        break;
      case "failed":
        a.append(btn("Try again", () => this.start()), btn("Remove", () => this.cancel(), "quiet"));
        break;
    }
  }

  async cancel() {
    if (this.dl?.worker) {
      this.dl.cancel();
      await this.dl.done.catch(() => {});
    } else {
      await ferry.remove({ key: this.key ?? (await keyOf(this.path)) });
    }
    this.drop();
  }

  // seedFrom says where the copied bytes came from.
  seedFrom() {
    return this.seedName ? `“${this.seedName}”` : "the copy kept here";
  }

  // reset clears a finished card for the download of another version.
  reset() {
    if (this.result._url) URL.revokeObjectURL(this.result._url);
    this.result = null;
    delete this.el.dataset.sha256Local;
    delete this.el.dataset.sha256;
    $(".verified", this.el).hidden = true;
    this.mode = "";
  }

  async removeDone() {
    await this.result?.remove();
    this.drop();
  }

  drop() {
    downloads.delete(this.path);
    this.el.remove();
    $("#downloads-section").hidden = downloads.size === 0;
    renderFiles();
  }

  finished(r, restored = false) {
    this.result = r;
    this.key = r.key;
    const el = this.el;
    el.dataset.state = "done";
    el.dataset.bytes = r.size;
    el.dataset.total = r.size;
    el.dataset.sha256 = r.sha256;
    el.classList.add("done");
    $("progress", el).value = 1;
    $(".size", el).textContent = size(r.size);
    const st = r.stats;
    $(".stats", el).textContent = [size(r.size), r.storage === "memory" ? "held in memory until you leave the page" : "kept in this browser until you remove it",
      st?.reconnects ? `${st.reconnects} reconnect${st.reconnects > 1 ? "s" : ""}` : "",
      st?.corrupt ? `${st.corrupt} bad block${st.corrupt > 1 ? "s" : ""} fetched again` : "",
      st?.bytesSeeded ? `${size(st.bytesSeeded)} copied from ${this.seedFrom()}, ${size(st.bytesFetched)} fetched` : ""].filter(Boolean).join(" · ");
    el.dataset.seeded = st?.bytesSeeded ?? 0;
    el.dataset.fetched = st?.bytesFetched ?? 0;
    this.setError("");
    const local = h("span", { class: "local muted" });
    $(".verified", el).replaceChildren(
      h("div", {}, h("span", { class: "mark" }, "✓ Verified"), h("span", { class: "muted" }, " every block and the whole file")),
      h("div", {}, h("span", { class: "muted" }, "SHA-256 "), h("code", { class: "sha" }, r.sha256), local),
    );
    $(".verified", el).hidden = false;
    this.actions("done");
    renderFiles();
    const check = () => {
      local.replaceChildren(" · checking here…");
      local.classList.remove("bad");
      ferry.checkSHA256(r.file, { onProgress: (b, t) => (local.textContent = ` · checking here… ${Math.floor((100 * b) / t)} %`) })
        .then((hex) => {
          el.dataset.sha256Local = hex;
          local.textContent = hex === r.sha256 ? " · the same computed here ✓" : ` · computed here: ${hex} ✗ differs`;
          local.classList.toggle("bad", hex !== r.sha256);
        }, (err) => (local.textContent = ` · could not check here: ${err.message}`));
    };
    if (restored) local.append(" · ", h("button", { type: "button", class: "link", onclick: check }, "check SHA-256 here"));
    else check();
  }

  failed(err) {
    if (err.code === "cancelled") return;
    this.el.dataset.state = "error";
    this.el.dataset.error = err.code;
    this.el.classList.add("failed");
    this.setError(err.message);
    this.actions(err.code === "not-found" ? "failed-gone" : "failed");
    if (err.code === "not-found") {
      $(".actions", this.el).append(h("button", { type: "button", class: "quiet", onclick: () => this.cancel() }, "Remove"));
    }
    this.addLog({ t: Date.now(), kind: "error", text: err.message });
  }
}

async function keyOf(path) {
  const entry = (await ferry.stored()).find((e) => e.path === path);
  return entry?.key ?? "";
}

function renderFiles() {
  const ul = $("#files");
  ul.replaceChildren();
  for (const f of files) {
    const card = downloads.get(f.Path);
    const state = card?.el.dataset.state;
    // A finished download of another version than the listed one can be
    // updated: the copy kept here seeds the new version.
    const stale = !!card?.result && !!f.ETag && card.result.etag !== f.ETag;
    const busy = !!card && state !== "error" && !stale;
    const label = !card || state === "error" ? "Download" : stale ? "Update" : card.result ? "Downloaded" : state === "paused" ? "Paused" : "Downloading";
    ul.append(h("li", { "data-path": f.Path },
      h("span", { class: "name", title: f.Path }, f.Path),
      h("span", { class: "size muted" }, size(f.Size)),
      h("button", { type: "button", class: "primary", disabled: busy, onclick: () => startFile(f) }, label),
    ));
  }
  const status = $("#files-status");
  const problem = [listError, linkError].filter(Boolean).join(" ");
  status.hidden = files.length > 0 && !problem;
  status.textContent = problem || "No files are served here.";
  status.classList.toggle("error", !!problem);
}

function startFile(f) {
  let card = downloads.get(f.Path);
  if (!card) card = new Card(f.Path, f.Size);
  card.follow = followBox.checked;
  // A file still being written is listed with the etag of its size so far:
  // a follow takes the version its stream announces instead.
  card.start(card.follow ? undefined : f.ETag, takeSeed()); // with follow, seeds are refused: the card says why
  renderFiles();
}

async function showStorage() {
  const note = $("#storage");
  if (!ferry.opfs) {
    note.textContent = "This browser has no private file system for downloads, so files are kept in memory: very large files may not fit.";
    note.hidden = false;
    note.classList.add("warn");
    return;
  }
  const est = await navigator.storage.estimate?.().catch(() => null);
  if (est?.quota) {
    note.textContent = `Downloads are kept in this browser's storage until you remove them (${size(est.quota - est.usage)} free).`;
    note.hidden = false;
  }
}

async function restore() {
  for (const e of await ferry.stored().catch(() => [])) {
    if (downloads.has(e.path)) continue;
    const card = new Card(e.path, e.size, e.url || undefined); // e.url keeps a signed link's query
    card.key = e.key;
    card.follow = !!e.follow;
    if (e.status === "done") {
      card.finished(await ferry.open(e), true);
    } else if (e.status === "active") {
      card.start(); // interrupted by a reload or a crash: carry on
    } else {
      card.show({ state: "paused", bytes: e.bytes, total: e.growing ? -1 : e.size, live: !!e.growing, reconnects: 0, corrupt: 0, notice: "", message: "" });
      card.actions("paused");
    }
  }
}

async function listFiles() {
  let res;
  try {
    res = await fetch(below(PathList), { cache: "no-store" });
    if (res.ok) files = (await res.json()).map((j) => read(Entry, j));
  } catch (err) {
    listError = `Could not list the files (${err.message}). Is the server running?`;
  }
  if (res?.status === 401 || res?.status === 403) {
    listError = `Access denied (${res.status}): this server lists its files only to holders of an access token, which this page cannot send. ` +
      `To download a file, open its signed link (from ferry sign) in this page, after a #: ${below("/").pathname}#${PathSSE}<path>?exp=…&sig=…`;
  } else if (res && !res.ok) {
    listError = `Could not list the files: the server answered ${res.status}.`;
  }
  renderFiles();
}

// startLink downloads the file of a link given in the page's fragment,
// #/sse/<path>?exp=…&sig=… or the whole URL ferry sign prints, keeping its
// query: a signed link opens one file even where the list is private. A
// link that starts with PathSSE is a path of the server, so below the
// page's folder; a whole URL must point below it too.
function startLink() {
  const link = location.hash.slice(1);
  const streams = below(PathSSE);
  const u = link.startsWith(PathSSE) ? below(link) : URL.parse(link, document.baseURI);
  linkError = link && (u?.origin !== streams.origin || !u.pathname.startsWith(streams.pathname))
    ? `The link after the # in this page's address is not a download of this server: ${link}` : "";
  renderFiles();
  if (!link || linkError) return;
  const path = decodeURIComponent(u.pathname.slice(streams.pathname.length));
  const card = downloads.get(path) ?? new Card(path, -1);
  card.url = u.origin + u.pathname + u.search;
  card.follow ||= followBox.checked; // a link's follow=1 follows too (ferry.js)
  if (!card.dl?.worker && !card.result) card.start(); // new, failed or paused: (re)start with this link
}

showStorage();
await restore();
startLink();
addEventListener("hashchange", startLink);
await listFiles();
document.body.dataset.ready = "true";
