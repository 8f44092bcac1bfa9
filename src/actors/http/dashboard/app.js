// The admin dashboard: renders what /v1/events pushes (the cluster status every second, the
// leader's migrations, every node's log lines) and sends operations to the REST API. Plain DOM,
// no framework, nothing fetched from elsewhere.
const $ = (id) => document.getElementById(id);
const logsKept = 500;
const errorsKept = 20;
const levelNames = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const logs = [];
let status = { nodes: [], departed: [], collections: [], jobs: [], coordinator: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

function notice(text, isError = false) {
  const n = $("notice");
  n.textContent = text;
  n.className = isError ? "error" : "";
}

/** The API key the page sends (kept for this tab only), when the node asks for one. */
const keyStorage = "jade-api-key";
const headers = () => {
  const key = sessionStorage.getItem(keyStorage);
  return { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) };
};

/** Calls the REST API; says what happened either way. */
async function api(method, path, body, done) {
  try {
    const res = await fetch(path, { method, headers: headers(), body: body === undefined ? undefined : JSON.stringify(body) });
    const reply = await res.json();
    if (!reply.ok) return notice(`${method} ${path}: ${reply.error.code}: ${reply.error.message}`, true);
    notice(done);
  } catch (err) {
    notice(`${method} ${path}: ${err.message}`, true);
  }
}

const mib = (bytes) => `${Math.round(bytes / 1048576)} MiB`;

/**
 * Keeps one element per item in `container`, in the items' order: builds the missing ones,
 * updates those it keeps and removes the rest. Elements outlive updates, so a status pushed
 * every second never swaps a button out between a mouse press and its release (a click lost),
 * and an unchanged grid costs no DOM work.
 */
function reconcile(container, items, keyOf, build, update) {
  const existing = new Map([...container.children].map((child) => [child.dataset.key, child]));
  items.forEach((item, i) => {
    const key = String(keyOf(item));
    let node = existing.get(key);
    existing.delete(key);
    if (!node) {
      node = build(item);
      node.dataset.key = key;
    }
    update(node, item);
    if (container.children[i] !== node) container.insertBefore(node, container.children[i] ?? null);
  });
  for (const stale of existing.values()) stale.remove();
}

/** Refills `node` only when what it shows changed (`signature`). */
function fill(node, signature, ...children) {
  if (node.dataset.sig === signature) return;
  node.dataset.sig = signature;
  node.replaceChildren(...children);
}

function renderNodes() {
  const replicasOn = (id) => status.collections.reduce((n, c) => n + c.shards.reduce((m, s) => m + s.replicas.filter((r) => r.node === id).length, 0), 0);
  // A node that stopped cleanly has left the membership but keeps its replicas until it is
  // back (or the restart delay ends): it stays on the page, as restarting.
  const departedAt = new Map((status.departed ?? []).map((d) => [d.node, d.at]));
  const shown = [...status.nodes, ...[...departedAt.keys()].filter((id) => !status.nodes.some((n) => n.id === id)).map((id) => ({ id, live: false, absent: true }))].sort((a, b) => (a.id < b.id ? -1 : 1));
  reconcile(
    $("nodes"),
    shown,
    (n) => n.id,
    (n) =>
      el(
        "tr",
        { "data-node": n.id },
        el("td"),
        el("td", { "data-testid": `state-${n.id}` }),
        el("td", { "data-testid": `replicas-${n.id}` }),
        el("td"),
        el("td"),
        el("td"),
        el("td", { "data-testid": `settings-${n.id}` }),
        el(
          "td",
          {},
          el("button", { type: "button", "data-testid": `drain-${n.id}`, onclick: () => api("POST", "/v1/admin/drain", { node: n.id }, `draining ${n.id}: its replicas move away`) }, "drain"),
          " ",
          el("button", { type: "button", "data-testid": `undrain-${n.id}`, onclick: () => api("POST", "/v1/admin/undrain", { node: n.id }, `${n.id} may take replicas again`) }, "undrain"),
        ),
      ),
    (row, n) => {
      const departed = departedAt.get(n.id);
      row.className = departed !== undefined && !n.live ? "restarting" : n.live ? "" : "silent";
      const state = departed !== undefined && !n.live ? `restarting · stopped cleanly at ${new Date(departed).toLocaleTimeString()}` : n.live ? "live" : "silent";
      const texts = n.absent
        ? [n.id, state, String(replicasOn(n.id)), "—", "—", "—", "—"]
        : [
            `${n.id}${n.id === status.coordinator ? " (coordinator)" : ""}`,
            `${state}${n.drained ? " · drained" : ""}`,
            String(replicasOn(n.id)),
            String(n.load),
            mib(n.rssBytes),
            `${n.lastSeenMs} ms ago`,
            // A node that has not applied the stored settings (it refused them: its log says why).
            n.configRevision < status.configRevision ? `rev ${n.configRevision} · old (${status.configRevision} stored)` : `rev ${n.configRevision}`,
          ];
      texts.forEach((text, i) => {
        if (row.cells[i].textContent !== text) row.cells[i].textContent = text;
      });
      row.cells[6].className = !n.absent && n.configRevision < status.configRevision ? "config-old" : "";
    },
  );
  $("coordinator").textContent = `coordinator: ${status.coordinator ?? "(none)"}`;
  const select = $("log-node");
  const known = new Set([...select.options].map((o) => o.value));
  for (const n of status.nodes) if (!known.has(n.id)) select.append(el("option", { value: n.id }, n.id));
}

