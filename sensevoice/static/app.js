// SenseVoice browser client: upload or record audio, POST it to /v1/audio/transcriptions (verbose_json) and show
// the transcript with its language, emotion and event as badges, and its segments with times (a click plays that
// span of the audio); copy or download it as text, SRT, VTT (the server's rendering) or JSON.
// With "speakers" checked the upload asks for diarization (the form's diarize field) and the live stream too
// ({"diarize": true}): each segment or live final shows its speaker's label (S1, S2, ...) in that speaker's
// colour, a stable palette by speaker number. The server's limits (/health) are shown, and
// checked before an upload where the page can (size, format); so is the model that answers, with a notice while
// it is the demo model. Server text is only ever set as textContent.
"use strict";

const EMOTION_EMOJI = { HAPPY: "😊", SAD: "😔", ANGRY: "😡", NEUTRAL: "😐", FEARFUL: "😰", DISGUSTED: "🤢",
                        SURPRISED: "😮", OTHER: "❔", EMO_UNKNOWN: "❔" };
const EVENT_EMOJI = { Speech: "🗣️", BGM: "🎼", Applause: "👏", Laughter: "😀", Cry: "😭", Sneeze: "🤧",
                      Breath: "💨", Cough: "😷", Sing: "🎤", Speech_Noise: "🔊", GBG: "🔊", Event_UNK: "❔" };
// Speakers' colours by number (S1 the first, ...; the palette repeats past its end): a light fill for the label,
// whose text is always shown too, and a darker line beside the segment (Okabe-Ito hues, told apart by most eyes).
const SPEAKER_COLOURS = [
  { fill: "#cde3f5", line: "#0072b2" }, { fill: "#fbe3b8", line: "#e69f00" },
  { fill: "#c4ecdf", line: "#009e73" }, { fill: "#f2d5e7", line: "#cc79a7" },
  { fill: "#d4ecfa", line: "#56b4e9" }, { fill: "#f8d2bd", line: "#d55e00" },
  { fill: "#f7f3c2", line: "#b8a800" }, { fill: "#dddddd", line: "#555555" }];
const $ = (id) => document.getElementById(id);
let audioBlob = null;   // what "Transcribe" sends: the chosen file or the last recording
let audioName = "";
let limits = null;      // /health's "limits": max_upload_bytes, max_audio_s, audio_formats
let lastResult = null;  // the last verbose_json answer
let resultAudio = "";   // the object URL of the audio lastResult was transcribed from (its segments play it)
let modelId = "sensevoice-small";  // what the form's model field names: /health's model id once it answers

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function mib(bytes) {
  return `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 2 : 0)} MiB`;
}

function uploadProblem(blob, name) {
  if (!limits) return "";
  if (blob.size > limits.max_upload_bytes) {
    return `${name} is ${mib(blob.size)}; the server accepts at most ${mib(limits.max_upload_bytes)}`;
  }
  const ext = name.includes(".") ? name.split(".").pop().toLowerCase() : "";
  if (ext && !limits.audio_formats.includes(ext)) {
    return `${name}: .${ext} files are not accepted; accepted: ${limits.audio_formats.join(", ")}`;
  }
  return "";
}

function setAudio(blob, name) {
  const problem = blob ? uploadProblem(blob, name) : "";
  showError(problem);
  if (problem) blob = null;
  audioBlob = blob;
  audioName = name;
  $("source").textContent = blob ? `${name} (${(blob.size / 1024).toFixed(0)} KiB)` : "";
  $("preview").hidden = !blob;
  if (blob) $("preview").src = URL.createObjectURL(blob);
  $("transcribe").disabled = !blob;
}

function showLimits(health) {
  limits = health.limits;
  const longAudio = health.vad ? "" : " (the server runs without VAD)";
  $("limits").textContent = `limits: ${mib(limits.max_upload_bytes)} per upload, ` +
    `${limits.max_audio_s} s of audio${longAudio}; formats: ${limits.audio_formats.join(", ")}`;
  $("file").accept = ["audio/*", ...limits.audio_formats.map((f) => `.${f}`)].join(",");
}

// ---- the result as text, SRT, VTT or JSON ----
// SRT and VTT are the server's own (the upload asks for them with the form's subtitles field: sensevoice.subtitles,
// as `transcribe -f srt/vtt` writes them, speakers included), never a copy of its writers here.
function exportText(body, format) {
  const { subtitles, ...answer } = body;
  if (format === "json") return JSON.stringify(answer, null, 2) + "\n";
  if (format === "srt" || format === "vtt") return subtitles[format];
  return body.text + "\n";
}

