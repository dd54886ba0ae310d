"""The browser page in headless Chromium: it names the model that answers and shows the demo notice while the demo
model serves (and none with another model); a demo result on real speech is shown, not hidden; a clicked segment
plays its span of the uploaded audio; badges fall back to their text where no emoji font draws their icon."""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile

from testkit import ROOT
from helpers import joined
from sensevoice.modeldir import DEMO_DIR, OFFICIAL_HUB_NAME, ModelDir
from sensevoice.pipeline import Transcriber
from sensevoice.serve.app import ServeConfig, create_app, serve_in_thread
from sensevoice.serve.batcher import Batcher

# A click is a user gesture, but headless Chromium has no sound card: let the player play without one.
PLAYER_FLAGS = ("--autoplay-policy=no-user-gesture-required",)


@pytest.fixture(scope="module")
def driver(page_client):
    with page_client.browser(PLAYER_FLAGS) as driver:
        yield driver


def serve(model_dir, vad: bool):
    return serve_in_thread(create_app(Batcher(Transcriber(model_dir, vad=vad, threads=2), max_wait_ms=2),
                                      ServeConfig(use_vad=vad)))


def header(driver, url: str) -> dict:
    """The page's model name and demo notice once /health has answered."""
    driver.cmd("POST", "/url", {"url": url + "/"})
    deadline = time.monotonic() + 30
    while driver.script("return document.getElementById('model').dataset.kind || '';") == "":
        assert time.monotonic() < deadline, "the page never showed the model"
        time.sleep(0.05)
    return driver.script("""const notice = document.getElementById('demo-notice');
        return {model: document.getElementById('model').textContent,
                description: document.getElementById('model').title,
                notice_shown: !notice.hidden && notice.getBoundingClientRect().height > 0,
                notice: notice.textContent.replace(/\\s+/g, ' ')};""")


@pytest.fixture(scope="module")
def two_clips(tmp_path_factory):
    """Two example clips with 2 s of silence between them: two speech segments with the VAD."""
    first, fs = soundfile.read(ROOT / "examples" / "en.flac", dtype="float32")
    second, fs2 = soundfile.read(ROOT / "examples" / "zh.flac", dtype="float32")
    assert fs == fs2
    path = tmp_path_factory.mktemp("page") / "two.wav"
    soundfile.write(path, np.concatenate([first, np.zeros(2 * fs, np.float32), second]), fs)
    return path


def test_demo_model_page_names_it_warns_and_still_shows_its_result(driver, page_client, two_clips):
    identity = ModelDir(DEMO_DIR).identity
    with serve(DEMO_DIR, vad=True) as url:
        seen = header(driver, url)
        assert seen["model"] == identity.id and seen["description"] == identity.description
        assert seen["notice_shown"], seen
        assert f"sensevoice serve --model {OFFICIAL_HUB_NAME}" in seen["notice"] and "synthetic" in seen["notice"]
        text = page_client.transcribe_file(driver, url, two_clips, None)
        result = driver.script("""return {hidden: document.getElementById('result').hidden,
            by: document.getElementById('answered-by').textContent,
            segments: [...document.querySelectorAll('#segments li')].map((li) => li.title)};""")
    assert text and not result["hidden"], "the demo model's result is shown"
    assert result["by"].startswith(f"answered by {identity.id}") and "synthetic speech only" in result["by"]
    assert len(result["segments"]) >= 2 and all(t.startswith("play ") for t in result["segments"]), result


