// The demo page: four tabs, each a form that calls the server's JSON API and shows the result.
// Plain JavaScript, no libraries, nothing fetched from outside this server.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;

// ---- tabs ----------------------------------------------------------------------------------
function showTab(tab) {
  for (const t of document.querySelectorAll('[role="tab"]')) {
    const on = t === tab;
    t.setAttribute("aria-selected", on ? "true" : "false");
    $(t.dataset.panel).hidden = !on;
  }
}
for (const t of document.querySelectorAll('[role="tab"]')) t.addEventListener("click", () => showTab(t));

// ---- calling the API -----------------------------------------------------------------------
function setError(key, message) {
  const box = $("error-" + key);
  box.textContent = message || "";
  box.hidden = !message;
}

async function call(key, url, options) {
  // One request; a message in the page for any failure, never a stack trace.
  setError(key, "");
  const status = $("status-" + key);
  const form = $("form-" + key);
  const buttons = form.querySelectorAll('button[type="submit"]');
  buttons.forEach((b) => (b.disabled = true));
  status.textContent = "working… (requests are served one at a time, in order)";
  try {
    const response = await fetch(url, options);
    let body;
    try {
      body = await response.json();
    } catch (e) {
      throw new Error(`the server answered ${response.status} ${response.statusText} without a result`);
    }
    if (!response.ok || body.error) throw new Error(body.error || `HTTP ${response.status}`);
    status.textContent = "";
    return body;
  } catch (err) {
    status.textContent = "";
    setError(key, err.message.startsWith("Failed to fetch") ? "the server cannot be reached: is `lm serve` still running?" : err.message);
    return null;
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

function timing(result) {
  const queued = result.queued_seconds > 0.05 ? `, after ${result.queued_seconds} s in the queue` : "";
  return `took ${result.seconds} s${queued}`;
}

function showNotes(key, result, text) {
  const status = $("status-" + key);
  status.textContent = text;
  for (const n of result.notes || []) {
    const span = document.createElement("span");
    span.className = "note";
    span.textContent = " · " + n;
    status.appendChild(span);
  }
}

function params(values) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(values)) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
  return q.toString();
}

// ---- 1. text to image ----------------------------------------------------------------------
$("form-text-to-image").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const caption = $("caption").value;
  if (!caption.trim()) {
    setError("text-to-image", "Write a caption first: it is empty.");
    return;
  }
  const body = {
    caption, num_images: $("num-images").value, guidance: $("guidance").value,
    temperature: $("t2i-temperature").value, top_k: $("t2i-top-k").value, seed: $("t2i-seed").value,
    decoding: $("decoding").value, steps: $("steps").value,
  };
  const result = await call("text-to-image", "api/text_to_image", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (!result) return;
  const grid = $("images");
  grid.replaceChildren();
  result.images.forEach((src, i) => {
    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.src = src;
    img.alt = `${result.caption} (${i + 1})`;
    img.className = "generated";
    fig.appendChild(img);
    grid.appendChild(fig);
  });
  const s = result.settings;
  if (s.temperature === 0 && result.images.length > 1 && s.decoding === "causal") {
    result.notes = ["temperature 0 is greedy: every image of a caption is the same; raise it for variety"];
  }
  showNotes("text-to-image", result, `${result.images.length} image(s) of ${result.width}×${result.height}, ` +
    `${timing(result)} · ${s.decoding}, guidance ${s.guidance_scale}, temperature ${s.temperature}, top-k ${s.top_k}, seed ${s.seed}`);
});

// ---- recording (Web Audio → 16-bit WAV in the page) ---------------------------------------
const recordings = {};  // tab key → WAV Blob of the last recording
const recorders = {};