const MEDIA_TYPES = { txt: "text/plain", srt: "application/x-subrip", vtt: "text/vtt", json: "application/json" };

function download() {
  const format = $("export-format").value;
  const blob = new Blob([exportText(lastResult, format)], { type: `${MEDIA_TYPES[format]};charset=utf-8` });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `${(audioName || "audio").replace(/\.[^.]*$/, "")}.${format}`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

async function copy() {
  const format = $("export-format").value;
  try {
    await navigator.clipboard.writeText(exportText(lastResult, format));
    $("copied").textContent = `copied as ${format}`;
  } catch (err) {
    $("copied").textContent = `cannot copy here (${err.message}); use Download`;
  }
}

// Whether this browser draws ``emoji`` (a font has it): its drawing differs from that of a code point no font has
// (U+0378 is unassigned), and is not blank. Without an emoji font the badges show their label alone, not a box.
const emojiDrawn = new Map();
function drawing(text) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 32;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.textBaseline = "top";
  context.font = "24px system-ui, sans-serif";
  context.fillText(text, 0, 0);
  return context.getImageData(0, 0, 32, 32).data;
}
function emojiRenders(emoji) {
  if (!emojiDrawn.has(emoji)) {
    const pixels = drawing(emoji), missing = drawing("\u0378");
    const blank = pixels.every((value) => value === 0);
    emojiDrawn.set(emoji, !blank && pixels.some((value, i) => value !== missing[i]));
  }
  return emojiDrawn.get(emoji);
}

function badge(kind, label, emoji) {
  const span = document.createElement("span");
  span.className = `badge ${kind}`;
  span.textContent = emoji && emojiRenders(emoji) ? `${emoji} ${label}` : label;
  span.title = kind;
  return span;
}

function speakerColour(label) {  // "S3" -> the third colour
  const number = Number((/^S(\d+)$/.exec(label) || [])[1] || 1);
  return SPEAKER_COLOURS[(number - 1) % SPEAKER_COLOURS.length];
}

function speakerBadge(label) {
  const span = badge("speaker", label);
  span.title = `speaker ${label}`;
  span.style.background = speakerColour(label).fill;
  return span;
}

function markSpeaker(element, label) {  // the speaker's line beside a segment or a live final
  element.classList.add("speaker");
  element.dataset.speaker = label;
  element.style.setProperty("--speaker-line", speakerColour(label).line);
}

function tagBadges(item) {
  const badges = [];
  if (item.language) badges.push(badge("language", item.language));
  if (item.emotion) badges.push(badge("emotion", item.emotion, EMOTION_EMOJI[item.emotion]));
  if (item.event) badges.push(badge("event", item.event, EVENT_EMOJI[item.event]));
  return badges;
}

// ---- a segment plays its span of the transcribed audio in the preview player ----
let spanEnd = null;     // where the span being played stops (s); null: the player plays on as the user wants
let ownSeek = false;    // the next "seeking" event is playSpan's, not the user's
let watching = false;   // a frame loop is watching for spanEnd

function playSpan(start, end, li) {
  const player = $("preview");
  if (player.src !== resultAudio) player.src = resultAudio;  // another file was chosen since
  endSpan();
  li.classList.add("playing");
  ownSeek = true;
  player.currentTime = start;
  spanEnd = end;
  player.play().then(watchSpan, (err) => showError(`cannot play the audio here (${err.message})`));
}

function stopAtSpanEnd() {
  if (spanEnd !== null && $("preview").currentTime >= spanEnd) $("preview").pause();  // "pause" ends the span
}

function watchSpan() {  // every frame while a span plays; "timeupdate" also checks, where frames are throttled
  if (watching) return;
  watching = true;
  const frame = () => {
    stopAtSpanEnd();
    if (spanEnd !== null && !$("preview").paused) requestAnimationFrame(frame);
    else watching = false;
  };
  requestAnimationFrame(frame);
}

function endSpan() {
  spanEnd = null;
  document.querySelectorAll("#segments li.playing").forEach((item) => item.classList.remove("playing"));
}