/** One replica's cell (a learner's when `learner`): state, applied sequence, lag, points. */
function replicaCell(cell, r, learner) {
  const detail = `@${r.appliedSeq} lag ${r.lag}${r.count === undefined ? "" : ` n=${r.count}`}`;
  fill(cell, `${r.node}|${r.state}|${detail}|${learner}`, `${r.node} ${learner ? "learning · " : ""}${r.state}`, el("small", {}, detail));
  cell.className = `cell state-${r.state}${learner ? " learner" : ""}`;
  // The grid's replicas carry data-node; a learner serves nothing yet, so it is told apart.
  cell.removeAttribute(learner ? "data-node" : "data-learner-node");
  cell.setAttribute(learner ? "data-learner-node" : "data-node", r.node);
}

function emptyCell(cell, text) {
  for (const attr of ["data-node", "data-learner-node", "class", "data-sig"]) cell.removeAttribute(attr);
  cell.textContent = text;
}

function shardRow(row, s, width, learnersWidth) {
  const cellsWanted = 2 + width + learnersWidth;
  if (row.cells.length !== cellsWanted) row.replaceChildren(...Array.from({ length: cellsWanted }, () => el("td")));
  row.cells[0].textContent = String(s.shard);
  for (let i = 0; i < width; i++) {
    const cell = row.cells[i + 1];
    const r = s.replicas[i];
    if (r) replicaCell(cell, r, false);
    else emptyCell(cell, i === 0 ? "(not hosted)" : "");
  }
  for (let i = 0; i < learnersWidth; i++) {
    const r = s.learners[i];
    if (r) replicaCell(row.cells[width + 1 + i], r, true);
    else emptyCell(row.cells[width + 1 + i], "");
  }
  const log = s.log ? `${s.log.messages} entries, ${mib(s.log.bytes)}, purged ≤ ${s.log.floor} (${s.log.heldBy})` : "";
  if (row.cells[cellsWanted - 1].textContent !== log) row.cells[cellsWanted - 1].textContent = log;
}

function renderCollections() {
  reconcile(
    $("collections"),
    status.collections,
    (c) => c.name,
    (c) =>
      el(
        "div",
        { "data-collection": c.name },
        el("h3", {}, el("span"), " ", el("button", { type: "button", onclick: () => confirm(`drop ${c.name} and all its data?`) && api("DELETE", `/v1/collections/${encodeURIComponent(c.name)}`, undefined, `dropped ${c.name}`) }, "drop")),
        el("table", { class: "grid" }, el("thead"), el("tbody")),
      ),
    (div, c) => {
      div.querySelector("h3 span").textContent = `${c.name} — ${c.dimension}-d ${c.metric}, ${c.shards.length} shards × RF ${c.replicas}, epoch ${c.epoch}`;
      const width = Math.max(1, ...c.shards.map((s) => s.replicas.length));
      // Learners (replicas a migration is building) get columns only while there are some.
      const learnersWidth = Math.max(0, ...c.shards.map((s) => s.learners.length));
      const headers = ["shard", ...Array.from({ length: width }, (_, i) => `replica ${i}`), ...Array.from({ length: learnersWidth }, () => "learner"), "log"];
      fill(div.querySelector("thead"), headers.join("|"), el("tr", {}, headers.map((h) => el("th", {}, h))));
      reconcile(div.querySelector("tbody"), c.shards, (s) => s.shard, () => el("tr"), (row, s) => shardRow(row, s, width, learnersWidth));
    },
  );
  const jobs = status.jobs.length === 0 ? [{ none: true }] : status.jobs;
  reconcile(
    $("jobs"),
    jobs,
    (j) => (j.none ? "none" : j.id),
    (j) => (j.none ? el("p", {}, "none running") : el("p", {}, el("span"), el("progress"), el("span"))),
    (p, j) => {
      if (j.none) return;
      p.children[0].textContent = `${j.kind} ${j.id} on ${j.node} (${j.collections.join(", ")}) `;
      p.children[1].max = j.bytesTotal || 1;
      p.children[1].value = j.bytesDone;
      p.children[2].textContent = ` ${mib(j.bytesDone)} / ${mib(j.bytesTotal)}`;
    },
  );
}

