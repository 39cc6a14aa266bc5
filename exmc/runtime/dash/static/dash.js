// exmc dashboard page: polls /api/state and draws it with uPlot. Read-only: it only GETs.
// Everything from the network is written with textContent, never as HTML.
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                  "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31"];
  const DIVERGENT = "#d62728";
  const selection = {};          // "run/name" -> element index
  const panels = {};             // "run/name" -> {root, trace, hist, summary, signature}
  const page = { polls: 0, errors: 0, last: null };
  window.exmcDash = page;        // for scripts reading the page (tests, benchmark)

  const $ = (id) => document.getElementById(id);
  const color = (chain) => COLORS[chain % COLORS.length];
  const fmt = (x, digits = 3) => (x === null || x === undefined) ? "-" : Number(x).toPrecision(digits);

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function renderHeader(s) {
    $("run-id").textContent = s.runs.length ? s.runs.join(", ") : "-";
    $("messages").textContent = String(s.messages);
    $("source").textContent = s.status.address ? "from " + s.status.address : "";
    $("connection").textContent = s.status.connected === null ? "" :
      (s.status.connected ? "publisher connected" : "no publisher connected");
  }

  function renderBanners(s, offline) {
    const box = $("banners");
    box.replaceChildren();
    const banners = s ? s.status.banners.slice() : [];
    if (offline) banners.push({ kind: "offline", text: "The dashboard server does not answer; showing the last state received." });
    for (const b of banners) {
      const div = document.createElement("div");
      div.className = "banner-" + b.kind + (b.kind === "ended" && s.status.failed ? " failed" : "");
      div.id = "banner-" + b.kind;
      div.textContent = b.text;
      box.appendChild(div);
    }
  }

  function renderChains(s) {
    const body = $("chains").tBodies[0];
    body.replaceChildren();
    for (const c of s.chains) {
      const tr = document.createElement("tr");
      tr.dataset.run = c.run;
      tr.dataset.chain = String(c.chain);
      cell(tr, c.run, "text");
      cell(tr, String(c.chain));
      cell(tr, c.phase, "text phase " + (c.status === "failed" ? "bad" : c.status === "ok" ? "good" : ""));
      cell(tr, String(c.warmup_draws), "warmup");
      cell(tr, String(c.draws), "draws");
      cell(tr, String(c.divergences) + (c.warmup_divergences ? " (+" + c.warmup_divergences + " warmup)" : ""),
           "divergences" + (c.divergences ? " bad" : ""));
      cell(tr, fmt(c.step_size), "step-size");
      cell(tr, String(c.tree_depth), "tree-depth");
      cell(tr, fmt(c.acceptance_rate, 2), "accept");
      cell(tr, String(c.missed), "missed" + (c.missed ? " bad" : ""));
      body.appendChild(tr);
    }
  }

  function renderSummary(s) {
    const body = $("summary").tBodies[0];
    body.replaceChildren();
    const many = s.runs.length > 1;
    for (const r of s.rows) {
      const tr = document.createElement("tr");
      cell(tr, (many ? r.run + " " : "") + r.label, "text label");
      cell(tr, String(r.draws));
      cell(tr, fmt(r.mean));
      cell(tr, fmt(r.sd));
      const rhat = r.rhat;
      cell(tr, rhat === null ? "-" : rhat.toFixed(3),
           rhat === null ? "" : rhat < 1.01 ? "good" : rhat < 1.1 ? "warn" : "bad");
      cell(tr, r.ess_bulk === null ? "-" : r.ess_bulk.toFixed(0));
      body.appendChild(tr);
    }
    const notes = $("notes");
    notes.replaceChildren();
    for (const n of s.notes) {
      const li = document.createElement("li");
      li.textContent = n;
      notes.appendChild(li);
    }
  }

  function warmupLine(u) {
    const at = u.exmcWarmupEnd;
    if (at === null || at === undefined) return;
    const x = u.valToPos(at, "x", true);
    if (!(x >= u.bbox.left && x <= u.bbox.left + u.bbox.width)) return;
    const ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = "#90a4ae";
    ctx.setLineDash([4, 4]);
    ctx.beginPath();
    ctx.moveTo(x, u.bbox.top);
    ctx.lineTo(x, u.bbox.top + u.bbox.height);
    ctx.stroke();
    ctx.restore();
  }

  function chainSeries(chains, extra) {
    return chains.map((c) => Object.assign({ label: "chain " + c, stroke: color(c), width: 1 }, extra || {}));
  }

  function makePlots(v, width) {
    const plots = {};
    const common = { width: width, legend: { show: false }, cursor: { show: false },
                     scales: { x: { time: false } } };
    plots.trace = new uPlot(Object.assign({}, common, {
      height: 170,
      series: [{ label: "iteration" }].concat(chainSeries(v.chains), [{
        label: "divergent", stroke: DIVERGENT, fill: DIVERGENT, paths: () => null,
        points: { show: true, size: 7, stroke: DIVERGENT, fill: DIVERGENT } }]),
      hooks: { draw: [warmupLine] },
    }), [[]].concat(v.chains.map(() => []), [[]]), v.root.traceBox);
    plots.hist = new uPlot(Object.assign({}, common, {
      width: Math.round(width * 0.6), height: 170,
      series: [{ label: "value" }].concat(chainSeries(v.chains, { paths: uPlot.paths.stepped({ align: 1 }) })),
    }), [[]].concat(v.chains.map(() => [])), v.root.histBox);
    if (v.size > 1) {
      plots.summary = new uPlot(Object.assign({}, common, {
        width: Math.round(width * 1.6), height: 120,
        series: [{ label: "element" },
                 { label: "mean", stroke: "#37474f", width: 1, points: { show: true, size: 4 } },
                 { label: "mean + sd", stroke: "#b0bec5", width: 1, points: { show: false } },
                 { label: "mean - sd", stroke: "#b0bec5", width: 1, points: { show: false } }],
        bands: [{ series: [2, 3], fill: "rgba(120,144,156,0.2)" }],
      }), [[], [], [], []], v.root.summaryBox);
    }
    return plots;
  }

  function panelFor(v) {
    const key = v.run + "/" + v.name;
    let p = panels[key];
    const signature = v.chains.join(",");
    if (p && p.signature === signature) return p;
    if (!p) {
      const root = document.createElement("div");
      root.className = "variable";
      root.dataset.variable = v.name;
      root.dataset.run = v.run;
      const head = document.createElement("h3");
      head.className = "name";
      head.textContent = v.name + (v.shape.length ? " [" + v.shape.join(" x ") + "]" : "");
      root.appendChild(head);
      if (v.size > 1) {
        const label = document.createElement("label");
        label.textContent = "element (flat index) ";
        const input = document.createElement("input");
        input.type = "number"; input.min = "0"; input.max = String(v.traced - 1); input.value = "0";
        input.addEventListener("change", () => { selection[key] = Math.max(0, parseInt(input.value, 10) || 0); poll(); });
        label.appendChild(input);
        head.appendChild(label);
      }
      const row = document.createElement("div");
      row.className = "row";
      const box = (title) => {
        const d = document.createElement("div");
        const t = document.createElement("div");
        t.className = "plot-title";
        t.textContent = title;
        d.appendChild(t);
        return d;
      };
      root.traceBox = box("trace (recent draws, warmup left of the dashed line; red: divergent)");
      root.histBox = box("histogram (post-warmup, recent window)");
      row.appendChild(root.traceBox);
      row.appendChild(root.histBox);
      root.appendChild(row);
      if (v.size > 1) {
        root.summaryBox = box("");
        root.appendChild(root.summaryBox);
      }
      $("plots").appendChild(root);
      p = panels[key] = { root: root };
    } else {
      for (const name of ["trace", "hist", "summary"]) if (p[name]) p[name].destroy();
    }
    v.root = p.root;
    Object.assign(p, makePlots(v, 360));
    p.signature = signature;
    return p;
  }

  function renderVariable(v) {
    const p = panelFor(v);
    p.root.querySelector("h3.name").firstChild.textContent =
      (v.size > 1 ? v.label + "  of " : "") + v.name + (v.shape.length ? " [" + v.shape.join(" x ") + "]" : "");
    const t = v.trace;
    p.trace.exmcWarmupEnd = v.warmup_end;
    p.trace.setData([t.x].concat(t.chains.length ? t.chains : v.chains.map(() => []), [t.divergent]));
    const h = v.histogram;
    p.hist.setData([h.edges].concat(h.chains.length ? h.chains : v.chains.map(() => [])));
    if (p.summary && v.summary) {
      const m = v.summary.mean, sd = v.summary.sd;
      const x = m.map((_, k) => k);
      const up = m.map((mu, k) => (mu === null || sd[k] === null) ? null : mu + sd[k]);
      const lo = m.map((mu, k) => (mu === null || sd[k] === null) ? null : mu - sd[k]);
      p.summary.setData([x, m, up, lo]);
      const title = p.root.summaryBox.firstChild;
      title.textContent = "all " + (v.traced < v.size ? "first " + v.traced + " of " + v.size : v.size) +
        " elements: mean \u00b1 sd (post-warmup, recent window)";
    }
  }

  function render(s) {
    renderHeader(s);
    renderBanners(s, false);
    renderChains(s);
    renderSummary(s);
    for (const v of s.variables) renderVariable(v);
  }

  let timer = null, busy = false, again = false;
  async function poll() {
    if (busy) { again = true; return; }      // one request at a time; a change polls right after
    busy = true;
    clearTimeout(timer);
    let delay = 500;
    try {
      const q = new URLSearchParams();
      if (token) q.set("token", token);
      if (Object.keys(selection).length) q.set("sel", JSON.stringify(selection));
      const r = await fetch("api/state?" + q.toString(), { cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      const s = await r.json();
      page.polls += 1;
      page.last = s;
      render(s);
      delay = (s.status.ended ? 4 : 1) * 1000 / s.refresh;
    } catch (err) {
      page.errors += 1;
      renderBanners(page.last, true);
      delay = 2000;
    }
    busy = false;
    if (again) { again = false; delay = 0; }
    timer = setTimeout(poll, document.hidden ? Math.max(delay, 2000) : delay);
  }
  poll();
})();
