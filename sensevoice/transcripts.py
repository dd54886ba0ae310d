"""From CTC scores to transcripts: the search's paths become FunASR result dicts (rich ``text``, its structured
fields, confidences, optionally timestamps). Every backend's scores end here: ``model.SenseVoiceSmall.inference``
(FunASR's entry point) imports this module lazily, the pipeline directly. Also FunASR's side of the results: their
keys, ``output_dir``'s 1best file, ``clean_text`` corrected as FunASR corrects ``text``, and VAD segments shaped so
that FunASR's merge keeps them."""

from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

import numpy as np
from torch import Tensor

import model as sv
from sensevoice import decoding, timestamps
from sensevoice.richtext import split_rich_text


def path_confidence(scores: Tensor, lse: Tensor, blank_logp: np.ndarray, path: list[tuple[int, int, int]], n: int
                    ) -> tuple[list[float], float]:
    """Confidence of one decoded path over frames [0, n): each token's posterior (the highest frame posterior of its
    piece over the frames it spans) and ``avg_logprob``, the mean log-posterior of the path's label (its piece or
    the blank) over the text frames. scores: (4 + T, V) as the search saw them (only the blank's column may have
    been changed), lse: (4 + T,) their log-normaliser, blank_logp: (4 + T,) the blank's unchanged log-posterior."""
    frames = [f for _, s, e in path for f in range(s, e)]
    labels = [t for t, s, e in path for _ in range(s, e)]
    logp = (scores[frames, labels] - lse[frames]).cpu().numpy() if frames else np.zeros(0)  # (frames,)
    bounds = np.cumsum([0] + [e - s for _, s, e in path])
    token_logp = [float(logp[a:b].max()) for a, b in zip(bounds[:-1], bounds[1:])]
    text = [(f, x) for f, x in zip(frames, logp.tolist()) if sv.N_PROMPT <= f < n]
    blank_sum = float(blank_logp[sv.N_PROMPT:n].sum()) - float(sum(blank_logp[f] for f, _ in text))
    avg = (blank_sum + sum(x for _, x in text)) / max(n - sv.N_PROMPT, 1)
    return [math.exp(x) for x in token_logp], avg


def no_speech_prob(scores: Tensor, special: sv.SpecialTokens) -> float:
    """P(<|nospeech|>) on the language frame, the softmax restricted to the language tags."""
    ids = list(special.language.values())
    return float(scores[0, ids].float().softmax(-1)[ids.index(special.language["nospeech"])])


def describe_path(path: list[tuple[int, int, int]], key: str, n_speech_frames: int, special: sv.SpecialTokens,
                  tokenizer: Any, output_timestamp: bool, probs: Sequence[float] | None = None) -> dict[str, Any]:
    """One decoded path -> FunASR result: rich ``text`` plus structured fields (and timestamps, with the
    tokens' and words' probabilities when ``probs`` gives each path token's: a word's is its pieces' minimum)."""
    text = tokenizer.decode([t for t, _, _ in path])
    result = {"key": key, "text": text, **split_rich_text(text)}
    if output_timestamp:
        result.update(timestamps.timestamp_fields(path, n_speech_frames, special, probs))
    return result


def decode_scores(scores: Tensor, lens: Tensor, keys: Sequence[str], options: sv.DecodingOptions,
                  special: sv.SpecialTokens, tokenizer: Any) -> list[dict[str, Any]]:
    """(B, 4 + T, V) CTC log-probs or raw logits of any backend, (B,) lengths -> one result per item, with its
    confidence (``avg_logprob``, ``no_speech_prob``; per token and word with timestamps). The scores are changed in
    place by the decoding options. Greedy unless the options ask for more (decoding.search)."""
    lse = scores.logsumexp(dim=-1)  # (B, 4 + T): confidences are posteriors, from log-probs or logits alike
    blank_logp = (scores[:, :, special.blank] - lse).float().cpu().numpy()  # (B, 4 + T), before a blank penalty
    tag_probs: list[dict[str, Any]] = [{} for _ in keys]
    if options.searches:
        paths, tag_probs = decoding.search(scores, lens, options, special, tokenizer)
    else:
        paths = decoding.ctc_greedy(decoding.apply_decoding_options(scores, options, special), lens, special.blank)
    results = []
    for b, (path, key, n) in enumerate(zip(paths, keys, lens.tolist())):
        probs, avg = path_confidence(scores[b], lse[b], blank_logp[b], path, n)
        result = describe_path(path, key, n - sv.N_PROMPT, special, tokenizer, options.output_timestamp, probs)
        result.update(avg_logprob=round(avg, 4), no_speech_prob=round(no_speech_prob(scores[b], special), 4),
                      **tag_probs[b])
        results.append(result)
    return results