/** A migration's progress: the copy while the target copies a snapshot or checkpoint, then the log it replays. */
function migrationProgress(p) {
  const eta = p.etaMs === null ? "ETA unknown" : `ETA ${Math.ceil(p.etaMs / 1000)} s`;
  if (p.bytesCopied < p.copyGoalBytes) return { max: p.copyGoalBytes, value: p.bytesCopied, text: ` copying ${mib(p.bytesCopied)} / ${mib(p.copyGoalBytes)}, ${eta} ` };
  return { max: Math.max(1, p.targetSeq), value: p.appliedSeq, text: ` ${p.appliedSeq}/${p.targetSeq}, ${mib(p.bytesCopied)}, ${eta} ` };
}

/** The states in which a migration accepts each operator command (the migration machine's PAUSE, RESUME, CANCEL). */
const migrationAccepts = { pause: ["preparing", "catchingUp"], resume: ["paused"], cancel: ["planned", "preparing", "catchingUp", "paused"] };

function renderMigrations(data) {
  const finished = ["completed", "rolledBack", "failed"];
  const running = data.unavailable ? [{ none: `no coordinator answered (${data.unavailable})` }] : data.migrations.filter((m) => !finished.includes(m.state));
  reconcile(
    $("migrations"),
    running.length === 0 ? [{ none: "none running" }] : running,
    (m) => m.id ?? "none",
    (m) =>
      m.none
        ? el("p")
        : el(
            "p",
            { "data-migration": m.id },
            el("span"),
            el("progress"),
            el("span"),
            ...["pause", "resume", "cancel"].map((op) => el("button", { type: "button", "data-testid": `${op}-${m.id}`, onclick: () => api("POST", `/v1/admin/${op}`, { id: m.id }, `${op}: ${m.id}`) }, op)),
          ),
    (p, m) => {
      if (m.none) return void (p.textContent = m.none);
      const progress = migrationProgress(m.progress);
      p.children[0].textContent = `${m.transfer.collection}/${m.transfer.shard}: ${m.transfer.from ?? "(new)"} → ${m.transfer.to} — ${m.state} `;
      p.children[1].max = progress.max;
      p.children[1].value = progress.value;
      p.children[2].textContent = progress.text;
      // Only what the migration would accept now: after its cutover it can only finish.
      for (const button of p.querySelectorAll("button")) button.disabled = !(migrationAccepts[button.textContent] ?? []).includes(m.state);
    },
  );
}

/** Backups on demand (not every tick: listing reads the catalog), each with a restore form. */
async function listBackups() {
  try {
    const reply = await (await fetch("/v1/admin/backup/list", { method: "POST", headers: headers(), body: "{}" })).json();
    if (!reply.ok) return notice(`backup list: ${reply.error.code}: ${reply.error.message}`, true);
    const complete = reply.result.backups.filter((b) => b.state === "complete");
    $("backups").replaceChildren(
      ...(complete.length === 0 ? [el("tr", {}, el("td", {}, "no complete backups"))] : []),
      ...complete.map((b) => {
        // A backup of several collections restores one under another name, or all under their own.
        const which = el("select", { "data-testid": `restore-collection-${b.id}` }, ...(b.collections.length > 1 ? [el("option", { value: "" }, "every collection")] : []), ...b.collections.map((c) => el("option", { value: c }, c)));
        const as = el("input", { placeholder: "restore as", "data-testid": `restore-as-${b.id}` });
        const at = el("input", { placeholder: "to time (ISO 8601, optional)", "data-testid": `restore-at-${b.id}` });
        const restore = () => {
          const body = { backup: b.id, ...(which.value ? { collections: [which.value] } : {}), ...(as.value ? { as: as.value } : {}), ...(at.value ? { toTime: at.value } : {}) };
          api("POST", "/v1/admin/restore", body, `restoring ${b.id}${as.value ? ` as ${as.value}` : ""}`);
        };
        return el("tr", { "data-backup": b.id }, el("td", {}, b.id), el("td", {}, b.collections.join(", ")), el("td", {}, `${b.points ?? "?"} points, ${mib(b.bytes ?? 0)}`), el("td", {}, which, " ", as, " ", at, " ", el("button", { type: "button", "data-testid": `restore-${b.id}`, onclick: restore }, "restore")));
      }),
    );
  } catch (err) {
    notice(`backup list: ${err.message}`, true);
  }
}

