"use strict";
// The live page's script: polls the stats JSON beside the page every two
// seconds and renders it. Only textContent and created elements: nothing
// from the gateway is ever parsed as HTML.
(function () {
  var EVERY_MS = 2000;
  var base = location.pathname.replace(/\/+$/, "");
  var STATS = base + "/stats.json";
  var lastOk = 0;
  var renders = 0;

  function $(id) { return document.getElementById(id); }
  function set(id, text) { var e = $(id); if (e) e.textContent = text; }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function num(x, digits) {
    if (x === null || x === undefined || !isFinite(x)) return "–";
    if (digits === undefined) digits = x < 10 ? 2 : x < 100 ? 1 : 0;
    return x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }
  function count(x) {
    if (x === null || x === undefined) return "–";
    if (x >= 1e9) return (x / 1e9).toFixed(2) + "G";
    if (x >= 1e6) return (x / 1e6).toFixed(2) + "M";
    if (x >= 1e4) return (x / 1e3).toFixed(1) + "k";
    return String(Math.round(x));
  }
  // Ratios with one decimal: what the cache cards show.
  function pct(r) { return r === null || r === undefined ? "–" : (r * 100).toFixed(1) + "%"; }
  function ms(x) {
    if (x === null || x === undefined) return "–";
    return x >= 1000 ? (x / 1000).toFixed(2) + " s" : num(x, x < 10 ? 1 : 0) + " ms";
  }
  function usd(x) {
    if (x === null || x === undefined) return "–";
    if (x === 0) return "$0";
    if (x < 0.01) return "$" + x.toPrecision(2);
    return "$" + (x < 1 ? x.toFixed(4) : x.toFixed(2));
  }
  function duration(s) {
    s = Math.floor(s);
    if (s < 120) return s + "s";
    if (s < 7200) return Math.floor(s / 60) + "m";
    if (s < 172800) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d";
  }

  // A sparkline: one polyline per run of non-null points, scaled to the
  // series' own maximum (or to 1 for ratios).
  var SVG = "http://www.w3.org/2000/svg";
  function spark(values, ratio) {
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 100 24");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    var n = values ? values.length : 0;
    if (n === 0) return svg;
    var max = ratio ? 1 : 0;
    values.forEach(function (v) { if (v !== null && v > max) max = v; });
    if (max <= 0) max = 1;
    var run = [];
    function flush() {
      // A lone point gets a short dash, so that it shows.
      if (run.length === 1) run.push([run[0][0] + 0.8, run[0][1]]);
      if (run.length > 1) {
        var line = document.createElementNS(SVG, "polyline");
        line.setAttribute("points", run.map(function (p) {
          return p[0].toFixed(2) + "," + p[1].toFixed(2);
        }).join(" "));
        line.setAttribute("fill", "none");
        line.setAttribute("stroke", "currentColor");
        line.setAttribute("stroke-width", "1.6");
        line.setAttribute("vector-effect", "non-scaling-stroke");
        line.setAttribute("stroke-linejoin", "round");
        svg.appendChild(line);
      }
      run = [];
    }
    values.forEach(function (v, i) {
      if (v === null || v === undefined) { flush(); return; }
      var x = n === 1 ? 100 : (i / (n - 1)) * 100;
      run.push([x, 23 - (v / max) * 22]);
    });
    flush();
    return svg;
  }
  function putSpark(id, values, ratio) {
    var e = $(id);
    if (!e) return;
    e.replaceChildren(spark(values, ratio));
  }

  function renderCache(s, group) {
    var c = (s.cache && s.cache[group]) || {};
    set("cache-" + group + "-window", pct(c.window_hit_ratio));
    set("cache-" + group + "-total", pct(c.hit_ratio));
    set("cache-" + group + "-lookups", count((c.hits || 0) + (c.misses || 0)));
    putSpark("spark-cache-" + group, c.spark, true);
  }

  function cell(row, text, cls) { var td = el("td", cls, text); row.appendChild(td); return td; }

  function renderRoutes(routes) {
    var body = $("routes").tBodies[0];
    var rows = [];
    routes.forEach(function (r) {
      var tr = el("tr");
      tr.dataset.route = r.route;
      cell(tr, r.route);
      cell(tr, num(r.requests.per_s), "n");
      var sp = el("div", "spark");
      sp.appendChild(spark(r.requests.spark, false));
      cell(tr, "").appendChild(sp);
      cell(tr, num(r.client_errors.per_s), "n");
      cell(tr, num(r.server_errors.per_s), "n" + (r.server_errors.per_s > 0 ? " fails" : ""));
      cell(tr, pct(r.error_ratio), "n");
      cell(tr, ms(r.latency_ms.p50), "n");
      cell(tr, ms(r.latency_ms.p95), "n");
      cell(tr, ms(r.latency_ms.p99), "n");
      cell(tr, pct(r.cache_hit_ratio), "n");
      rows.push(tr);
    });
    if (rows.length === 0) {
      var tr = el("tr");
      var td = cell(tr, "No traffic yet.", "empty");
      td.colSpan = 10;
      rows.push(tr);
    }
    body.replaceChildren.apply(body, rows);
  }

  function kv(dl, key, value, cls) {
    dl.appendChild(el("dt", null, key));
    var dd = el("dd", cls, value);
    dl.appendChild(dd);
    return dd;
  }

  function renderProviders(providers) {
    var box = $("providers");
    var cards = providers.map(function (p) {
      var card = el("div", "card provider");
      card.dataset.provider = p.provider;
      var top = el("div", "top");
      top.appendChild(el("span", "name", p.provider));
      var breaker = p.breaker || "unknown";
      var badge = el("span", "badge breaker " + breaker, breaker.replace("_", "-"));
      badge.title = "circuit breaker";
      top.appendChild(badge);
      card.appendChild(top);
      card.appendChild(el("div", "fine", p.kind || ""));
      var dl = el("dl", "kv");
      var limit = p.concurrency_limit;
      kv(dl, "in flight", limit ? p.in_flight + " / " + limit : String(p.in_flight), "in-flight");
      kv(dl, "calls", num(p.calls.per_s) + "/s");
      kv(dl, "failures", pct(p.failure_ratio), p.failure_ratio > 0 ? "fails" : null);
      kv(dl, "latency", ms(p.latency_ms.p50) + " · p95 " + ms(p.latency_ms.p95));
      var recent = Object.keys(p.recent_failures || {}).map(function (k) {
        return k + " " + p.recent_failures[k];
      });
      kv(dl, "recent", recent.length ? recent.join(", ") : "none", recent.length ? "recent fails" : "recent");
      card.appendChild(dl);
      if (limit) {
        var meter = el("div", "meter");
        var fill = el("div");
        fill.style.width = Math.min(100, (100 * p.in_flight) / limit) + "%";
        meter.appendChild(fill);
        card.appendChild(meter);
      }
      var sp = el("div", "spark");
      sp.title = "p95 latency, last five minutes";
      sp.appendChild(spark(p.spark_p95_ms, false));
      card.appendChild(sp);
      return card;
    });
    if (cards.length === 0) cards.push(el("div", "empty", "No providers."));
    box.replaceChildren.apply(box, cards);
  }

  function renderUsage(usage) {
    var body = $("usage").tBodies[0];
    var rows = usage.map(function (u) {
      var tr = el("tr");
      cell(tr, u.key);
      cell(tr, u.route);
      cell(tr, count(u.prompt_tokens), "n");
      cell(tr, count(u.completion_tokens), "n");
      cell(tr, count(u.cached_tokens), "n");
      cell(tr, u.cost_usd === null ? "no price" : usd(u.cost_usd), "n");
      return tr;
    });
    if (rows.length === 0) {
      var tr = el("tr");
      var td = cell(tr, "No tokens spent yet.", "empty");
      td.colSpan = 6;
      rows.push(tr);
    }
    body.replaceChildren.apply(body, rows);
  }

  function render(s) {
    set("generation", s.policy_generation);
    set("uptime", duration(s.uptime_s));
    var win = s.window_s >= 59.5 ? "last minute" : "last " + Math.max(1, Math.round(s.window_s)) + "s";
    set("window", win);
    set("window-footer", win.replace("last ", ""));
    set("rps", num(s.requests.per_s));
    set("requests-total", count(s.requests.total));
    putSpark("spark-rps", s.requests.spark, false);
    var errs = s.server_errors.per_s;
    set("error-ratio", s.requests.per_s > 0 ? pct(errs / s.requests.per_s) : "–");
    set("server-errors", num(errs));
    set("client-errors", num(s.client_errors.per_s));
    putSpark("spark-errors", s.server_errors.spark, false);
    set("p50", ms(s.latency_ms.p50));
    set("p95", ms(s.latency_ms.p95));
    set("p99", ms(s.latency_ms.p99));
    set("in-flight", s.in_flight);
    set("max-in-flight", s.max_concurrent_requests);
    ["answers", "embeddings", "rerank"].forEach(function (g) { renderCache(s, g); });
    set("coalesced-rate", num(s.coalesced.per_s));
    set("coalesced-total", count(s.coalesced.total));
    putSpark("spark-coalesced", s.coalesced.spark, false);
    set("sub-batches-rate", num(s.sub_batches.per_s));
    set("sub-batches-total", count(s.sub_batches.total));
    putSpark("spark-sub-batches", s.sub_batches.spark, false);
    set("tokens-rate", num(s.tokens.per_s));
    set("tokens-total", count(s.tokens.total));
    set("cost-total", usd(s.cost_usd.total));
    putSpark("spark-tokens", s.tokens.spark, false);
    renderProviders(s.providers || []);
    renderRoutes(s.routes || []);
    renderUsage(s.usage || []);
    if (s.draining) banner("The gateway is draining (shutting down).");
    else banner(null);
    renders += 1;
    document.body.dataset.renders = String(renders);
  }

  function banner(text) {
    var b = $("banner");
    b.hidden = !text;
    b.textContent = text || "";
  }

  function liveness() {
    var dot = $("live-dot");
    var age = (Date.now() - lastOk) / 1000;
    if (!lastOk) return;
    dot.className = "dot " + (age < 6 ? "ok" : age < 20 ? "stale" : "down");
    set("live-text", age < 6 ? "live" : "updated " + Math.round(age) + "s ago");
  }

  function poll() {
    fetch(STATS, { cache: "no-store", credentials: "same-origin", headers: { accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error("the gateway answered " + r.status);
        return r.json();
      })
      .then(function (s) {
        lastOk = Date.now();
        render(s);
      })
      .catch(function (e) {
        banner("Cannot read " + STATS + ": " + e.message);
        document.body.dataset.failed = String(Date.now());
      })
      .then(function () {
        liveness();
        setTimeout(poll, EVERY_MS);
      });
  }

  $("stats-link").setAttribute("href", STATS);
  setInterval(liveness, 1000);
  poll();
})();
