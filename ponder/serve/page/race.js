// The race page: one streaming /v1/chat/completions request with "ponder": {"lanes": true};
// every sample's text arrives in chunks whose "ponder" field names its lane. Plain JavaScript,
// no build step and nothing fetched from elsewhere (the server may be offline).
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;       // GET /ponder/config: model name, controllers and their options
let lanes = {};        // lane index -> {box, head, pre, text}

async function load() {
  const r = await fetch("/ponder/config");
  info = await r.json();
  $("model").textContent = `model ${info.model} · default controller ${info.controller}`;
  for (const name of info.controllers) {
    const opt = document.createElement("option");
    opt.value = opt.textContent = name;
    $("controller").append(opt);
  }
  $("controller").value = info.controllers.includes("ffs") ? "ffs" : info.controller;
  $("key-label").hidden = !info.auth;
  $("key").value = localStorage.getItem("ponder-key") || "";
  syncN();
}

function syncN() {
  const opts = info.options[$("controller").value] || [];
  $("n").disabled = !opts.includes("n");
}

function lane(i) {
  if (!lanes[i]) {
    const box = document.createElement("article");
    box.className = "lane";
    box.dataset.lane = i;
    box.dataset.state = "running";
    box.dataset.tokens = "0";
    const head = document.createElement("h2");
    const pre = document.createElement("pre");
    box.append(head, pre);
    $("lanes").append(box);
    lanes[i] = {box, head, pre, text: ""};
  }
  return lanes[i];
}

function paint(l, tokens, state) {
  l.box.dataset.state = state;
  l.box.dataset.tokens = String(tokens);
  const mark = {running: "…", finished: "finished", aborted: "✕ aborted", won: "✓ won"}[state] || state;
  l.head.innerHTML = "";
  const left = document.createElement("span");
  left.textContent = `sample ${l.box.dataset.lane} · ${tokens} tokens`;
  const right = document.createElement("span");
  right.textContent = mark;
  l.head.append(left, right);
}

function onLanes(updates) {
  for (const u of updates) {
    const l = lane(u.lane);
    l.text = l.text.slice(0, l.text.length - u.back) + u.text;
    const follow = l.pre.scrollTop + l.pre.clientHeight >= l.pre.scrollHeight - 4;
    l.pre.textContent = l.text;
    if (follow) l.pre.scrollTop = l.pre.scrollHeight;
    paint(l, u.tokens, u.state);
  }
}

function body() {
  const controller = $("controller").value;
  const opts = info.options[controller] || [];
  const ponder = {controller, lanes: true};
  if (opts.includes("n")) ponder.n = Number($("n").value);
  if ($("budget").value !== "") ponder.max_thinking_tokens = Number($("budget").value);
  const request = {
    model: info.model,
    messages: [{role: "user", content: $("problem").value}],
    temperature: Number($("temperature").value),
    stream: true,
    stream_options: {include_usage: true},
    ponder,
  };
  if ($("seed").value !== "") request.seed = Number($("seed").value);
  return request;
}

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function onEvent(data, state) {
  if (data === "[DONE]") { state.done = true; return; }
  const msg = JSON.parse(data);
  if (msg.error) throw new Error(msg.error.message);
  if (msg.ponder && msg.ponder.lanes) onLanes(msg.ponder.lanes);
  if (msg.ponder && msg.ponder.done) $("answer").textContent = msg.ponder.answer ?? "(no answer)";
  for (const c of msg.choices || []) {
    if (c.delta && c.delta.content) state.content += c.delta.content;
  }
  if (msg.usage) {
    const p = msg.usage.ponder;
    $("total").textContent = msg.usage.completion_tokens;
    $("sequential").textContent = p.sequential_tokens;
    $("wasted").textContent = p.wasted_tokens;
    $("samples").textContent = p.samples;
    $("aborted").textContent = p.aborted;
  }
}

async function race(event) {
  event.preventDefault();
  localStorage.setItem("ponder-key", $("key").value);
  $("lanes").innerHTML = "";
  lanes = {};
  $("result").hidden = false;
  $("answer").textContent = "…";
  for (const id of ["total", "sequential", "wasted", "samples", "aborted"]) $(id).textContent = "0";
  $("go").disabled = true;
  document.body.dataset.phase = "racing";
  status("racing…");
  const started = performance.now();
  const tick = setInterval(() => { $("elapsed").textContent = ((performance.now() - started) / 1000).toFixed(1); }, 100);
  const state = {content: "", done: false};
  try {
    const headers = {"Content-Type": "application/json"};
    if ($("key").value) headers.Authorization = `Bearer ${$("key").value}`;
    const r = await fetch("/v1/chat/completions", {method: "POST", headers, body: JSON.stringify(body())});
    if (!r.ok) {
      const err = await r.json().catch(() => ({error: {message: r.statusText}}));
      throw new Error(err.error ? err.error.message : r.statusText);
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    while (!state.done) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        for (const line of block.split("\n")) {
          if (line.startsWith("data: ")) onEvent(line.slice(6), state);
        }
      }
    }
    status(`answer text: ${state.content.trim() || "(none)"}`);
    document.body.dataset.phase = "done";
  } catch (err) {
    status(`error: ${err.message}`, true);
    document.body.dataset.phase = "error";
  } finally {
    clearInterval(tick);
    $("elapsed").textContent = ((performance.now() - started) / 1000).toFixed(1);
    $("go").disabled = false;
  }
}

$("ask").addEventListener("submit", race);
$("controller").addEventListener("change", syncN);
load().catch((err) => status(`cannot reach the server: ${err.message}`, true));