function logLine(entry) {
  const { time, level, node, actor, msg, pid: _pid, ...rest } = entry;
  const extra = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : "";
  return el("li", { class: `lvl-${level}` }, `${new Date(time).toISOString().slice(11, 23)} ${levelNames[level] ?? level} ${node ?? ""}${actor ? ` ${actor}` : ""}: ${msg}${extra}`);
}

const logShown = (entry) => entry.level >= Number($("log-level").value) && (!$("log-node").value || entry.node === $("log-node").value);

/** Shows `lines` at the end of `list`, keeping at most `kept`; follows the end only if the reader was there. */
function appendLines(list, lines, kept) {
  const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 8;
  list.append(...lines);
  while (list.children.length > kept) list.firstElementChild.remove();
  if (atEnd) list.scrollTop = list.scrollHeight;
}

/** Every kept line again: only when the filter changes. */
function renderLogs() {
  $("logs").replaceChildren();
  appendLines($("logs"), logs.filter(logShown).map(logLine), logsKept);
}

function onLog(data) {
  let entry;
  try {
    entry = JSON.parse(data);
  } catch {
    return;
  }
  logs.push(entry);
  if (logs.length > logsKept) logs.shift();
  if (logShown(entry)) appendLines($("logs"), [logLine(entry)], logsKept);
  if (entry.level >= 40) appendLines($("errors"), [logLine(entry)], errorsKept);
}

const onEvent = {
  status: (data) => {
    status = JSON.parse(data);
    renderNodes();
    renderCollections();
  },
  migrations: (data) => renderMigrations(JSON.parse(data)),
  log: (data) => onLog(data),
};

/** One Server-Sent Events frame (`event:` and `data:` lines) to its handler. */
function dispatch(frame) {
  let event = "message";
  const data = [];
  for (const line of frame.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
  }
  if (data.length > 0) onEvent[event]?.(data.join("\n"));
}

function live(on, text) {
  $("live").textContent = text;
  $("live").className = on ? "live on" : "live off";
}

let feed;

/**
 * The live feed, read with fetch rather than EventSource (which cannot send the API key);
 * reconnects 2 s after it ends, at once when the key changes.
 */
async function connect() {
  feed?.abort();
  const controller = (feed = new AbortController());
  while (!controller.signal.aborted) {
    try {
      const res = await fetch("/v1/events", { headers: headers(), signal: controller.signal });
      if (!res.ok) {
        const reply = await res.json().catch(() => undefined);
        live(false, res.status === 401 || res.status === 403 ? "needs a key" : "reconnecting");
        if (reply?.error) notice(`live feed: ${reply.error.code}: ${reply.error.message}`, true);
      } else {
        live(true, "live");
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
            dispatch(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
        live(false, "reconnecting");
      }
    } catch {
      if (controller.signal.aborted) return;
      live(false, "reconnecting");
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

$("create").addEventListener("submit", (e) => {
  e.preventDefault();
  const v = formValues(e.target);
  api("POST", "/v1/collections", { name: v.name, dimension: Number(v.dimension), metric: v.metric, shards: Number(v.shards), replicas: Number(v.replicas) }, `created ${v.name}`);
});
$("move").addEventListener("submit", (e) => {
  e.preventDefault();
  const v = formValues(e.target);
  api("POST", "/v1/admin/move", { collection: v.collection, shard: Number(v.shard), from: v.from, to: v.to }, `moving ${v.collection}/${v.shard} to ${v.to}`);
});
$("rebalance").addEventListener("click", () => api("POST", "/v1/admin/rebalance", {}, "rebalancing"));
$("backup").addEventListener("click", () => api("POST", "/v1/admin/backup/create", {}, "backup started"));
$("list-backups").addEventListener("click", listBackups);
$("log-node").addEventListener("change", renderLogs);
$("log-level").addEventListener("change", renderLogs);
$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const key = $("api-key").value.trim();
  if (key) sessionStorage.setItem(keyStorage, key);
  else sessionStorage.removeItem(keyStorage);
  $("api-key").value = "";
  notice(key ? "using the API key given" : "no API key");
  void connect();
});
void connect();