function showResult(body) {
  lastResult = body;
  $("copied").textContent = "";
  $("badges").replaceChildren(...tagBadges(body));
  $("text").textContent = body.text;
  $("text").lang = body.language || "";
  $("rich").textContent = body.rich_text || "";
  const identity = body.model_identity || {};
  $("answered-by").textContent = `answered by ${body.model || "?"}` +
    (identity.kind === "demo" ? " — the demo model, which knows synthetic speech only" : "");
  $("answered-by").title = identity.description || "";
  const items = (body.segments || []).map((s) => {
    const li = document.createElement("li");
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = `${s.start.toFixed(2)}–${s.end.toFixed(2)} s `;
    const speaker = s.speaker ? [speakerBadge(s.speaker)] : [];
    li.append(time, ...speaker, ...tagBadges(s), document.createTextNode(s.text));
    if (s.speaker) markSpeaker(li, s.speaker);
    if (resultAudio) {
      li.classList.add("seek");
      li.tabIndex = 0;
      li.setAttribute("role", "button");
      li.title = `play ${s.start.toFixed(2)}–${s.end.toFixed(2)} s`;
      li.addEventListener("click", () => playSpan(s.start, s.end, li));
      li.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); playSpan(s.start, s.end, li); }
      });
    }
    return li;
  });
  $("segments").replaceChildren(...items);
  $("segments").hidden = items.length < 2 && !(body.segments || []).some((s) => s.speaker);
  $("result").hidden = false;
}

async function transcribe(event) {
  event.preventDefault();
  if (!audioBlob) return;
  const form = new FormData();
  form.append("file", audioBlob, audioName);
  form.append("model", modelId);
  form.append("response_format", "verbose_json");
  form.append("subtitles", "true");  // the server's srt and vtt of this result, for Copy and Download
  form.append("language", $("language").value);
  form.append("use_itn", $("itn").checked ? "true" : "false");
  if ($("diarize").checked) form.append("diarize", "true");
  const headers = {};
  const key = $("apikey").value.trim();
  localStorage.setItem("sensevoice-api-key", key);
  if (key) headers.Authorization = `Bearer ${key}`;
  showError("");
  setStatus("busy", "transcribing…");
  $("transcribe").disabled = true;
  const started = performance.now();
  try {
    const response = await fetch("/v1/audio/transcriptions", { method: "POST", body: form, headers });
    const body = await response.json();
    if (!response.ok) throw new Error(`${response.status}: ${body.error ? body.error.message : response.statusText}`);
    resultAudio = $("preview").src;
    showResult(body);
    setStatus("done", `done in ${((performance.now() - started) / 1000).toFixed(2)} s`);
  } catch (err) {
    showError(err.message);
    setStatus("error", "failed");
  } finally {
    $("transcribe").disabled = !audioBlob;
  }
}

// ---- recording: microphone -> AudioWorklet -> 16-bit PCM WAV (Chrome's MediaRecorder only makes WebM) ----
let recorder = null;

function encodeWav(chunks, sampleRate) {
  const n = chunks.reduce((sum, c) => sum + c.length, 0);
  const view = new DataView(new ArrayBuffer(44 + 2 * n));
  const text = (offset, s) => [...s].forEach((ch, i) => view.setUint8(offset + i, ch.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * n, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, sampleRate, true); view.setUint32(28, 2 * sampleRate, true);
  view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, 2 * n, true);
  let offset = 44;
  for (const chunk of chunks) {
    for (const x of chunk) {
      view.setInt16(offset, Math.max(-1, Math.min(1, x)) * 0x7fff, true);
      offset += 2;
    }
  }
  return new Blob([view], { type: "audio/wav" });
}

// ---- live mode: while recording, 80 ms blocks of 16-bit PCM go to ws://host/ (FunASR's protocol, 2pass) and the
// partial text of the open segment shows beside the final texts of the closed ones ----
let streaming = false;  // /health says the server takes live streams
const LIVE_BLOCK = 1280;  // samples per message: 80 ms at 16 kHz

