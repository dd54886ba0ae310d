"""The CTC search: FunASR's greedy search (``ctc_greedy``, what plain decoding runs) and, when
``DecodingOptions.searches`` (beam_size > 1, hotwords, restrict_language or tag_topk), CTC prefix beam search with
contextual biasing (hotwords), output restricted to a language's scripts, and tag probabilities.
``transcripts.decode_scores`` calls it; ``DecodingOptions.from_kwargs`` (model.py) imports it lazily for
``read_hotwords`` when FunASR's ``hotword=`` is given.

Why our own search: torchaudio's flashlight ``ctc_decoder`` needs the ``flashlight-text`` package, which our
torchaudio 2.11 build lacks, and it has no hotwords; pyctcdecode's hotwords are characters/words of a word-level
alphabet, not sentencepiece pieces, and neither knows that SenseVoice's first four frames are tags. The search here
works on piece ids, leaves the four tag frames to argmax (as greedy does), and keeps its cost small: the per-frame
candidates come from one batched ``torch.topk``, and frames where the blank has > 99.9 % of the mass extend no
prefix (most frames of a trained model).

Biasing (as icefall's ContextGraph): an Aho-Corasick automaton over the hotwords' piece sequences. Each matched
piece adds the hotword's weight to the prefix's score; when a partial match fails, the automaton falls back along
its failure links and the bonus of the abandoned part is taken back (also at the end of the utterance). A completed
hotword keeps its bonus and the automaton restarts at the root.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

import model as sv

BLANK_SKIP_LOGP = math.log(0.999)  # a frame whose blank has more than this extends no prefix
HOTWORD_MIN_LOGP = math.log(1e-4)  # a hotword's next piece is tried only above this posterior
NEG_INF = -math.inf

# Scripts by character ranges; restrict_language keeps a language's own (zh/yue keep Latin: code-switching).
SCRIPTS = {"hanzi": re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"),
           "kana": re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]"),
           "hangul": re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]"),
           "latin": re.compile(r"[A-Za-z\u00c0-\u024f]")}
CONTROL_PIECE = re.compile(r"<[^<>|]+>")  # <unk>, <s>, </s> (tags are <|...|>)
LANGUAGE_SCRIPTS = {"zh": {"hanzi", "latin"}, "yue": {"hanzi", "latin"}, "en": {"latin"}, "ja": {"kana", "hanzi"},
                    "ko": {"hangul"}}
TAG_FAMILIES = {"language": (0, sv.LANGUAGES[1:]), "emotion": (1, sv.EMOTIONS), "event": (2, sv.EVENTS)}  # frame


def scripts_of(text: str) -> set[str]:
    """The scripts (SCRIPTS) of the characters of ``text``."""
    return {name for name, pattern in SCRIPTS.items() if pattern.search(text)}


_MASKS: dict[tuple[int, str], tuple[Any, np.ndarray]] = {}


def suppressed(special: sv.SpecialTokens, language: str) -> np.ndarray:
    """Ids of the pieces with a character of a script ``language`` does not use. Never suppressed: the tags, the
    blank and sentencepiece's control pieces (``<unk>``, ``<s>``, ``</s>``: their angle-bracket names are no text;
    the blank is piece 0, ``<unk>``, and suppressing it would make every frame emit a piece)."""
    key = (id(special.pieces), language)
    if key not in _MASKS:
        allowed = LANGUAGE_SCRIPTS[language]
        ids = [i for i, piece in enumerate(special.pieces)
               if i not in special.names and i != special.blank and not CONTROL_PIECE.fullmatch(piece)
               and scripts_of(piece) - allowed]
        _MASKS[key] = (special.pieces, np.array(ids, dtype=np.int64))  # the pieces keep the id valid
    return _MASKS[key][1]


# ----------------------------------------------------------------------------------------------- hotwords
def read_hotwords(value: Any) -> list:
    """FunASR's ``hotword``: a file with one phrase per line (a trailing number is its weight), or a string of
    space-separated words; a list passes through. Returns phrases and (phrase, weight) pairs, which
    ``DecodingOptions(hotwords=...)`` checks."""
    if isinstance(value, os.PathLike) or (isinstance(value, str) and os.path.isfile(value)):
        entries = []
        with open(value, encoding="utf-8") as lines:
            for line in lines:
                words = line.split()
                if words and re.fullmatch(r"\d+(\.\d*)?", words[-1]) and len(words) > 1:
                    entries.append((" ".join(words[:-1]), float(words[-1])))
                elif words:
                    entries.append(" ".join(words))
        return entries
    if isinstance(value, str):
        return value.split()
    if not isinstance(value, (tuple, list)):
        raise ValueError(f"hotword={value!r}: expected a string of space-separated words, the path of a file with "
                         "one phrase per line (optionally followed by a weight), or a list of phrases")
    return list(value)


@dataclass
class ContextGraph:
    """Aho-Corasick automaton over piece-id sequences; node 0 is the root. ``score[n]``: the bonus a prefix
    holds in node n (the matched pieces' weights), taken back when the match fails."""

    children: list[dict[int, int]] = field(default_factory=lambda: [{}])
    fail: list[int] = field(default_factory=lambda: [0])
    score: list[float] = field(default_factory=lambda: [0.0])
    final: list[bool] = field(default_factory=lambda: [False])

    @classmethod
    def build(cls, sequences: Sequence[tuple[Sequence[int], float]]) -> "ContextGraph":
        graph = cls()
        for ids, weight in sequences:
            node = 0
            for depth, piece in enumerate(ids, 1):
                if piece not in graph.children[node]:
                    graph.children[node][piece] = len(graph.score)
                    graph.children.append({})
                    graph.fail.append(0)
                    graph.score.append(0.0)
                    graph.final.append(False)
                node = graph.children[node][piece]
                graph.score[node] = max(graph.score[node], depth * weight)
            graph.final[node] = True
        queue = list(graph.children[0].values())  # breadth first: a node's failure link is shallower
        while queue:
            node = queue.pop(0)
            for piece, child in graph.children[node].items():
                f = graph.fail[node]
                while f and piece not in graph.children[f]:
                    f = graph.fail[f]
                graph.fail[child] = graph.children[f].get(piece, 0) if graph.children[f].get(piece) != child else 0
                queue.append(child)
        return graph

    def step(self, node: int, piece: int) -> tuple[float, int]:
        """(bonus change, next node) after ``piece``: + the weight on a match, minus the abandoned part on a
        failure; a completed hotword keeps its bonus and returns to the root."""
        nxt = node
        while nxt and piece not in self.children[nxt]:
            nxt = self.fail[nxt]
        nxt = self.children[nxt].get(piece, 0)
        delta = self.score[nxt] - self.score[node]
        return delta, (0 if self.final[nxt] else nxt)


_GRAPHS: dict[tuple, tuple[Any, ContextGraph]] = {}


def encode_pieces(tokenizer: Any, text: str) -> list[int]:
    sp = getattr(tokenizer, "sp", None)
    return list(sp.encode(text)) if sp is not None else list(tokenizer.encode(text))


def context_graph(options: sv.DecodingOptions, tokenizer: Any) -> ContextGraph | None:
    """The automaton of ``options.hotwords`` as the tokenizer spells them (cached per hotword list)."""
    if not options.hotwords:
        return None
    key = (options.hotwords, options.hotword_weight, id(tokenizer))
    if key not in _GRAPHS:
        sequences = [(encode_pieces(tokenizer, phrase), options.hotword_weight if weight is None else weight)
                     for phrase, weight in options.hotwords]
        _GRAPHS[key] = (tokenizer, ContextGraph.build([(ids, w) for ids, w in sequences if ids]))
    return _GRAPHS[key][1]


# ----------------------------------------------------------------------------------------------- search
def logaddexp(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


@dataclass
class Prefix:
    """One hypothesis: log-probs of ending in a blank / in its last piece, its hotword bonus and automaton node,
    and its alignment [(piece, first_frame, end_frame)]."""

    pb: float = NEG_INF
    pnb: float = NEG_INF
    bonus: float = 0.0
    node: int = 0
    align: tuple = ()
    best: float = NEG_INF  # the largest single contribution so far: its alignment is kept

    def total(self) -> float:
        return logaddexp(self.pb, self.pnb)


def prefix_beam_search(logp: np.ndarray, top: np.ndarray, beam: int, blank: int, graph: ContextGraph | None,
                       offset: int) -> list[tuple[int, int, int]]:
    """Best path over (T, V) log-probs, with ``top``: (T, K) candidate pieces per frame; frames are numbered from
    ``offset``. Returns [(piece, first_frame, end_frame)]."""
    beams: dict[tuple, Prefix] = {(): Prefix(pb=0.0)}
    roots = np.array(sorted(graph.children[0]), dtype=np.int64) if graph else np.zeros(0, dtype=np.int64)

    def extend(table, key, parent, pb=NEG_INF, pnb=NEG_INF, bonus=None, node=None, align=None):
        entry = table.get(key)
        if entry is None:
            entry = table[key] = Prefix(bonus=parent.bonus if bonus is None else bonus,
                                        node=parent.node if node is None else node, align=parent.align)
        entry.pb, entry.pnb = logaddexp(entry.pb, pb), logaddexp(entry.pnb, pnb)
        contribution = max(pb, pnb)
        if contribution > entry.best:
            entry.best, entry.align = contribution, parent.align if align is None else align

    for t in range(logp.shape[0]):
        lp = logp[t]
        lb = float(lp[blank])
        frame = t + offset
        if lb > BLANK_SKIP_LOGP:  # only the blank and repeats: no new prefix
            for key, h in beams.items():
                h.pb, h.pnb = h.total() + lb, (h.pnb + float(lp[key[-1]]) if key else NEG_INF)
            continue
        candidates = set(top[t].tolist())
        if len(roots):
            candidates.update(roots[lp[roots] > HOTWORD_MIN_LOGP].tolist())
        candidates.discard(blank)
        nxt: dict[tuple, Prefix] = {}
        for key, h in beams.items():
            total = h.total()
            extend(nxt, key, h, pb=total + lb)
            tried = candidates
            if graph and h.node:
                tried = candidates | {p for p in graph.children[h.node] if lp[p] > HOTWORD_MIN_LOGP}
            if key:
                last = key[-1]
                repeat = h.align[:-1] + ((last, h.align[-1][1], frame + 1),)
                extend(nxt, key, h, pnb=h.pnb + float(lp[last]), align=repeat)
            for piece in tried:
                p = float(lp[piece]) + (h.pb if key and piece == key[-1] else total)
                delta, node = graph.step(h.node, piece) if graph else (0.0, 0)
                extend(nxt, key + (piece,), h, pnb=p, bonus=h.bonus + delta, node=node,
                       align=h.align + ((piece, frame, frame + 1),))
        ranked = sorted(nxt.items(), key=lambda kv: kv[1].total() + kv[1].bonus, reverse=True)
        beams = dict(ranked[:beam])
    take_back = graph.score if graph else None
    best = max(beams.values(), key=lambda h: h.total() + h.bonus - (take_back[h.node] if take_back else 0.0))
    return list(best.align)


def tag_probabilities(scores: Tensor, k: int, special: sv.SpecialTokens) -> dict[str, dict[str, float]]:
    """The k most likely tags of each family on its frame, softmax over that family's tags: {family: {tag: p}}."""
    index = {name: i for i, name in special.names.items()}
    out = {}
    for family, (frame, names) in TAG_FAMILIES.items():
        names = [n for n in names if n in index]
        probs = scores[frame, [index[n] for n in names]].float().softmax(-1)
        p, order = probs.topk(min(k, len(names)))
        out[family] = {names[i]: round(float(x), 4) for x, i in zip(p.tolist(), order.tolist())}
    return out


def apply_decoding_options(scores: Tensor, options: sv.DecodingOptions, special: sv.SpecialTokens) -> Tensor:
    """(B, 4 + T, V) CTC log-probs or raw logits (greedy search picks the same from either), changed in place
    by the options that reshape them: the emotion ban, and the blank penalty on speech frames (the four tag
    frames are left alone)."""
    if options.ban_emo_unk:
        scores[:, :, special.emotion_unknown] = -math.inf
    if options.blank_penalty:
        scores[:, sv.N_PROMPT:, special.blank] -= options.blank_penalty
    return scores


def ctc_greedy(logp: Tensor, lens: Tensor, blank: int) -> list[list[tuple[int, int, int]]]:
    """Best path per item: [(token, first_frame, end_frame)], repeats merged and blanks dropped."""
    best = logp.argmax(dim=-1).cpu()  # (B, T)
    paths = []
    for row, n in zip(best, lens.tolist()):
        row = row[:n]
        tokens, counts = torch.unique_consecutive(row, return_counts=True)
        ends = counts.cumsum(0)
        paths.append([(t, e - c, e) for t, c, e in zip(tokens.tolist(), counts.tolist(), ends.tolist())
                      if t != blank])
    return paths


def search(scores: Tensor, lens: Tensor, options: sv.DecodingOptions, special: sv.SpecialTokens, tokenizer: Any
           ) -> tuple[list[list[tuple[int, int, int]]], list[dict[str, Any]]]:
    """``transcripts.decode_scores``'s search when ``options.searches``: (B, 4 + T, V) log-probs or logits -> paths
    [(piece, first_frame, end_frame)] and per-item extra fields (``tag_probs`` with tag_topk). The scores are
    changed in place (ban_emo_unk, blank penalty, suppressed scripts)."""
    extras: list[dict[str, Any]] = [{} for _ in range(scores.shape[0])]
    if options.tag_topk:
        for b in range(scores.shape[0]):
            extras[b]["tag_probs"] = tag_probabilities(scores[b], options.tag_topk, special)
    apply_decoding_options(scores, options, special)
    if options.restrict_language:
        language_ids = torch.tensor(list(special.language.values()), device=scores.device)
        names = list(special.language)
        for b in range(scores.shape[0]):
            language = options.language if options.language != "auto" else \
                names[int(scores[b, 0, language_ids].argmax())]
            if language in LANGUAGE_SCRIPTS:
                scores[b, :, torch.from_numpy(suppressed(special, language)).to(scores.device)] = NEG_INF
    greedy = ctc_greedy(scores, lens, special.blank)
    graph = context_graph(options, tokenizer)
    beam = max(options.beam_size, sv.HOTWORD_BEAM) if graph else options.beam_size
    if beam == 1:
        return greedy, extras
    text = scores[:, sv.N_PROMPT:].float().log_softmax(dim=-1)  # (B, T, V)
    top = text.topk(beam, dim=-1).indices.cpu().numpy()  # (B, T, beam)
    paths = []
    for b, n in enumerate(lens.tolist()):
        tags = [(t, s, e) for t, s, e in greedy[b] if s < sv.N_PROMPT]
        body = prefix_beam_search(text[b, : n - sv.N_PROMPT].cpu().numpy(), top[b], beam, special.blank, graph,
                                  sv.N_PROMPT)
        paths.append(tags + body)
    return paths, extras