def test_a_clicked_segment_plays_its_span(driver, page_client, two_clips):
    with serve(DEMO_DIR, vad=True) as url:
        page_client.transcribe_file(driver, url, two_clips, None)
        spans = driver.script("return lastResult.segments.map((s) => [s.start, s.end]);")
        assert len(spans) >= 2, spans
        start, end = spans[0]  # the first: the file plays on past its end unless the page stops it
        assert spans[1][0] - end > 0.5, spans
        driver.click("#segments li:nth-child(1)")
        time.sleep(0.3)
        playing = driver.script("const p = document.getElementById('preview'); "
                                "return {time: p.currentTime, paused: p.paused, error: "
                                "document.getElementById('error').textContent, marked: "
                                "document.querySelector('#segments li:nth-child(1)').classList.contains('playing')};")
        assert not playing["error"] and not playing["paused"] and playing["marked"], playing
        assert start <= playing["time"] < end, (playing, start, end)
        time.sleep(end - start + 0.5)
        stopped = driver.script("const p = document.getElementById('preview'); "
                                "return {time: p.currentTime, paused: p.paused, marked: "
                                "document.querySelectorAll('#segments li.playing').length};")
    assert stopped["paused"] and end <= stopped["time"] < end + 0.3 and stopped["marked"] == 0, (stopped, end)


def test_another_model_has_no_demo_notice(driver, tiny_dir):
    with serve(tiny_dir, vad=False) as url:
        seen = header(driver, url)
    assert seen["model"] == ModelDir(tiny_dir).identity.id and not seen["notice_shown"], seen


def test_badges_show_their_icon_or_their_text(driver, tiny_dir):
    """Each badge carries its emoji only where this browser draws it, else its text alone (not a box). Debian's
    Chromium with DejaVu fonts only (no fonts-noto-color-emoji) draws 😊 but not 🗣️: one badge of each kind."""
    with serve(tiny_dir, vad=False) as url:
        driver.cmd("POST", "/url", {"url": url + "/"})
        seen = driver.script("""
            const item = {language: 'en', emotion: 'HAPPY', event: 'Speech'};
            return {badges: tagBadges(item).map((b) => b.textContent),
                    drawn: [EMOTION_EMOJI.HAPPY, EVENT_EMOJI.Speech].map(emojiRenders),
                    letter: emojiRenders('A'), unassigned: emojiRenders('\\u0378')};""")
    assert seen["letter"] and not seen["unassigned"], "the check tells drawn from missing"
    happy, speech = seen["drawn"]
    assert seen["badges"] == ["en", f"{'😊 ' if happy else ''}HAPPY", f"{'🗣️ ' if speech else ''}Speech"]


# ----------------------------------------------------------------------------------------------- speakers
@pytest.fixture(scope="module")
def two_speakers(official, tmp_path_factory):
    """Real speech of two people: the official en.mp3 and zh.mp3 with 2 s of silence between them."""
    path = tmp_path_factory.mktemp("speakers") / "two_speakers.wav"
    soundfile.write(path, joined(official, ["en.mp3", "zh.mp3"], pause_s=2.0)[:-32000], 16000)  # no pause at the end
    return path


SEGMENT_SPEAKERS = """return [...document.querySelectorAll('#segments li')].map((li) => {
    const badge = li.querySelector('.badge.speaker');
    return {speaker: li.dataset.speaker || null, label: badge ? badge.textContent : null,
            fill: badge ? getComputedStyle(badge).backgroundColor : null,
            line: getComputedStyle(li).borderLeftColor, lineWidth: getComputedStyle(li).borderLeftWidth};});"""


def test_speakers_box_labels_each_segment_with_its_speaker_in_its_colour(driver, page_client, tiny_dir, two_speakers):
    """The "speakers" box sends diarize=true; each segment shows its speaker's label (text, for every reader) on a
    fill and beside a line of that speaker's colour: S1 and S2 get the palette's first two. Unchecked: no labels."""
    with serve(tiny_dir, vad=True) as url:
        page_client.transcribe_file(driver, url, two_speakers, None, speakers=True)
        seen = driver.script(SEGMENT_SPEAKERS)
        palette = driver.script("return SPEAKER_COLOURS;")
        driver.script("document.getElementById('diarize').checked = false;")
        driver.click("#transcribe")
        page_client.result_text(driver)
        plain = driver.script(SEGMENT_SPEAKERS)
    assert len(seen) >= 2, seen
    assert {s["speaker"] for s in seen} == {"S1", "S2"} and all(s["label"] == s["speaker"] for s in seen), seen

    def rgb(hex_colour):
        return "rgb({}, {}, {})".format(*(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)))

    for s in seen:
        colour = palette[int(s["speaker"][1:]) - 1]
        assert (s["fill"], s["line"], s["lineWidth"]) == (rgb(colour["fill"]), rgb(colour["line"]), "4px"), s
    assert palette[0] != palette[1]
    assert plain and all(s["speaker"] is None and s["label"] is None for s in plain), plain