# Per-utterance fields that FunASR's VAD path (AutoModel.inference_with_vad) would corrupt: it merges the results of
# a file's segments key by key, joining keys with "text" in their name with a space, shifting the [start, end] spans
# of keys that start with "timestamp" by the segment's start, and adding up everything else with ``+=`` (strings
# concatenated, numbers summed). As one-entry lists they merge into one entry per segment.
PER_SEGMENT_FIELDS = ("language", "emotion", "event", "itn", "avg_logprob", "no_speech_prob", "tag_probs")


def mergeable_segment(result: Mapping[str, Any]) -> dict[str, Any]:
    """One VAD segment's result in the shape FunASR's merge keeps right: PER_SEGMENT_FIELDS as one-entry lists, and
    ``token_timestamp`` as ``timestamp_token`` (a name FunASR shifts onto the file's timeline, as ``timestamp``)."""
    out = {name: [value] if name in PER_SEGMENT_FIELDS else value for name, value in result.items()}
    if "token_timestamp" in out:
        out["timestamp_token"] = out.pop("token_timestamp")
    return out


def correct_clean_text(results: Sequence[dict[str, Any]], kwargs: Mapping[str, Any]) -> None:
    """FunASR's ``postprocess_hotwords`` corrects ``text`` after inference; the same correction of ``clean_text``."""
    if kwargs.get("postprocess_hotwords") is None and not kwargs.get("postprocess_hotword_file"):
        return
    from funasr.utils.postprocess_hotwords import apply_postprocess_hotwords_to_results

    corrected = apply_postprocess_hotwords_to_results([{"text": r["clean_text"]} for r in results], kwargs)
    for result, fixed in zip(results, corrected):
        result["clean_text"] = fixed["text"]


def result_keys(key: Any, n: int) -> list[str]:
    """FunASR's ``key`` argument (None, one key, a list, or the whole generate() list per item) -> n result keys."""
    if key is None:
        return [f"utt{i}" for i in range(n)]
    keys = [key] if isinstance(key, str) else list(key)
    if keys and all(isinstance(k, (list, tuple)) for k in keys):
        # generate(key=[...]): FunASR hands each batch the whole list once per item, not the batch's own keys
        listed = list(keys[0])
        if len(listed) != n:
            raise ValueError(f"key={listed!r} names {len(listed)} inputs, but FunASR passes the model {n} at a "
                             f"time without their positions: pass batch_size={len(listed)} (or more) with it")
        keys = listed
    if len(keys) == 1 and n > 1:  # FunASR passes one key for the segments of one file
        keys = [f"{keys[0]}_{i}" for i in range(n)]
    if len(keys) != n:
        raise ValueError(f"got {len(keys)} keys for {n} inputs")
    return [str(k) for k in keys]


def write_1best(output_dir: str, results: Sequence[Mapping[str, Any]], started: set[str]) -> None:
    """``output_dir``, as FunASR's built-in class writes it: a "key text" line per result in
    ``output_dir/1best_recog/text``, started afresh by a model's first write there (``started``: the files that
    model has written), then appended to."""
    path = os.path.join(output_dir, "1best_recog", "text")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a" if path in started else "w", encoding="utf-8") as out:
        out.writelines(f"{result['key']} {result['text']}\n" for result in results)
    started.add(path)