function encodeWav(chunks, rate) {
  const n = chunks.reduce((a, c) => a + c.length, 0);
  const view = new DataView(new ArrayBuffer(44 + 2 * n));
  const text = (o, s) => [...s].forEach((ch, i) => view.setUint8(o + i, ch.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * n, true); text(8, "WAVE"); text(12, "fmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, 2 * n, true);
  let o = 44;
  for (const c of chunks) for (const x of c) { view.setInt16(o, Math.max(-1, Math.min(1, x)) * 32767, true); o += 2; }
  return new Blob([view], { type: "audio/wav" });
}

for (const button of document.querySelectorAll("button.record")) {
  button.addEventListener("click", async () => {
    const key = button.dataset.target;
    const label = $("recording-" + key);
    if (recorders[key]) {  // stop
      const r = recorders[key];
      delete recorders[key];
      r.processor.disconnect(); r.source.disconnect();
      r.stream.getTracks().forEach((t) => t.stop());
      await r.context.close();
      recordings[key] = encodeWav(r.chunks, r.context.sampleRate);
      const seconds = r.chunks.reduce((a, c) => a + c.length, 0) / r.context.sampleRate;
      label.textContent = `recording of ${seconds.toFixed(1)} s ready (used instead of a file)`;
      button.classList.remove("on"); button.textContent = "● Record";
      return;
    }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      setError(key, "this browser cannot record here (recording needs https or localhost)");
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const context = new AudioContext();
      const source = context.createMediaStreamSource(stream);
      const processor = context.createScriptProcessor(4096, 1, 1);
      const chunks = [];
      processor.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
      source.connect(processor); processor.connect(context.destination);
      recorders[key] = { stream, context, source, processor, chunks };
      button.classList.add("on"); button.textContent = "■ Stop";
      label.textContent = "recording…";
      setError(key, "");
    } catch (err) {
      setError(key, `cannot record: ${err.message}`);
    }
  });
}

function chosenAudio(key, inputId) {
  const file = $(inputId).files[0];
  if (file) return { blob: file, name: file.name };
  if (recordings[key]) return { blob: recordings[key], name: "recording.wav" };
  return null;
}
for (const [inputId, key] of [["speech-file", "continue-speech"], ["units-file", "speech-tokenizer"]]) {
  $(inputId).addEventListener("change", () => { delete recordings[key]; $("recording-" + key).textContent = ""; });
}

// ---- 2. continue speech --------------------------------------------------------------------
$("form-continue-speech").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const audio = chosenAudio("continue-speech", "speech-file");
  if (!audio) { setError("continue-speech", "Choose an audio file or record a prompt first."); return; }
  const q = params({
    name: audio.name, prompt_seconds: $("prompt-seconds").value, max_seconds: $("max-seconds").value,
    min_seconds: $("min-seconds").value,
    temperature: $("speech-temperature").value, top_k: $("speech-top-k").value, seed: $("speech-seed").value,
  });
  const result = await call("continue-speech", "api/continue_speech?" + q, { method: "POST", body: audio.blob });
  if (!result) return;
  $("prompt-audio").src = result.prompt_audio;
  $("prompt-spectrogram").src = result.prompt_spectrogram;
  if (result.output_audio) {
    $("output-audio").src = result.output_audio;
    $("continue-spectrogram").src = result.spectrogram;
  }
  $("handover").textContent = `(the white line at ${result.handover_s} s is where the continuation starts)`;
  const heard = (text) => (text ? `“${text}”` : "nothing it knows");
  $("transcript").textContent = result.transcript !== undefined
    ? `pocketsphinx hears ${heard(result.transcript)}; in the continuation alone, ${heard(result.continuation_transcript)}.`
    : "(install pocketsphinx to see what a recogniser hears)";
  $("continue-result").hidden = false;
  showNotes("continue-speech", result, `prompt ${result.prompt_s} s + ${result.continuation_s} s of continuation ` +
    `(${result.units} units), ${timing(result)}, temperature ${result.settings.temperature}`);
});