def test_srt_and_vtt_exports_are_the_servers_own_with_speakers(driver, page_client, tiny_dir, two_speakers):
    """The page's SRT and VTT (Copy and Download) are what the server renders for the same request as
    response_format=srt/vtt (sensevoice.subtitles, as `transcribe -f srt/vtt`): with speakers, "[S1] " before each
    SRT cue's text and a "<v S1>" voice span in each VTT cue; its JSON is the verbose_json answer alone."""
    import json

    import httpx

    with serve(tiny_dir, vad=True) as url:
        page_client.transcribe_file(driver, url, two_speakers, None, speakers=True)
        page = driver.script("return {srt: exportText(lastResult, 'srt'), vtt: exportText(lastResult, 'vtt'), "
                             "json: exportText(lastResult, 'json')};")
        server = {fmt: httpx.post(url + "/v1/audio/transcriptions", timeout=120,
                                  files={"file": ("two_speakers.wav", two_speakers.read_bytes(), "audio/wav")},
                                  data={"response_format": fmt, "diarize": "true"}).text for fmt in ("srt", "vtt")}
    assert page["srt"] == server["srt"] and page["vtt"] == server["vtt"], (page, server)
    assert "\n[S1] " in page["srt"] and "\n[S2] " in page["srt"], page["srt"]
    assert "\n<v S1>" in page["vtt"] and "\n<v S2>" in page["vtt"], page["vtt"]
    body = json.loads(page["json"])
    assert body["speakers"] == ["S1", "S2"] and "subtitles" not in body and "words" not in body["segments"][0]


def test_live_stream_asks_for_speakers_and_shows_each_final_s_speaker(driver, tiny_dir):
    """With the box checked the live stream's first message carries "diarize": true, and a final's spk_name is
    shown before its text in that speaker's colour (the WebSocket is a stand-in that records what is sent)."""
    with serve(tiny_dir, vad=False) as url:
        driver.cmd("POST", "/url", {"url": url + "/"})
        seen = driver.script("""return (async () => {
            const sent = [];
            class FakeSocket {
              constructor() { this.readyState = 1; setTimeout(() => this.onopen(), 0); }
              send(data) { sent.push(data); }
              close() {}
            }
            window.WebSocket = FakeSocket;
            window.WebSocket.OPEN = 1;
            document.getElementById('diarize').checked = true;
            const live = openLive();
            await new Promise((r) => setTimeout(r, 50));
            for (const [name, text] of [['S1', 'hello'], ['S2', 'ni hao'], ['S1', 'again']]) {
              live.ws.onmessage({data: JSON.stringify({mode: '2pass-offline', segment_final: true, text,
                                                       segment_text: text, spk_name: name, spk_score: 0.9})});
            }
            const text = document.getElementById('live-final').textContent;
            const finals = [...document.querySelectorAll('#live-final .live-final')]
              .map((f) => [f.dataset.speaker, getComputedStyle(f).borderBottomColor]);
            document.getElementById('diarize').checked = false;
            openLive();
            await new Promise((r) => setTimeout(r, 50));
            return {first: JSON.parse(sent[0]), plain: JSON.parse(sent[1]), text, finals};
            })();""")
    assert seen["first"]["diarize"] is True and "diarize" not in seen["plain"], seen
    assert seen["text"] == "S1 hello S2 ni hao S1 again", seen
    (one, line1), (two, line2), (again, line3) = seen["finals"]
    assert (one, two, again) == ("S1", "S2", "S1") and line1 == line3 != line2, seen
