// The admin dashboard: renders what /v1/events pushes (the cluster status every second, the
// leader's migrations, every node's log lines) and sends operations to the REST API. Plain DOM,
// no framework, nothing fetched from elsewhere.
const $ = (id) => document.getElementById(id);
const logsKept = 500;
const errorsKept = 20;
const levelNames = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const logs = [];
const errors = [];
let status = { nodes: [], collections: [], jobs: [], coordinator: null };

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

/** Calls the REST API; says what happened either way. */
async function api(method, path, body, done) {
  try {
    const res = await fetch(path, { method, headers: { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
    const reply = await res.json();
    if (!reply.ok) return notice(`${method} ${path}: ${reply.error.code}: ${reply.error.message}`, true);
    notice(done);
  } catch (err) {
    notice(`${method} ${path}: ${err.message}`, true);
  }
}

const mib = (bytes) => `${Math.round(bytes / 1048576)} MiB`;

function renderNodes() {
  const replicasOn = (id) => status.collections.reduce((n, c) => n + c.shards.reduce((m, s) => m + s.replicas.filter((r) => r.node === id).length, 0), 0);
  $("nodes").replaceChildren(
    ...status.nodes.map((n) =>
      el(
        "tr",
        { "data-node": n.id, class: n.live ? "" : "silent" },
        el("td", {}, n.id, n.id === status.coordinator ? " (coordinator)" : ""),
        el("td", { "data-testid": `state-${n.id}` }, n.live ? "live" : "silent", n.drained ? " · drained" : ""),
        el("td", { "data-testid": `replicas-${n.id}` }, replicasOn(n.id)),
        el("td", {}, n.load),
        el("td", {}, mib(n.rssBytes)),
        el("td", {}, `${n.lastSeenMs} ms ago`),
        el(
          "td",
          {},
          el("button", { type: "button", "data-testid": `drain-${n.id}`, onclick: () => api("POST", "/v1/admin/drain", { node: n.id }, `draining ${n.id}: its replicas move away`) }, "drain"),
          " ",
          el("button", { type: "button", "data-testid": `undrain-${n.id}`, onclick: () => api("POST", "/v1/admin/undrain", { node: n.id }, `${n.id} may take replicas again`) }, "undrain"),
        ),
      ),
    ),
  );
  $("coordinator").textContent = `coordinator: ${status.coordinator ?? "(none)"}`;
  const select = $("log-node");
  const known = new Set([...select.options].map((o) => o.value));
  for (const n of status.nodes) if (!known.has(n.id)) select.append(el("option", { value: n.id }, n.id));
}

function renderCollections() {
  $("collections").replaceChildren(
    ...status.collections.map((c) => {
      const width = Math.max(1, ...c.shards.map((s) => s.replicas.length));
      const rows = c.shards.map((s) =>
        el(
          "tr",
          {},
          el("td", {}, s.shard),
          ...Array.from({ length: width }, (_, i) => {
            const r = s.replicas[i];
            if (!r) return el("td", {}, i === 0 ? "(not hosted)" : "");
            return el("td", { class: `cell state-${r.state}`, "data-testid": `replica-${c.name}-${s.shard}-${i}`, "data-node": r.node }, `${r.node} ${r.state}`, el("small", {}, `@${r.appliedSeq} lag ${r.lag}${r.count === undefined ? "" : ` n=${r.count}`}`));
          }),
          el("td", {}, s.log ? `${s.log.messages} entries, ${mib(s.log.bytes)}, purged ≤ ${s.log.floor} (${s.log.heldBy})` : ""),
        ),
      );
      return el(
        "div",
        { "data-collection": c.name },
        el("h3", {}, `${c.name} — ${c.dimension}-d ${c.metric}, ${c.shards.length} shards × RF ${c.replicas}, epoch ${c.epoch} `, el("button", { type: "button", onclick: () => confirm(`drop ${c.name} and all its data?`) && api("DELETE", `/v1/collections/${encodeURIComponent(c.name)}`, undefined, `dropped ${c.name}`) }, "drop")),
        el("table", { class: "grid" }, el("thead", {}, el("tr", {}, el("th", {}, "shard"), ...Array.from({ length: width }, (_, i) => el("th", {}, `replica ${i}`)), el("th", {}, "log"))), el("tbody", {}, rows)),
      );
    }),
  );
  $("jobs").replaceChildren(
    ...(status.jobs.length === 0 ? [el("p", {}, "none running")] : status.jobs.map((j) => el("p", {}, `${j.kind} ${j.id} on ${j.node} (${j.collections.join(", ")}) `, el("progress", { max: j.bytesTotal || 1, value: j.bytesDone }), ` ${mib(j.bytesDone)} / ${mib(j.bytesTotal)}`))),
  );
}

function renderMigrations(data) {
  if (data.unavailable) return $("migrations").replaceChildren(el("p", {}, `no coordinator answered (${data.unavailable})`));
  const running = data.migrations.filter((m) => !["completed", "rolledBack", "failed"].includes(m.state));
  $("migrations").replaceChildren(
    ...(running.length === 0 ? [el("p", {}, "none running")] : []),
    ...running.map((m) => {
      const p = m.progress;
      const eta = p.etaMs === null ? "ETA unknown" : `ETA ${Math.ceil(p.etaMs / 1000)} s`;
      return el(
        "p",
        { "data-migration": m.id },
        `${m.transfer.collection}/${m.transfer.shard}: ${m.transfer.from ?? "(new)"} → ${m.transfer.to} — ${m.state} `,
        el("progress", { max: Math.max(1, p.targetSeq), value: p.appliedSeq }),
        ` ${p.appliedSeq}/${p.targetSeq}, ${mib(p.bytesCopied)}, ${eta} `,
        ...["pause", "resume", "cancel"].map((op) => el("button", { type: "button", onclick: () => api("POST", `/v1/admin/${op}`, { id: m.id }, `${op}: ${m.id}`) }, op)),
      );
    }),
  );
}

/** Backups on demand (not every tick: listing reads the catalog), each with a restore form. */
async function listBackups() {
  try {
    const reply = await (await fetch("/v1/admin/backup/list", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).json();
    if (!reply.ok) return notice(`backup list: ${reply.error.code}: ${reply.error.message}`, true);
    const complete = reply.result.backups.filter((b) => b.state === "complete");
    $("backups").replaceChildren(
      ...(complete.length === 0 ? [el("tr", {}, el("td", {}, "no complete backups"))] : []),
      ...complete.map((b) => {
        const as = el("input", { placeholder: "restore as", "data-testid": `restore-as-${b.id}` });
        const at = el("input", { placeholder: "to time (ISO 8601, optional)", "data-testid": `restore-at-${b.id}` });
        const restore = () => {
          const body = { backup: b.id, ...(as.value ? { as: as.value } : {}), ...(at.value ? { toTime: at.value } : {}) };
          api("POST", "/v1/admin/restore", body, `restoring ${b.id}${as.value ? ` as ${as.value}` : ""}`);
        };
        return el("tr", { "data-backup": b.id }, el("td", {}, b.id), el("td", {}, b.collections.join(", ")), el("td", {}, `${b.points ?? "?"} points, ${mib(b.bytes ?? 0)}`), el("td", {}, as, " ", at, " ", el("button", { type: "button", "data-testid": `restore-${b.id}`, onclick: restore }, "restore")));
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

function renderLogs() {
  const node = $("log-node").value;
  const min = Number($("log-level").value);
  const shown = logs.filter((e) => e.level >= min && (!node || e.node === node));
  $("logs").replaceChildren(...shown.map(logLine));
  $("logs").scrollTop = $("logs").scrollHeight;
  $("errors").replaceChildren(...errors.map(logLine));
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
  if (entry.level >= 40) {
    errors.push(entry);
    if (errors.length > errorsKept) errors.shift();
  }
  renderLogs();
}

function connect() {
  const events = new EventSource("/v1/events");
  events.addEventListener("open", () => {
    $("live").textContent = "live";
    $("live").className = "live on";
  });
  events.addEventListener("error", () => {
    $("live").textContent = "reconnecting";
    $("live").className = "live off";
  });
  events.addEventListener("status", (e) => {
    status = JSON.parse(e.data);
    renderNodes();
    renderCollections();
  });
  events.addEventListener("migrations", (e) => renderMigrations(JSON.parse(e.data)));
  events.addEventListener("log", (e) => onLog(e.data));
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
connect();
