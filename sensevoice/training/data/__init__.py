"""Synthetic multilingual rich-label corpus: espeak-ng speech in zh/yue/en/ja/ko with emotion styles, numpy
events (music, applause, laughter), ITN pairs, written in FunASR's SenseVoice fine-tuning jsonl format.

Modules: ``text`` (sentence generators), ``numbers`` (number verbalisers), ``synth`` (espeak-ng voices and
emotion styles), ``sounds`` (events, noise, room), ``corpus`` (clips, splits, jsonl), ``__main__`` (CLI:
``python -m sensevoice.training.data --out data/corpus ...`` and ``python -m sensevoice.training.data examples --out examples``).
Needs espeak-ng (scripts/install_system_deps.sh).
"""