function openLive() {
  const key = $("apikey").value.trim();
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/` +
    (key ? `?api_key=${encodeURIComponent(key)}` : "");
  const ws = new WebSocket(url, ["binary"]);
  const live = { ws, pending: [], size: 0, finals: [], done: null };
  live.done = new Promise((resolve) => { ws.onclose = resolve; });
  ws.onopen = () => ws.send(JSON.stringify({ mode: "2pass", chunk_size: [5, 10, 5], chunk_interval: 10,
    wav_name: "microphone", wav_format: "pcm", audio_fs: 16000, is_speaking: true, itn: $("itn").checked,
    language: $("language").value, ...($("diarize").checked ? { diarize: true } : {}) }));
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.error) showError(`live: ${m.error}`);
    if (m.segment_final && m.segment_text) live.finals.push(liveFinal(m));
    $("live-final").replaceChildren(...live.finals.flatMap((f, i) => (i ? [" ", f] : [f])));
    $("live-partial").textContent = m.segment_final || m.error ? "" : (m.segment_text || "");
    if (m.is_end) ws.close();
  };
  $("live").hidden = false;
  $("live-final").textContent = "";
  $("live-partial").textContent = "";
  return live;
}

function liveFinal(m) {  // a final's text, after its speaker's label when the stream names one (spk_name)
  const span = document.createElement("span");
  span.className = "live-final";
  if (m.spk_name) {
    span.append(speakerBadge(m.spk_name), " ");
    markSpeaker(span, m.spk_name);
  }
  span.append(m.segment_text);
  return span;
}

function sendLive(live, block) {
  live.pending.push(block);
  live.size += block.length;
  if (live.size < LIVE_BLOCK || live.ws.readyState !== WebSocket.OPEN) return;
  const pcm = new Int16Array(live.size);
  let offset = 0;
  for (const b of live.pending) {
    for (const x of b) pcm[offset++] = Math.max(-1, Math.min(1, x)) * 0x7fff;
  }
  live.ws.send(pcm.buffer);
  live.pending = [];
  live.size = 0;
}

async function closeLive(live) {
  if (live.ws.readyState === WebSocket.OPEN) live.ws.send(JSON.stringify({ is_speaking: false }));
  await Promise.race([live.done, new Promise((r) => setTimeout(r, 30000))]);
}

async function startRecording() {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
  const context = new AudioContext({ sampleRate: 16000 });
  await context.audioWorklet.addModule("/static/recorder-worklet.js");
  const tap = new AudioWorkletNode(context, "pcm-tap");
  const chunks = [];
  const live = streaming ? openLive() : null;
  tap.port.onmessage = (e) => { chunks.push(e.data); if (live) sendLive(live, e.data); };
  context.createMediaStreamSource(stream).connect(tap);
  recorder = { stream, context, chunks, live };
  $("record").textContent = "■ Stop";
  $("record").classList.add("recording");
}

async function stopRecording() {
  const { stream, context, chunks, live } = recorder;
  recorder = null;
  stream.getTracks().forEach((t) => t.stop());
  await context.close();
  if (live) await closeLive(live);
  $("record").textContent = "● Record";
  $("record").classList.remove("recording");
  setAudio(encodeWav(chunks, context.sampleRate), "recording.wav");
}

async function toggleRecording() {
  showError("");
  try {
    if (recorder) await stopRecording(); else await startRecording();
  } catch (err) {
    recorder = null;
    showError(`recording failed: ${err.message}`);
  }
}

function showModel(id, identity) {
  modelId = id;
  $("model").textContent = id;
  $("model").title = identity.description;
  $("model").dataset.kind = identity.kind;
  $("demo-notice").hidden = identity.kind !== "demo";
}

async function loadHealth() {
  try {
    const health = await (await fetch("/health")).json();
    showModel(health.model, health.model_identity);
    $("health").textContent = `${health.vad ? "VAD · " : ""}queue ${health.queue_depth}`;
    const options = health.languages.map((l) => new Option(l, l));
    $("language").replaceChildren(...options);
    $("language").value = "auto";
    showLimits(health);
    streaming = !!health.streaming;
  } catch (err) {
    $("health").textContent = "server unreachable";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("apikey").value = localStorage.getItem("sensevoice-api-key") || "";
  $("file").addEventListener("change", (e) => setAudio(e.target.files[0] || null, e.target.files[0]?.name || ""));
  $("record").addEventListener("click", toggleRecording);
  $("form").addEventListener("submit", transcribe);
  $("copy").addEventListener("click", copy);
  $("download").addEventListener("click", download);
  $("preview").addEventListener("timeupdate", stopAtSpanEnd);
  $("preview").addEventListener("pause", endSpan);  // at the span's end, or the user paused: plays on freely after
  $("preview").addEventListener("seeking", () => { if (ownSeek) ownSeek = false; else endSpan(); });
  if (!window.AudioWorkletNode || !navigator.mediaDevices) $("record").disabled = true;
  loadHealth();
});