// ---- 3. speech tokenizer -------------------------------------------------------------------
$("form-speech-tokenizer").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const audio = chosenAudio("speech-tokenizer", "units-file");
  if (!audio) { setError("speech-tokenizer", "Choose an audio file or record something first."); return; }
  const result = await call("speech-tokenizer", "api/speech_tokenizer?" + params({ name: audio.name }),
    { method: "POST", body: audio.blob });
  if (!result) return;
  $("units-input-audio").src = result.input_audio;
  $("units-input-spectrogram").src = result.input_spectrogram;
  $("units-strip").src = result.strip;
  $("units-caption").textContent = `${result.frames} units at ${result.frame_rate} Hz from a codebook of ` +
    `${result.codebook_size}${result.depth > 1 ? ` (× ${result.depth} levels; the first is shown)` : ""}: ` +
    `${result.bitrate} bit/s (${result.dedup_units_per_s} distinct runs/s)`;
  $("units-text").textContent = result.units.join(" ");
  const side = $("resynthesis");
  side.replaceChildren();
  const names = { griffin_lim: "Resynthesis: Griffin-Lim", learned: "Resynthesis: learned decoder",
                  decoder: "Resynthesis: the tokenizer's decoder" };
  for (const [kind, r] of Object.entries(result.resynthesis)) {
    const fig = document.createElement("figure");
    fig.id = "resynthesis-" + kind;
    const cap = document.createElement("figcaption"); cap.textContent = names[kind] || kind;
    const player = document.createElement("audio"); player.controls = true; player.src = r.audio;
    const img = document.createElement("img"); img.src = r.spectrogram; img.alt = "spectrogram of " + cap.textContent;
    fig.append(cap, player, img);
    side.appendChild(fig);
  }
  $("units-result").hidden = false;
  showNotes("speech-tokenizer", result, timing(result));
});

// ---- 4. image tokenizer --------------------------------------------------------------------
$("form-image-tokenizer").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const file = $("image-file").files[0];
  if (!file) { setError("image-tokenizer", "Choose an image file first."); return; }
  const result = await call("image-tokenizer", "api/image_tokenizer?" + params({ name: file.name }),
    { method: "POST", body: file });
  if (!result) return;
  $("image-input").src = result.input;
  $("code-grid").src = result.grid;
  $("image-reconstruction").src = result.reconstruction;
  $("grid-caption").textContent = `Codes: ${result.grid_size.join("×")} grid, ${result.tokens} tokens, ${result.bits} bits`;
  $("psnr").textContent = `Reconstruction: PSNR ${result.psnr} dB`;
  $("image-result").hidden = false;
  showNotes("image-tokenizer", result, timing(result));
});

// ---- what the bundle can do ----------------------------------------------------------------
async function loadInfo() {
  try {
    info = await (await fetch("api/info")).json();
  } catch (err) {
    $("bundle-info").textContent = "cannot reach the server";
    return;
  }
  const parts = [`bundle ${info.bundle} on ${info.device}`];
  if (info.image) parts.push(`images ${info.resolution}×${info.resolution}`);
  if (info.learned_vocoder) parts.push("learned speech decoder");
  $("bundle-info").textContent = parts.join(" · ");
  const image = info.defaults.image, speech = info.defaults.speech;
  $("guidance").placeholder = image.guidance_scale;
  $("t2i-temperature").placeholder = image.temperature;
  $("t2i-top-k").placeholder = image.top_k;
  $("speech-temperature").placeholder = speech.temperature;
  $("speech-top-k").placeholder = speech.top_k;
  $("num-images").max = info.max_images;
  const maskgit = document.querySelector('#decoding option[value="maskgit"]');
  maskgit.disabled = !info.maskgit;
  if (!info.maskgit) maskgit.textContent += " — not trained in this bundle";
  const off = { image: ["tab-text-to-image", "tab-image-tokenizer"], speech: ["tab-continue-speech", "tab-speech-tokenizer"] };
  for (const [kind, tabs] of Object.entries(off)) {
    if (info[kind]) continue;
    for (const id of tabs) { $(id).disabled = true; $(id).title = info.missing[kind] || `no ${kind} tokenizer`; }
  }
  const first = document.querySelector('[role="tab"]:not(:disabled)');
  if (first) showTab(first);
}
loadInfo();
