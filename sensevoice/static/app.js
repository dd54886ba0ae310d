// SenseVoice browser client: upload or record audio, POST it to /v1/audio/transcriptions (verbose_json) and show
// the transcript with its language, emotion and event as badges. Server text is only ever set as textContent.
"use strict";

const EMOTION_EMOJI = { HAPPY: "😊", SAD: "😔", ANGRY: "😡", NEUTRAL: "😐", FEARFUL: "😰", DISGUSTED: "🤢",
                        SURPRISED: "😮", OTHER: "❔", EMO_UNKNOWN: "❔" };
const EVENT_EMOJI = { Speech: "🗣️", BGM: "🎼", Applause: "👏", Laughter: "😀", Cry: "😭", Sneeze: "🤧",
                      Breath: "💨", Cough: "😷", Sing: "🎤", Speech_Noise: "🔊", GBG: "🔊", Event_UNK: "❔" };
const $ = (id) => document.getElementById(id);
let audioBlob = null;   // what "Transcribe" sends: the chosen file or the last recording
let audioName = "";

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function setAudio(blob, name) {
  audioBlob = blob;
  audioName = name;
  $("source").textContent = blob ? `${name} (${(blob.size / 1024).toFixed(0)} KiB)` : "";
  $("preview").hidden = !blob;
  if (blob) $("preview").src = URL.createObjectURL(blob);
  $("transcribe").disabled = !blob;
}

function badge(kind, label, emoji) {
  const span = document.createElement("span");
  span.className = `badge ${kind}`;
  span.textContent = emoji ? `${emoji} ${label}` : label;
  span.title = kind;
  return span;
}

function tagBadges(item) {
  const badges = [];
  if (item.language) badges.push(badge("language", item.language));
  if (item.emotion) badges.push(badge("emotion", item.emotion, EMOTION_EMOJI[item.emotion]));
  if (item.event) badges.push(badge("event", item.event, EVENT_EMOJI[item.event]));
  return badges;
}

function showResult(body) {
  $("badges").replaceChildren(...tagBadges(body));
  $("text").textContent = body.text;
  $("text").lang = body.language || "";
  $("rich").textContent = body.rich_text || "";
  const items = (body.segments || []).map((s) => {
    const li = document.createElement("li");
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = `${s.start.toFixed(2)}–${s.end.toFixed(2)} s `;
    li.append(time, ...tagBadges(s), document.createTextNode(s.text));
    return li;
  });
  $("segments").replaceChildren(...items);
  $("segments").hidden = items.length < 2;
  $("result").hidden = false;
}

async function transcribe(event) {
  event.preventDefault();
  if (!audioBlob) return;
  const form = new FormData();
  form.append("file", audioBlob, audioName);
  form.append("model", "sensevoice-small");
  form.append("response_format", "verbose_json");
  form.append("language", $("language").value);
  form.append("use_itn", $("itn").checked ? "true" : "false");
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

async function startRecording() {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
  const context = new AudioContext({ sampleRate: 16000 });
  await context.audioWorklet.addModule("/static/recorder-worklet.js");
  const tap = new AudioWorkletNode(context, "pcm-tap");
  const chunks = [];
  tap.port.onmessage = (e) => chunks.push(e.data);
  context.createMediaStreamSource(stream).connect(tap);
  recorder = { stream, context, chunks };
  $("record").textContent = "■ Stop";
  $("record").classList.add("recording");
}

async function stopRecording() {
  const { stream, context, chunks } = recorder;
  recorder = null;
  stream.getTracks().forEach((t) => t.stop());
  await context.close();
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

async function loadHealth() {
  try {
    const health = await (await fetch("/health")).json();
    $("health").textContent = `${health.model}${health.vad ? " + VAD" : ""} · queue ${health.queue_depth}`;
    const options = health.languages.map((l) => new Option(l, l));
    $("language").replaceChildren(...options);
    $("language").value = "auto";
  } catch (err) {
    $("health").textContent = "server unreachable";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("apikey").value = localStorage.getItem("sensevoice-api-key") || "";
  $("file").addEventListener("change", (e) => setAudio(e.target.files[0] || null, e.target.files[0]?.name || ""));
  $("record").addEventListener("click", toggleRecording);
  $("form").addEventListener("submit", transcribe);
  if (!window.AudioWorkletNode || !navigator.mediaDevices) $("record").disabled = true;
  loadHealth();
});
