/*
 * Atelier chat widget: one <script> tag adds a shopping-assistant bubble to any page.
 *
 *   <script src="https://HOST/widget.js" data-atelier-url="https://HOST"></script>
 *
 * Everything lives in a Shadow DOM (no CSS leaks in or out), talks to the Atelier HTTP API with
 * fetch, and reads the Server-Sent Events of each reply from a ReadableStream as they arrive.
 * Server text is only ever set with textContent, never parsed as HTML.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__atelierWidget) return;
  window.__atelierWidget = true;

  var BASE = (script.getAttribute("data-atelier-url") || new URL(script.src, location.href).origin).replace(/\/+$/, "");
  var TITLE = script.getAttribute("data-title") || "Atelier";
  var STORE_KEY = "atelier-session:" + BASE;

  var CSS = [
    ":host{all:initial !important;position:fixed !important;right:0 !important;bottom:0 !important;",
    "z-index:2147483000 !important;display:block !important;width:0 !important;height:0 !important}",
    ".panel,.bubble{font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d1d1f;",
    "letter-spacing:normal;text-align:left;text-transform:none}",
    "*{box-sizing:border-box}",
    "button,textarea,input{font:inherit;color:inherit}",
    ".bubble{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;border:0;",
    "background:#111;color:#fff;cursor:pointer;box-shadow:0 6px 20px rgba(0,0,0,.25);display:flex;",
    "align-items:center;justify-content:center;padding:0;margin:0}",
    ".bubble svg{width:26px;height:26px}",
    ".bubble:focus-visible,button:focus-visible,textarea:focus-visible{outline:3px solid #7c5cff;outline-offset:2px}",
    ".panel{position:fixed;right:20px;bottom:88px;width:400px;height:min(620px,calc(100vh - 110px));",
    "background:#fff;border-radius:16px;box-shadow:0 12px 40px rgba(0,0,0,.22);display:flex;",
    "flex-direction:column;overflow:hidden;border:1px solid #e5e5e5}",
    ".panel[hidden]{display:none}",
    "header{display:flex;align-items:center;gap:8px;padding:12px 14px;background:#111;color:#fff}",
    "header h2{font-size:15px;font-weight:600;margin:0;flex:1;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}",
    "header h2 small{font-weight:400;opacity:.7;margin-left:6px;font-size:12px}",
    "header button{background:transparent;border:0;color:#fff;cursor:pointer;padding:4px 8px;border-radius:6px;font-size:13px}",
    "header button:hover{background:rgba(255,255,255,.15)}",
    ".log{position:relative;flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:10px;background:#fafafa}",
    ".msg{max-width:92%;padding:8px 11px;border-radius:12px;white-space:pre-wrap;word-wrap:break-word}",
    ".user{align-self:flex-end;background:#111;color:#fff;border-bottom-right-radius:4px}",
    ".user img{display:block;max-width:120px;border-radius:8px;margin-top:6px}",
    ".bot{align-self:flex-start;background:#fff;border:1px solid #e8e8e8;border-bottom-left-radius:4px;max-width:100%}",
    ".bot .status{color:#777;font-size:12px;font-style:italic}",
    ".bot .error{color:#b00020}",
    ".hint{color:#666;font-size:13px;text-align:center;padding:8px}",
    ".group-title{font-size:12px;font-weight:600;text-transform:uppercase;letter-spacing:.04em;color:#555;margin:8px 0 4px}",
    ".cards{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:8px;margin-top:6px}",
    ".card{border:1px solid #eee;border-radius:10px;overflow:hidden;background:#fff;display:flex;flex-direction:column}",
    ".card img{width:100%;aspect-ratio:2/3;object-fit:contain;background:#f4f4f4;display:block}",
    ".card .body{padding:6px 8px;display:flex;flex-direction:column;gap:2px;flex:1}",
    ".card .title{font-weight:600;font-size:13px}",
    ".card .meta{font-size:12px;color:#555}",
    ".card .why{font-size:11px;color:#777;display:-webkit-box;-webkit-line-clamp:2;-webkit-box-orient:vertical;overflow:hidden}",
    ".card .actions{display:flex;gap:3px;padding:0 6px 6px}",
    ".card .actions button{border:1px solid #ddd;background:#fff;border-radius:999px;padding:3px 8px;cursor:pointer;font-size:12px;white-space:nowrap}",
    ".card .actions .like,.card .actions .dislike{width:26px;padding:3px 0;flex:none}",
    ".card .actions .more{flex:1;min-width:0;overflow:hidden;text-overflow:ellipsis;padding:3px 4px}",
    ".card .actions button[aria-pressed=true]{background:#111;color:#fff;border-color:#111}",
    "form{display:flex;gap:6px;align-items:flex-end;padding:10px;border-top:1px solid #eee;background:#fff}",
    "textarea{flex:1;resize:none;border:1px solid #ddd;border-radius:10px;padding:8px 10px;height:40px;max-height:120px;background:#fff}",
    ".icon{border:1px solid #ddd;background:#fff;border-radius:10px;width:40px;height:40px;cursor:pointer;padding:0;",
    "display:flex;align-items:center;justify-content:center}",
    ".send{background:#111;color:#fff;border-color:#111}",
    ".icon svg{width:18px;height:18px}",
    ".memory{display:flex;align-items:flex-start;gap:6px;padding:6px 10px;border-top:1px solid #eee;background:#fff;",
    "max-height:76px;overflow-y:auto}",
    ".memory[hidden]{display:none}",
    ".memory .label{font-size:11px;color:#777;padding-top:3px;white-space:nowrap}",
    ".chips{display:flex;flex-wrap:wrap;gap:4px;list-style:none;margin:0;padding:0}",
    ".chip{display:inline-flex;align-items:center;gap:2px;background:#f1f1f1;border:1px solid #e4e4e4;border-radius:999px;",
    "padding:1px 2px 1px 9px;font-size:12px;max-width:100%}",
    ".chip span{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;max-width:190px}",
    ".chip button{border:0;background:transparent;cursor:pointer;width:20px;height:20px;border-radius:50%;padding:0;",
    "font-size:13px;line-height:20px;color:#555;flex:none}",
    ".chip button:hover{background:#ddd;color:#111}",
    ".chip button:disabled{opacity:.4;cursor:default}",
    ".attachment{display:flex;align-items:center;gap:6px;padding:6px 10px 0;font-size:12px;color:#555}",
    ".attachment[hidden]{display:none}",
    ".attachment img{width:32px;height:40px;object-fit:cover;border-radius:4px}",
    ".attachment button{border:0;background:transparent;cursor:pointer;color:#b00020}",
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
    "@media (max-width:480px){.panel{inset:0;right:0;bottom:0;width:100vw;height:100vh;height:100dvh;",
    "border-radius:0;border:0}.panel:not([hidden])~.bubble{display:none}.cards{grid-template-columns:repeat(2,minmax(0,1fr))}}"
  ].join("");

  var ICON_CHAT = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true"><path d="M21 12a8 8 0 0 1-11.6 7.1L4 20l1-4.6A8 8 0 1 1 21 12z"/></svg>';
  var ICON_CLIP = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true"><path d="M21 11l-8.5 8.5a5 5 0 0 1-7-7L14 4a3.5 3.5 0 0 1 5 5l-8.5 8.5a2 2 0 0 1-3-3L15 7"/></svg>';
  var ICON_SEND = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true"><path d="M4 12l16-8-6 16-2-7-8-1z"/></svg>';

  var host = document.createElement("atelier-widget");
  var root = host.attachShadow({ mode: "open" });
  root.innerHTML =
    "<style>" + CSS + "</style>" +
    '<section class="panel" role="dialog" aria-modal="false" aria-labelledby="atelier-title" hidden>' +
    '<header><h2 id="atelier-title"></h2>' +
    '<button type="button" class="new" aria-label="Start a new chat">New chat</button>' +
    '<button type="button" class="close" aria-label="Close the shopping assistant">&#x2715;</button></header>' +
    '<div class="log" role="log" aria-live="polite" aria-label="Conversation">' +
    '<p class="hint">Ask for anything: "black dress under 40", or attach a photo to find similar items.</p></div>' +
    '<div class="memory" role="region" aria-label="What I remember" hidden><span class="label">Remembering</span>' +
    '<ul class="chips"></ul></div>' +
    '<div class="attachment" hidden><img alt="Attached photo preview"><span class="name"></span>' +
    '<button type="button" class="drop" aria-label="Remove the attached photo">Remove</button></div>' +
    '<form class="composer">' +
    '<input type="file" class="file sr" accept="image/jpeg,image/png,image/webp,image/gif,image/bmp" aria-label="Attach a photo" tabindex="-1">' +
    '<button type="button" class="icon attach" aria-label="Attach a photo">' + ICON_CLIP + "</button>" +
    '<label class="sr" for="atelier-input">Message</label>' +
    '<textarea id="atelier-input" rows="1" placeholder="Message Atelier…" aria-label="Message"></textarea>' +
    '<button type="submit" class="icon send" aria-label="Send message">' + ICON_SEND + "</button></form></section>" +
    '<button type="button" class="bubble" aria-label="Open the Atelier shopping assistant" aria-expanded="false">' + ICON_CHAT + "</button>";

  function $(selector) { return root.querySelector(selector); }
  var panel = $(".panel"), bubble = $(".bubble"), log = $(".log"), form = $(".composer"), input = $("textarea");
  var fileInput = $(".file"), attachment = $(".attachment"), memoryBar = $(".memory"), chipList = $(".chips");
  $("#atelier-title").textContent = TITLE;
  $("#atelier-title").append(el("small", "", "shopping assistant"));

  var session = loadSession();
  var pendingImage = null;
  var busy = false;

  function loadSession() {
    try { return JSON.parse(sessionStorage.getItem(STORE_KEY) || "null"); } catch (e) { return null; }
  }

  function saveSession(value) {
    session = value;
    try {
      if (value) sessionStorage.setItem(STORE_KEY, JSON.stringify(value));
      else sessionStorage.removeItem(STORE_KEY);
    } catch (e) { /* storage may be blocked; the session then lasts as long as the page */ }
  }

  function open() {
    panel.hidden = false;
    bubble.setAttribute("aria-expanded", "true");
    bubble.setAttribute("aria-label", "Close the Atelier shopping assistant");
    input.focus();
  }

  function close() {
    panel.hidden = true;
    bubble.setAttribute("aria-expanded", "false");
    bubble.setAttribute("aria-label", "Open the Atelier shopping assistant");
    bubble.focus();
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function scrollDown() { log.scrollTop = log.scrollHeight; }

  function reveal(target) {
    var mine = target.box.previousElementSibling;
    log.scrollTop = Math.max(0, (mine || target.box).offsetTop - 12);
  }

  async function errorMessage(response) {
    try {
      var body = await response.json();
      if (body && body.error && body.error.message) return body.error.message;
    } catch (e) { /* not JSON */ }
    return "The assistant is unavailable right now (HTTP " + response.status + ").";
  }

  async function ensureSession(fresh) {
    if (session && !fresh) return session;
    var response = await fetch(BASE + "/v1/sessions", { method: "POST" });
    if (!response.ok) throw new Error(await errorMessage(response));
    saveSession(await response.json());
    return session;
  }

  // A call on the session. A POST whose session is gone (401/403/404) starts a new session and tries once
  // more; other methods (reading or forgetting memory) make no sense on a new session and never retry.
  async function call(path, options, method) {
    method = method || "POST";
    for (var attempt = 0; attempt < 2; attempt++) {
      var current = await ensureSession(attempt > 0);
      var init = Object.assign({}, options ? options() : {}, { method: method });
      init.headers = Object.assign({ Authorization: "Bearer " + current.token }, init.headers || {});
      var response = await fetch(BASE + "/v1/sessions/" + encodeURIComponent(current.session_id) + path, init);
      if (method !== "POST" || [401, 403, 404].indexOf(response.status) < 0 || attempt > 0) return response;
      saveSession(null);
    }
  }

  function botMessage() {
    var box = el("div", "msg bot");
    var status = el("div", "status", "Thinking…");
    var text = el("div", "text");
    box.append(status, text);
    log.appendChild(box);
    scrollDown();
    return { box: box, status: status, text: text };
  }

  function shortWhy(why) {
    var clauses = why.split(";").map(function (c) { return c.trim(); }).filter(Boolean);
    var facts = clauses.filter(function (c) { return !/\b[01]\.\d\d\b/.test(c); });
    return (facts.length ? facts : clauses.slice(0, 1)).join("; ").replace(/≠/g, " not ").replace(/=/g, " ");
  }

  function price(value) {
    return typeof value === "number" ? value.toFixed(2) : "";
  }

  function productCard(product) {
    var card = el("article", "card");
    card.setAttribute("data-product-id", product.id);
    card.setAttribute("aria-label", product.title);
    var img = el("img");
    img.alt = product.title + (product.colour && product.colour !== "unknown" ? ", " + product.colour : "");
    img.src = BASE + (product.image_url || "/v1/products/" + encodeURIComponent(product.id) + "/image");
    img.decoding = "async";
    var body = el("div", "body");
    body.append(el("div", "title", product.title));
    var meta = [price(product.price), product.colour, product.category].filter(function (v) { return v && v !== "unknown"; });
    body.append(el("div", "meta", meta.join(" · ")));
    if (product.why) {
      var why = el("div", "why", shortWhy(product.why));
      why.title = product.why;
      body.append(why);
    }
    var actions = el("div", "actions");
    var like = el("button", "like", "♥");
    var dislike = el("button", "dislike", "✕");
    var more = el("button", "more", "More like this");
    like.type = dislike.type = more.type = "button";
    like.setAttribute("aria-pressed", "false");
    dislike.setAttribute("aria-pressed", "false");
    like.setAttribute("aria-label", "Like " + product.title);
    dislike.setAttribute("aria-label", "Not for me: " + product.title);
    more.setAttribute("aria-label", "More like " + product.title);
    like.onclick = function () { feedback(product, "like", like, dislike); };
    dislike.onclick = function () { feedback(product, "dislike", dislike, like); };
    more.onclick = function () { moreLikeThis(product); };
    actions.append(like, dislike, more);
    card.append(img, body, actions);
    return card;
  }

  function showProducts(target, event) {
    if (!event.results || !event.results.length) return;
    var wrap = el("div", "products");
    if (event.title || event.slot) wrap.append(el("div", "group-title", event.title || event.slot));
    var grid = el("div", "cards");
    event.results.forEach(function (product) { grid.append(productCard(product)); });
    wrap.append(grid);
    target.box.insertBefore(wrap, target.text.nextSibling);
    scrollDown();
  }

  // The memory bar: one chip per remembered item, each with a × that forgets it
  // (DELETE /v1/sessions/{id}/memory/{kind}?facet=&value=), so the next message searches without it.
  function memoryChips(memory) {
    var c = (memory && memory.constraints) || {}, chips = [];
    Object.keys(c.must || {}).sort().forEach(function (facet) {
      c.must[facet].forEach(function (v) { chips.push({ kind: "must", facet: facet, value: v, label: v, name: facet + ": " + v }); });
    });
    Object.keys(c.avoid || {}).sort().forEach(function (facet) {
      c.avoid[facet].forEach(function (v) { chips.push({ kind: "avoid", facet: facet, value: v, label: "not " + v, name: facet + ": not " + v }); });
    });
    if (typeof c.price_min === "number") chips.push({ kind: "price_min", value: c.price_min, label: "from " + price(c.price_min) });
    if (typeof c.price_max === "number") chips.push({ kind: "price_max", value: c.price_max, label: "under " + price(c.price_max) });
    (memory && memory.preferences || []).forEach(function (p) { chips.push({ kind: "preference", value: p, label: p }); });
    var seen = {};
    (memory && memory.details || []).forEach(function (d) {
      if (d && d.text && !seen[d.text]) { seen[d.text] = true; chips.push({ kind: "detail", value: d.text, label: "\u201c" + d.text + "\u201d" }); }
    });
    (memory && memory.anchors || []).forEach(function (a) {
      if (a && a.id) chips.push({ kind: "anchor", value: a.id, label: "like " + (a.title || (a.kind === "image" ? "your photo" : a.id)) });
    });
    return chips;
  }

  function renderMemory(memory) {
    var chips = memoryChips(memory);
    chipList.replaceChildren();
    chips.forEach(function (chip) {
      var item = el("li", "chip");
      item.setAttribute("data-kind", chip.kind);
      var name = chip.name || chip.label;
      var label = el("span", "", chip.label);
      label.title = name;
      var remove = el("button", "", "\u00d7");
      remove.type = "button";
      remove.setAttribute("aria-label", "Forget " + name);
      remove.onclick = function () { forget(chip, remove); };
      item.append(label, remove);
      chipList.append(item);
    });
    memoryBar.hidden = !chips.length;
  }

  async function forget(chip, button) {
    var index = [].indexOf.call(chipList.querySelectorAll(".chip button"), button);
    button.disabled = true;
    var query = new URLSearchParams();
    if (chip.facet) query.set("facet", chip.facet);
    if (chip.value != null) query.set("value", String(chip.value));
    try {
      var response = await call("/memory/" + encodeURIComponent(chip.kind) + "?" + query.toString(), null, "DELETE");
      if (!response.ok) throw new Error(await errorMessage(response));
      renderMemory((await response.json()).memory);
      var buttons = chipList.querySelectorAll(".chip button");
      (buttons[Math.min(index, buttons.length - 1)] || input).focus();
    } catch (err) {
      button.disabled = false;
      var target = botMessage();
      handle(target, "error", { message: err && err.message ? err.message : "Could not update the memory." });
      target.status.remove();
    }
  }

  async function restoreMemory() {
    if (!session) return;
    try {
      var response = await call("", null, "GET");
      if (response.ok) renderMemory((await response.json()).memory);
    } catch (e) { /* the bar fills in with the next reply */ }
  }

  function handle(target, type, data) {
    if (type === "memory") renderMemory(data.memory);
    else if (type === "status") target.status.textContent = data.message || "";
    else if (type === "text_delta") { target.status.textContent = ""; target.text.textContent += data.text; scrollDown(); }
    else if (type === "products") showProducts(target, data);
    else if (type === "error") {
      var error = el("div", "error", data.message || "Something went wrong.");
      error.setAttribute("role", "alert");
      target.box.append(error);
    } else if (type === "done") target.status.remove();
  }

  function parseBlock(block) {
    var type = "message", data = [];
    block.split(/\r?\n/).forEach(function (line) {
      if (line.indexOf("event:") === 0) type = line.slice(6).trim();
      else if (line.indexOf("data:") === 0) data.push(line.slice(5).replace(/^ /, ""));
    });
    if (!data.length) return null;
    try { return { type: type, data: JSON.parse(data.join("\n")) }; } catch (e) { return null; }
  }

  async function readEvents(response, target) {
    var reader = response.body.getReader(), decoder = new TextDecoder(), buffer = "";
    for (;;) {
      var chunk = await reader.read();
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true });
      var blocks = buffer.split(/\r?\n\r?\n/);
      buffer = blocks.pop();
      blocks.forEach(function (block) {
        var event = parseBlock(block);
        if (event) handle(target, event.type, event.data);
      });
    }
    var last = parseBlock(buffer);
    if (last) handle(target, last.type, last.data);
    if (target.status.isConnected) target.status.remove();
  }

  async function send(text, image) {
    if (busy || (!text && !image)) return;
    busy = true;
    var hint = log.querySelector(".hint");
    if (hint) hint.remove();
    var mine = el("div", "msg user", text || "");
    if (image) {
      var thumb = el("img");
      thumb.alt = "Your photo";
      thumb.src = URL.createObjectURL(image);
      mine.append(thumb);
    }
    log.append(mine);
    var target = botMessage();
    try {
      var response = await call("/messages", function () {
        if (!image) return { headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text: text }) };
        var body = new FormData();
        body.append("text", text);
        body.append("image", image, image.name || "photo.jpg");
        return { body: body };
      });
      if (!response.ok) throw new Error(await errorMessage(response));
      await readEvents(response, target);
    } catch (err) {
      handle(target, "error", { message: err && err.message ? err.message : "The assistant is unavailable right now." });
      target.status.remove();
    } finally {
      busy = false;
      reveal(target);
    }
  }

  async function feedback(product, kind, button, other) {
    try {
      var response = await call("/feedback", function () {
        return { headers: { "Content-Type": "application/json" }, body: JSON.stringify({ product_id: product.id, kind: kind }) };
      });
      if (!response.ok) throw new Error(await errorMessage(response));
      button.setAttribute("aria-pressed", "true");
      other.setAttribute("aria-pressed", "false");
      var body = await response.json();
      renderMemory(body.memory);
      return body;
    } catch (err) {
      var target = botMessage();
      handle(target, "error", { message: err.message });
      target.status.remove();
    }
  }

  async function moreLikeThis(product) {
    if (busy) return;
    busy = true;
    log.append(el("div", "msg user", "More like " + product.title));
    var target = botMessage();
    try {
      var response = await call("/feedback", function () {
        return { headers: { "Content-Type": "application/json" }, body: JSON.stringify({ product_id: product.id, kind: "more_like_this" }) };
      });
      if (!response.ok) throw new Error(await errorMessage(response));
      var body = await response.json();
      (body.events || []).forEach(function (event) { handle(target, event.type, event); });
    } catch (err) {
      handle(target, "error", { message: err && err.message ? err.message : "The assistant is unavailable right now." });
    } finally {
      if (target.status.isConnected) target.status.remove();
      busy = false;
      reveal(target);
    }
  }

  function setAttachment(file) {
    pendingImage = file || null;
    attachment.hidden = !pendingImage;
    if (pendingImage) {
      attachment.querySelector("img").src = URL.createObjectURL(pendingImage);
      attachment.querySelector(".name").textContent = pendingImage.name || "photo";
    }
  }

  function submit() {
    var text = input.value.trim();
    var image = pendingImage;
    if (busy || (!text && !image)) return;
    input.value = "";
    setAttachment(null);
    fileInput.value = "";
    send(text, image);
  }

  bubble.addEventListener("click", function () { panel.hidden ? open() : close(); });
  $(".close").addEventListener("click", close);
  $(".new").addEventListener("click", function () {
    saveSession(null);
    renderMemory(null);
    log.replaceChildren(el("p", "hint", "New chat. What are you looking for?"));
    input.focus();
  });
  $(".attach").addEventListener("click", function () { fileInput.click(); });
  fileInput.addEventListener("change", function () { setAttachment(fileInput.files[0]); input.focus(); });
  $(".drop").addEventListener("click", function () { setAttachment(null); fileInput.value = ""; input.focus(); });
  form.addEventListener("submit", function (event) { event.preventDefault(); submit(); });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); submit(); }
  });
  root.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !panel.hidden) { event.preventDefault(); close(); }
  });

  function mount() { document.body.appendChild(host); restoreMemory(); }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
