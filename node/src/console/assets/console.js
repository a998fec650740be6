// alertmesh console: live alerts over server-sent events. Built into the binary.
// Alert fields are untrusted: they are only ever set with textContent, never as HTML.
"use strict";

(function () {
  const table = document.getElementById("alerts");
  if (!table) return;
  const tbody = table.querySelector("tbody");
  const status = document.getElementById("live-status");
  const filter = {
    topic: table.dataset.topic, tlp: table.dataset.tlp,
    kind: table.dataset.kind, org: table.dataset.org,
  };
  const tlpClass = {
    "TLP:RED": "tlp tlp-red", "TLP:AMBER+STRICT": "tlp tlp-amber-strict",
    "TLP:AMBER": "tlp tlp-amber", "TLP:GREEN": "tlp tlp-green", "TLP:CLEAR": "tlp tlp-clear",
  };
  const str = (v) => (typeof v === "string" ? v : "");

  function alertOf(content) {
    if (!content || typeof content !== "object") return {};
    if (content.alert) return content.alert;
    if (content.update && content.update.alert) return content.update.alert;
    return {};
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    return td;
  }

  function time(ms) {
    const d = new Date(Number(ms) || 0);
    return d.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  function show(row) {
    const alert = alertOf(row.content);
    const kind = row.kind === "alert" ? str(alert.kind) : str(row.kind);
    const wanted = (f, v) => !f || f === v;
    if (!wanted(filter.topic, row.topic) || !wanted(filter.tlp, row.tlp) ||
        !wanted(filter.kind, str(alert.kind)) || !wanted(filter.org, row.org)) return;
    const id = /^[0-9a-f]{64}$/.test(str(row.id)) ? row.id : "";
    const target = row.kind === "alert" ? id : (/^[0-9a-f]{64}$/.test(str(row.original)) ? row.original : id);
    const tr = document.createElement("tr");
    tr.className = "new";
    tr.dataset.id = id;
    tr.appendChild(cell(time(row.timestamp_ms), "time"));
    const tlpTd = document.createElement("td");
    const badge = document.createElement("span");
    badge.className = tlpClass[row.tlp] || "tlp";
    badge.textContent = str(row.tlp);
    tlpTd.appendChild(badge);
    tr.appendChild(tlpTd);
    tr.appendChild(cell(str(row.topic), "topic"));
    tr.appendChild(cell(str(row.org), "org"));
    tr.appendChild(cell(kind, "kind"));
    const titleTd = document.createElement("td");
    titleTd.className = "title";
    const a = document.createElement("a");
    a.href = "/alerts/" + target;
    a.textContent = row.kind === "retraction" ? "retraction: " + str((row.content.retraction || {}).reason)
      : (row.kind === "update" ? "update: " : "") + str(alert.title);
    titleTd.appendChild(a);
    tr.appendChild(titleTd);
    tbody.insertBefore(tr, tbody.firstChild);
    const empty = document.getElementById("no-alerts");
    if (empty) empty.remove();
  }

  const after = table.dataset.after;
  const source = new EventSource("/alerts/events?after=" + encodeURIComponent(after || "0"));
  source.addEventListener("open", () => { status.textContent = "connected"; });
  source.addEventListener("error", () => { status.textContent = "reconnecting"; });
  source.addEventListener("alert", (e) => {
    try { show(JSON.parse(e.data)); } catch (_) { /* a malformed event is skipped */ }
  });
})();
