"""Speaker diarization: who spoke when, from speaker embeddings of sliding windows inside the VAD's speech.

    16 kHz audio + VAD spans -> 1.6 s windows every STEP_MS inside each span -> speaker embeddings (batched)
    -> agglomerative clustering (cosine, average linkage; count automatic or fixed) -> speaker turns
    -> ASR segments split where the speaker changes, every word labelled by its timestamps    ``label_segments``

The default encoder is Resemblyzer's GE2E speaker encoder (Wan et al., https://arxiv.org/abs/1710.10467), whose
trained weights ship inside the ``resemblyzer`` wheel (``resemblyzer/pretrained.pt``, Apache-2.0). That package is
installed without its dependencies (webrtcvad compiles C) and never imported here: ``GE2EEncoder`` reads the
weights as tensors and computes Resemblyzer's features itself (``VoiceEncoder`` + ``wav_to_mel_spectrogram``:
40-band power mel of 25 ms Hann frames every 10 ms, 160 frames a window, volume raised to -30 dBFS). FunASR's
CAM++ (``CAMPPlusEncoder``, ``--speaker-encoder cam++``) takes its place when its release is in the ModelScope (or
Hugging Face) cache.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from model import option  # the declaration of every options type's fields (help, range, ...)
from sensevoice import optionspec

SAMPLE_RATE = 16_000
SAMPLES_PER_MS = SAMPLE_RATE // 1000
# Resemblyzer's hparams.py: mel frames of 25 ms every 10 ms, 40 bands, 160 frames (1.6 s) per partial utterance.
MEL_WINDOW = 400  # samples (25 ms)
MEL_HOP = 160  # samples (10 ms)
MEL_BANDS = 40
WINDOW_FRAMES = 160  # mel frames per embedding window
WINDOW_MS = WINDOW_FRAMES * MEL_HOP // SAMPLES_PER_MS  # 1600 ms
# Samples one window reads: its 160 frames centred every 10 ms, each 200 samples either side of its centre
# (librosa's center=True framing, zero beyond the audio).
WINDOW_SAMPLES = (WINDOW_FRAMES - 1) * MEL_HOP + MEL_WINDOW  # 25840
TARGET_DBFS = -30.0  # Resemblyzer's audio_norm_target_dBFS (raised only, never lowered)
GE2E_PACKAGE = "resemblyzer"  # PyPI: resemblyzer (installed with --no-deps, see scripts/setup_env.sh)
GE2E_WEIGHTS = "pretrained.pt"  # inside the package folder
GE2E_TRAINING_ONLY = ("similarity_weight", "similarity_bias")  # GE2E loss parameters, unused by the encoder

STEP_MS = 800  # one window every 0.8 s of speech (half-overlapping): speaker changes found to +-0.4 s
BATCH_WINDOWS = 64  # windows per encoder call: bounds memory whatever the audio's length
# Chosen by `python -m sensevoice.bench.diarize tune` on the benchmark's tuning conversations only (its test
# conversations are held out; bench/results/diarize_tune_official.json holds the grid): the best right-count share
# (92.5 % of 200), then DER.
SMOOTH_WINDOWS = 2  # each window's embedding is averaged with this many neighbours either side (same span)
# Automatic speaker count: the average-linkage cosine distance at which clusters stop merging, and the share of
# windows below which a cluster is no speaker; a fixed count uses neither.
DISTANCE_THRESHOLD = 0.23
MIN_CLUSTER_SHARE = 0.05
REFINE_ITERATIONS = 2  # nearest-centroid passes after the tree (average linkage leaves turn edges misplaced)
MAX_CLUSTERED_WINDOWS = 4000  # more windows (> 53 min of speech) are clustered on a sample, the rest assigned
MAX_SPEAKERS = 32
SPEAKER_ENCODERS = ("resemblyzer", "cam++")
DEFAULT_SPEAKER_ENCODER = "resemblyzer"  # its weights ship in a wheel: no download
# FunASR's CAM++ (spk_model="cam++"): its short name, which FunASR's name maps (funasr/download/name_maps_from_hub.py)
# turn into iic/speech_campplus_sv_zh-cn_16k-common on ModelScope and funasr/campplus on Hugging Face. FunASR reads a
# release folder through configuration.json's file_path_metas (funasr/download/download_model_from_hub.py:
# ``config`` -> the yaml whose ``model``/``model_conf`` build the network, ``init_param`` -> the weights,
# campplus_cn_common.bin); ModelScope's own speaker-verification pipeline reads the same file's ``model`` block
# instead (modelscope/models/audio/sv/DTDNN.py: model_config.fbank_dim/emb_size, pretrained_model).
CAMPPLUS_NAME = "cam++"
CAMPPLUS_HUBS = ("ms", "hf")  # caches looked in, in this order: FunASR's default hub first
CAMPPLUS_CLASS = "CAMPPlus"  # config.yaml's ``model`` (FunASR's registry name, funasr/models/campplus/template.yaml)
CAMPPLUS_FBANK_BINS = 80  # funasr/models/campplus/utils.py extract_feature: Kaldi fbank, 80 bins, mean-normalised
COUNT_METHODS = ("threshold", "silhouette")


@dataclass(frozen=True)
class ClusteringSettings:
    """How window embeddings become speakers: the library's tuned constants, not user options (the benchmark's
    ``tune`` mode sweeps them on its tuning conversations). ``count``: how the automatic speaker count is chosen:
    ``threshold`` cuts the average-linkage tree at ``threshold``; ``silhouette`` takes, among the tree's cuts into
    2..max clusters, the one of highest mean cosine silhouette, unless cutting at ``threshold`` leaves one cluster
    (one speaker needs no second opinion: a silhouette is undefined for one cluster)."""

    threshold: float = DISTANCE_THRESHOLD
    min_cluster_share: float = MIN_CLUSTER_SHARE
    smooth_windows: int = SMOOTH_WINDOWS
    count: str = "threshold"

    def __post_init__(self):
        if self.count not in COUNT_METHODS:
            raise ValueError(f"count={self.count!r}; expected one of {list(COUNT_METHODS)}")
        if not 0 < self.threshold < 2 or not 0 <= self.min_cluster_share < 1 or self.smooth_windows < 0:
            raise ValueError(f"bad clustering settings {self}: threshold in (0, 2), min_cluster_share in [0, 1), "
                             "smooth_windows >= 0")


DEFAULT_CLUSTERING = ClusteringSettings()


# ----------------------------------------------------------------------------------------------- options
def _check_count(spec: Any, value: Any) -> int | None:
    """One count field's value, checked against its declared range (None allowed where the field is optional)."""
    kind, optional = optionspec.kind_of(spec.type)
    if kind != "int":
        raise TypeError(f"DiarizationOptions.{spec.name}: a {kind} field has no check; its fields are counts (int)")
    if value is None and optional:
        return None
    from model import _check_count as check_count  # DecodingOptions' count check: one of it (range, not a bool)

    return check_count(spec.name, value, *spec.metadata["range"], also=" or None (estimated)" if optional else "")


@dataclass(frozen=True)
class DiarizationOptions:
    """How many speakers to look for: ``num_speakers`` fixes the count; otherwise it is estimated within
    [``min_speakers``, ``max_speakers``]. Declared as model.DecodingOptions is (``option``: help, range, names,
    ...), so every door's flags and fields are generated from these fields (sensevoice/optionspec.py), and
    validated here, once, on construction (ValueError names the bad value)."""

    # The doors' yes/no for the whole type: an options object exists only when diarization is asked for (a door
    # passes None otherwise), so the switch belongs to the type, not to a field; any field given asks too.
    SWITCH: ClassVar[dict] = {"name": "diarize",
                              "help": "label who speaks when (speaker turns S1, S2, ...: txt 'S1: ', srt '[S1] ', "
                                      "vtt voice spans, a tsv column, json 'speaker' per segment and word)"}

    num_speakers: int | None = option(None, "exactly N speakers, else estimated", range=(1, MAX_SPEAKERS),
                                      metavar="N")
    min_speakers: int = option(1, "at least N speakers when estimating", range=(1, MAX_SPEAKERS), metavar="N")
    max_speakers: int = option(MAX_SPEAKERS, "at most N speakers when estimating", range=(1, MAX_SPEAKERS),
                               metavar="N")

    def __post_init__(self):
        for spec in fields(self):  # frozen: canonical values (int, not numpy's) replace the given ones
            object.__setattr__(self, spec.name, _check_count(spec, getattr(self, spec.name)))
        num, low, high = self.num_speakers, self.min_speakers, self.max_speakers
        if low > high:
            raise ValueError(f"min_speakers={low} is more than max_speakers={high}")
        if num is not None and not low <= num <= high:
            raise ValueError(f"num_speakers={num} is outside min_speakers={low}..max_speakers={high}")

    @property
    def bounds(self) -> tuple[int, int]:
        return (self.num_speakers, self.num_speakers) if self.num_speakers else (self.min_speakers, self.max_speakers)


# ----------------------------------------------------------------------------------------------- encoders
class SpeakerEncoder(Protocol):
    """What diarization needs of a speaker encoder: a name and (B, WINDOW_SAMPLES) 16 kHz windows -> (B, D)
    L2-normalised embeddings. ``raises_loudness``: whether the windows come raised to -30 dBFS by the file's
    ``loudness_gain`` (Resemblyzer's features do this; FunASR's CAM++ reads the samples as they are)."""

    name: str
    raises_loudness: bool

    def embed(self, windows: Tensor) -> Tensor: ...


def ge2e_weights_path() -> Path:
    """``resemblyzer/pretrained.pt`` of the installed wheel, found without importing the package (its
    ``__init__`` imports webrtcvad and librosa, which this module does not need)."""
    spec = importlib.util.find_spec(GE2E_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {GE2E_PACKAGE} package is not installed; it carries the GE2E speaker encoder's "
                                "weights: pip install --no-deps resemblyzer (pinned in constraints.txt)")
    path = Path(list(spec.submodule_search_locations)[0]) / GE2E_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall resemblyzer")
    return path


def mel_filters(n_fft: int = MEL_WINDOW, n_mels: int = MEL_BANDS) -> Tensor:
    """(n_fft // 2 + 1, n_mels) Slaney-scale, Slaney-normalised triangles from 0 to 8 kHz: librosa.filters.mel's
    defaults, which Resemblyzer's features use."""
    import torchaudio.functional

    return torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, 0.0, SAMPLE_RATE / 2, n_mels, SAMPLE_RATE,
                                                 norm="slaney", mel_scale="slaney")


class GE2EEncoder(nn.Module):
    """Resemblyzer's GE2E encoder: 3-layer LSTM (256) over 40-band power mel frames -> ReLU(linear) -> L2 norm.
    Attribute names follow the checkpoint's keys."""

    name = "resemblyzer"
    raises_loudness = True  # Resemblyzer's preprocess_wav: normalize_volume(-30 dBFS, increase_only=True)

    def __init__(self, hidden: int = 256, layers: int = 3, dim: int = 256):
        super().__init__()
        self.lstm = nn.LSTM(MEL_BANDS, hidden, layers, batch_first=True)
        self.linear = nn.Linear(hidden, dim)
        self.register_buffer("window", torch.hann_window(MEL_WINDOW, periodic=True), persistent=False)
        self.register_buffer("filters", mel_filters(), persistent=False)

    @classmethod
    def pretrained(cls, path: str | Path | None = None) -> "GE2EEncoder":
        """The shipped weights (or ``path``), as tensors only; refuses a checkpoint whose keys do not match."""
        path = Path(path) if path is not None else ge2e_weights_path()
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = {k: v for k, v in checkpoint["model_state"].items() if k not in GE2E_TRAINING_ONLY}
        encoder = cls()
        encoder.load_state_dict(state, strict=True)
        return encoder.eval()

    def mels(self, windows: Tensor) -> Tensor:
        """(B, WINDOW_SAMPLES) -> (B, WINDOW_FRAMES, MEL_BANDS) power mel (not log: Resemblyzer's input)."""
        spec = torch.stft(windows, MEL_WINDOW, MEL_HOP, window=self.window, center=False, return_complex=True)
        return (spec.abs() ** 2).transpose(1, 2) @ self.filters  # (B, 160, 40)

    @torch.no_grad()
    def embed(self, windows: Tensor) -> Tensor:
        _, (hidden, _) = self.lstm(self.mels(windows.float()))  # hidden: (layers, B, hidden)
        x = torch.relu(self.linear(hidden[-1]))  # (B, dim)
        return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


class CAMPPlusEncoder:
    """FunASR's CAM++ speaker network (``funasr.models.campplus.model.CAMPPlus``, Wang et al.,
    https://arxiv.org/abs/2303.00332) behind the SpeakerEncoder interface, with FunASR's own features
    (funasr/models/campplus/utils.py ``extract_feature``): 80-bin Kaldi fbank of each window's samples as they are
    (floats in [-1, 1], as FunASR's audio loader gives them; no loudness gain: the log fbank floors quiet bins, so a
    gain would change the features), mean-normalised over the window."""

    name = CAMPPLUS_NAME
    raises_loudness = False

    def __init__(self, network: nn.Module):
        self.network = network.eval()

    @classmethod
    def from_dir(cls, folder: str | Path) -> "CAMPPlusEncoder":
        """A CAM++ release folder as FunASR reads it: configuration.json's ``file_path_metas`` (``init_param``: the
        weights, ``config``: config.yaml, whose ``model_conf`` builds the network). The weights are read as tensors
        only and must match the network key by key (FunASR's loader would keep random weights for a missing key)."""
        import json

        import model as sv
        from sensevoice.checkpoint import check_state_dict

        folder = Path(folder)
        descriptor = json.loads((folder / "configuration.json").read_text(encoding="utf-8"))  # bad JSON: a ValueError
        metas = (descriptor.get("file_path_metas") if isinstance(descriptor, dict) else None) or {}
        if "init_param" not in metas or "config" not in metas:
            # A descriptor for ModelScope's pipeline alone (its "model" block's pretrained_model, no config.yaml), as
            # older revisions are reported to be (3D-Speaker's infer_sv.py pins v1.0.0 and reads only the weights);
            # FunASR's download_model_from_hub.py cannot build a model from it either.
            raise ValueError(f"{folder / 'configuration.json'} has no file_path_metas.init_param/config (found "
                             f"{sorted(metas)}), which FunASR reads: not a release FunASR can load (an older "
                             f"revision?); fetch the current one with `sensevoice download {CAMPPLUS_NAME}`")
        network = campplus_network(folder / metas["config"])
        weights = str(folder / metas["init_param"])
        state, _ = sv.read_checkpoint(weights)  # as data only; CheckpointError (a ValueError) names the file
        check_state_dict(state, network.state_dict(), weights)
        network.load_state_dict(state, strict=True)
        return cls(network)

    @classmethod
    def cached(cls) -> "CAMPPlusEncoder":
        """The release from the ModelScope cache, else the Hugging Face one (where FunASR's ``spk_model="cam++"``
        puts it with hub="ms" / "hf"), looked up offline by each hub's library (sensevoice/hub.py, as for the ASR
        model); FileNotFoundError (one line: each cache, the command that fetches it) when neither is complete."""
        from sensevoice import hub

        looked = []
        for name in CAMPPLUS_HUBS:
            repo = hub.repo_id(CAMPPLUS_NAME, name)
            folder = hub.cached_snapshot(repo, name, None)
            if folder is not None and not hub.missing_files(folder):
                try:
                    return cls.from_dir(folder)
                except ValueError as err:  # a release FunASR cannot read (an older revision): the next cache's may do
                    looked.append(f"{repo} in the {hub.HUBS[name]} cache cannot be used: {err}")
                    continue
            where = "incomplete" if folder is not None else "not"
            looked.append(f"{repo} is {where} in the {hub.HUBS[name]} cache ({hub.cache_root(name)})")
        raise FileNotFoundError(f"speaker encoder {CAMPPLUS_NAME}: {'; '.join(looked)}; fetch it with `sensevoice "
                                f"download {CAMPPLUS_NAME}` (or `sensevoice download {CAMPPLUS_NAME} --hub hf`; on a "
                                "machine without network: copy a connected machine's cache here)")

    def features(self, windows: Tensor) -> Tensor:
        """(B, samples) -> (B, frames, 80) mean-normalised log mel fbank (torchaudio's Kaldi fbank, as FunASR)."""
        import torchaudio.compliance.kaldi as kaldi

        feats = [kaldi.fbank(w[None], num_mel_bins=CAMPPLUS_FBANK_BINS, sample_frequency=SAMPLE_RATE)
                 for w in windows.float()]
        return torch.stack([f - f.mean(0, keepdim=True) for f in feats])

    @torch.no_grad()
    def embed(self, windows: Tensor) -> Tensor:
        x = self.network(self.features(windows))  # (B, embedding_size)
        return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def campplus_network(path: Path) -> nn.Module:
    """FunASR's CAMPPlus built from a release's config.yaml (``model: CAMPPlus``, ``model_conf``); a key its
    constructor does not name is refused (CAMPPlus swallows unknown keywords, so a misspelled one would change
    nothing silently), as is a file that is not such a mapping (ValueError naming it)."""
    import inspect

    import yaml
    from funasr.models.campplus.model import CAMPPlus

    from sensevoice.modeldir import read_config

    try:
        config = read_config(path)
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} holds {type(config).__name__}, not a mapping with model: {CAMPPLUS_CLASS}")
    if config.get("model") != CAMPPLUS_CLASS:
        raise ValueError(f"{path}: model {config.get('model')!r}; expected {CAMPPLUS_CLASS!r} (FunASR's CAM++)")
    model_conf = dict(config.get("model_conf") or {})
    known = [p.name for p in inspect.signature(CAMPPlus).parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    unknown = sorted(set(model_conf) - set(known))
    if unknown:
        raise ValueError(f"{path}: model_conf keys {unknown} are not CAMPPlus's; expected some of {known}")
    return CAMPPlus(**model_conf)


def load_speaker_encoder(name: str = DEFAULT_SPEAKER_ENCODER) -> SpeakerEncoder:
    if name == "resemblyzer":
        return GE2EEncoder.pretrained()
    if name == CAMPPLUS_NAME:
        return CAMPPlusEncoder.cached()
    raise ValueError(f"speaker encoder {name!r}; expected one of {list(SPEAKER_ENCODERS)}")


def loudness_gain(wave: np.ndarray) -> float:
    """Resemblyzer's normalize_volume(increase_only=True): the factor that raises the audio to -30 dBFS, or 1."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if len(wave) else 0.0
    if rms == 0.0:
        return 1.0
    change_db = TARGET_DBFS - 20 * math.log10(rms)
    return 10 ** (change_db / 20) if change_db > 0 else 1.0


def window_audio(wave: np.ndarray, start_ms: int) -> np.ndarray:
    """The WINDOW_SAMPLES a window starting at ``start_ms`` reads (zeros outside the audio)."""
    first = start_ms * SAMPLES_PER_MS - MEL_WINDOW // 2
    out = np.zeros(WINDOW_SAMPLES, np.float32)
    a, b = max(first, 0), min(first + WINDOW_SAMPLES, len(wave))
    if b > a:
        out[a - first:b - first] = wave[a:b]
    return out


def embed_windows(encoder: SpeakerEncoder, wave: np.ndarray, starts_ms: Sequence[int], gain: float) -> np.ndarray:
    """(len(starts_ms), D) embeddings of the windows starting at ``starts_ms``, BATCH_WINDOWS per call."""
    out = []
    for i in range(0, len(starts_ms), BATCH_WINDOWS):
        batch = np.stack([window_audio(wave, s) for s in starts_ms[i:i + BATCH_WINDOWS]]) * gain
        out.append(encoder.embed(torch.from_numpy(batch)).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


# ----------------------------------------------------------------------------------------------- windows
def plan_windows(spans: Sequence[Sequence[int]], duration_ms: int) -> list[tuple[int, int]]:
    """(span index, window start ms) of every window: a span shorter than a window gets one, centred on it (its
    context spills over the span, clamped to the audio where it can); a longer one gets windows every STEP_MS,
    the last ending at the span's end."""
    windows = []
    for n, (start, end) in enumerate(spans):
        if end - start <= WINDOW_MS:
            centred = (start + end) // 2 - WINDOW_MS // 2
            windows.append((n, max(0, min(centred, duration_ms - WINDOW_MS))))
            continue
        last = end - WINDOW_MS
        windows += [(n, s) for s in range(start, last, STEP_MS)] + [(n, last)]
    return windows


# ----------------------------------------------------------------------------------------------- clustering
def smooth_embeddings(embeddings: np.ndarray, spans: Sequence[int], neighbours: int = SMOOTH_WINDOWS) -> np.ndarray:
    """Each window's embedding averaged with ``neighbours`` windows either side in the same span (``spans[i]``:
    window i's span), then L2-normalised: one 1.6 s window is a noisy sample of a voice, three overlapping ones
    (3.2 s) much less so, and a turn lasts longer than that."""
    spans = np.asarray(spans)
    out = np.empty_like(embeddings)
    for i in range(len(embeddings)):
        lo, hi = max(i - neighbours, 0), min(i + neighbours + 1, len(embeddings))
        mean = embeddings[lo:hi][spans[lo:hi] == spans[i]].mean(0)
        out[i] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return out


def silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    """Mean cosine silhouette of L2-normalised rows ``x`` under ``labels`` (Rousseeuw 1987; a point alone in its
    cluster scores 0, as scikit-learn's silhouette_score counts it); needs 2 or more clusters."""
    clusters, index = np.unique(labels, return_inverse=True)
    members = np.eye(len(clusters), dtype=x.dtype)[index]  # (N, K) one-hot
    sizes = members.sum(0)  # (K,)
    # (N, K) summed cosine distance of each point to each cluster: sum_j (1 - x_i.x_j) = size - x_i . (sum_j x_j),
    # so no (N, N) matrix is built (N reaches MAX_CLUSTERED_WINDOWS, and each candidate cut asks again)
    sums = sizes - x @ (x.T @ members)
    own_size = sizes[index] - 1
    inside = sums[np.arange(len(x)), index] / np.maximum(own_size, 1)
    sums[np.arange(len(x)), index] = np.inf
    nearest = (sums / sizes).min(1)
    score = (nearest - inside) / np.maximum(np.maximum(nearest, inside), 1e-12)
    return float(np.where(own_size > 0, score, 0.0).mean())


def _linkage_labels(embeddings: np.ndarray, low: int, high: int, settings: ClusteringSettings) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(embeddings) == 1:
        return np.zeros(1, int)
    tree = linkage(embeddings, method="average", metric="cosine")
    labels = fcluster(tree, t=settings.threshold, criterion="distance") - 1
    count = len(set(labels.tolist()))
    if low == high or not low <= count <= high:
        return fcluster(tree, t=min(max(count, low), high), criterion="maxclust") - 1
    if settings.count == "silhouette" and count > 1:
        cuts = [fcluster(tree, t=k, criterion="maxclust") - 1 for k in range(max(low, 2), high + 1)]
        cuts = [c for c in cuts if len(np.unique(c)) > 1]
        if cuts:
            labels = max(cuts, key=lambda c: silhouette(embeddings, c))
    return labels


def _centroids(embeddings: np.ndarray, labels: np.ndarray, clusters: Sequence[int]) -> np.ndarray:
    means = np.stack([embeddings[labels == c].mean(0) for c in clusters])
    return means / np.linalg.norm(means, axis=1, keepdims=True).clip(1e-12)


def _drop_small_clusters(embeddings: np.ndarray, labels: np.ndarray, low: int, min_share: float) -> np.ndarray:
    """Automatic count: windows of clusters too small to be a speaker (a cough, an overlap, a noisy stretch) join
    the nearest remaining cluster; at least ``low`` clusters stay."""
    labels = labels.copy()
    sizes = {c: int((labels == c).sum()) for c in np.unique(labels)}
    by_size = sorted(sizes, key=lambda c: -sizes[c])
    keep = [c for c in by_size if sizes[c] >= min_share * len(labels)]
    keep += [c for c in by_size if c not in keep][:max(0, low - len(keep))]
    moved = ~np.isin(labels, keep)
    labels[moved] = np.asarray(keep)[(embeddings[moved] @ _centroids(embeddings, labels, keep).T).argmax(1)]
    return labels


def _refine(x: np.ndarray, sample: np.ndarray, labels: np.ndarray, keep_count: bool) -> np.ndarray:
    """Every window (not only the sample's) joins its nearest centroid, REFINE_ITERATIONS times: k-means steps from
    the tree's clusters (average linkage leaves windows near a turn's edge in the wrong cluster). With a fixed
    count, a step that would empty a cluster is not taken."""
    centroids = _centroids(sample, labels, np.unique(labels))
    out = (x @ centroids.T).argmax(1)  # (N,) index of the nearest centroid
    if keep_count and len(np.unique(out)) < len(centroids) and len(sample) == len(x):
        return labels
    for _ in range(REFINE_ITERATIONS - 1):
        present = np.unique(out)
        step = present[(x @ _centroids(x, out, present).T).argmax(1)]
        if keep_count and len(np.unique(step)) < len(centroids):
            break
        out = step
    return out


def cluster(embeddings: np.ndarray, options: DiarizationOptions = DiarizationOptions(),
            spans: Sequence[int] | None = None, settings: ClusteringSettings = DEFAULT_CLUSTERING) -> np.ndarray:
    """(N, D) L2-normalised window embeddings (``spans``: each window's span, for smoothing) -> (N,) speaker index,
    0 for the first speaker to appear, then 1, ...

    Beyond MAX_CLUSTERED_WINDOWS, an even sample is clustered and every window joins the nearest centroid:
    memory stays bounded (linkage holds N^2 / 2 distances) on audio of any length."""
    n = len(embeddings)
    low, high = options.bounds
    if n < low:
        raise ValueError(f"{low} speakers asked for, but the speech gives only {n} window(s) of "
                         f"{WINDOW_MS / 1000:g} s to tell them apart")
    high = min(high, n)
    x = smooth_embeddings(embeddings, np.zeros(n, int) if spans is None else spans, settings.smooth_windows)
    sample = np.linspace(0, n - 1, min(n, MAX_CLUSTERED_WINDOWS)).round().astype(int)
    labels = _linkage_labels(x[sample], low, high, settings)
    if options.num_speakers is None:
        labels = _drop_small_clusters(x[sample], labels, low, settings.min_cluster_share)
    labels = _refine(x, x[sample], labels, keep_count=options.num_speakers is not None)
    first_seen = {c: i for i, c in enumerate(dict.fromkeys(labels.tolist()))}
    return np.array([first_seen[c] for c in labels.tolist()], int)


# ----------------------------------------------------------------------------------------------- turns
@dataclass(frozen=True)
class Turn:
    """One speaker's stretch of speech, [start_ms, end_ms) on the input's timeline."""

    start_ms: int
    end_ms: int
    speaker: int  # 0-based, in order of first appearance (FunASR's ``spk``)

    @property
    def label(self) -> str:
        return speaker_label(self.speaker)


def speaker_label(speaker: int) -> str:
    return f"S{speaker + 1}"


def smooth(labels: Sequence[int]) -> list[int]:
    """Within one span: a window whose two neighbours agree with each other but not with it takes their label
    (one window alone is 0.8 s of speech: too little to be a turn, enough to be a misjudged window)."""
    out = list(labels)
    for i in range(1, len(out) - 1):
        if labels[i - 1] == labels[i + 1] != labels[i]:
            out[i] = labels[i - 1]
    return out


def span_turns(span: Sequence[int], starts_ms: Sequence[int], labels: Sequence[int]) -> list[Turn]:
    """The turns of one span from its windows: each instant belongs to the window whose centre is nearest, so a
    change of speaker falls halfway between the centres of two windows that disagree."""
    start, end = span
    labels = smooth(labels)
    centres = [s + WINDOW_MS // 2 for s in starts_ms]
    turns: list[Turn] = []
    turn_start = start
    for i in range(1, len(labels)):
        if labels[i] != labels[i - 1]:
            boundary = min(max((centres[i - 1] + centres[i]) // 2, turn_start), end)
            turns.append(Turn(turn_start, boundary, labels[i - 1]))
            turn_start = boundary
    turns.append(Turn(turn_start, end, labels[-1]))
    return [t for t in turns if t.end_ms > t.start_ms]


@dataclass(frozen=True)
class SpeechEmbeddings:
    """The windows of one input's speech and their embeddings: what clustering starts from."""

    spans: tuple[tuple[int, int], ...]  # [start_ms, end_ms) of each speech span, time order
    windows: tuple[tuple[int, int], ...]  # (span index, start ms) of each window
    embeddings: np.ndarray  # (len(windows), D), L2-normalised


def embed_speech(wave: np.ndarray, spans: Sequence[Sequence[int]], encoder: SpeakerEncoder) -> SpeechEmbeddings:
    windows = plan_windows(spans, len(wave) // SAMPLES_PER_MS)
    gain = loudness_gain(wave) if encoder.raises_loudness else 1.0
    embeddings = embed_windows(encoder, wave, [s for _, s in windows], gain)
    return SpeechEmbeddings(tuple((int(a), int(b)) for a, b in spans), tuple(windows), embeddings)


def speech_turns(speech: SpeechEmbeddings, options: DiarizationOptions = DiarizationOptions(),
                 settings: ClusteringSettings = DEFAULT_CLUSTERING) -> list[Turn]:
    """Speaker turns from clustered window embeddings, span by span."""
    labels = cluster(speech.embeddings, options, [n for n, _ in speech.windows], settings)
    turns: list[Turn] = []
    for n, span in enumerate(speech.spans):
        mine = [i for i, (w, _) in enumerate(speech.windows) if w == n]
        turns += span_turns(span, [speech.windows[i][1] for i in mine], [int(labels[i]) for i in mine])
    return turns


def diarize(wave: np.ndarray, spans: Sequence[Sequence[int]], encoder: SpeakerEncoder,
            options: DiarizationOptions = DiarizationOptions()) -> list[Turn]:
    """Speaker turns of a 16 kHz waveform, inside its speech ``spans`` ([start_ms, end_ms), time order)."""
    if not spans:
        return []
    return speech_turns(embed_speech(wave, spans, encoder), options)


class Diarizer:
    """A speaker encoder loaded once (on first use) and the diarization of any number of inputs; thread-safe."""

    def __init__(self, encoder: str | SpeakerEncoder = DEFAULT_SPEAKER_ENCODER):
        if isinstance(encoder, str) and encoder not in SPEAKER_ENCODERS:
            raise ValueError(f"speaker encoder {encoder!r}; expected one of {list(SPEAKER_ENCODERS)}")
        self._encoder = encoder
        self._lock = threading.Lock()

    @property
    def encoder(self) -> SpeakerEncoder:
        with self._lock:
            if isinstance(self._encoder, str):
                self._encoder = load_speaker_encoder(self._encoder)
            return self._encoder

    def __call__(self, wave: np.ndarray, spans: Sequence[Sequence[int]],
                 options: DiarizationOptions = DiarizationOptions()) -> list[Turn]:
        return diarize(wave, spans, self.encoder, options)


# ----------------------------------------------------------------------------------------------- transcripts
def speaker_at(start_ms: int, end_ms: int, turns: Sequence[Turn]) -> int:
    """The speaker of [start_ms, end_ms]: the turn overlapping it most, else (a zero-length word, a gap) the turn
    nearest its middle."""
    overlaps = [min(end_ms, t.end_ms) - max(start_ms, t.start_ms) for t in turns]
    best = int(np.argmax(overlaps))
    if overlaps[best] > 0:
        return turns[best].speaker
    middle = (start_ms + end_ms) / 2
    return min(turns, key=lambda t: max(t.start_ms - middle, middle - t.end_ms)).speaker


def _word_piece_starts(pieces: Sequence[str]) -> list[int]:
    """The index of each word's first piece (timestamps.group_words' grouping; bare "▁" pieces join the next word)."""
    from sensevoice.timestamps import word_piece_ranges

    return [first for first, _ in word_piece_ranges(pieces)]


def split_segment(segment: dict[str, Any], word_speakers: Sequence[int]) -> list[dict[str, Any]]:
    """One segment with word timestamps -> one segment per run of words of one speaker: its words, tokens and
    their times and probabilities, its text (the segment's tags + its pieces' text) and span. A boundary falls
    halfway between the last word of one speaker and the first of the next."""
    from sensevoice.richtext import LEADING_TAGS_RE
    from sensevoice.subtitles import pieces_text

    starts = _word_piece_starts(segment["tokens"])
    runs = [0] + [i for i in range(1, len(word_speakers)) if word_speakers[i] != word_speakers[i - 1]]
    tags = LEADING_TAGS_RE.match(segment["text"]).group(0)
    out = []
    for n, w0 in enumerate(runs):
        w1 = runs[n + 1] if n + 1 < len(runs) else len(word_speakers)
        p0 = 0 if n == 0 else starts[w0]
        p1 = starts[w1] if w1 < len(starts) else len(segment["tokens"])
        start = segment["start_ms"] if n == 0 else out[-1]["end_ms"]
        end = segment["end_ms"] if w1 == len(word_speakers) else \
            (segment["timestamp"][w1 - 1][1] + segment["timestamp"][w1][0]) // 2
        clean = pieces_text(segment["tokens"][p0:p1])
        part = {**segment, "start_ms": start, "end_ms": max(end, start), "text": tags + clean, "clean_text": clean}
        for key in ("words", "timestamp", "word_probability"):
            part[key] = segment[key][w0:w1]
        for key in ("tokens", "token_timestamp", "token_probability"):
            part[key] = segment[key][p0:p1]
        part["speaker"] = speaker_label(word_speakers[w0])
        part["word_speaker"] = [part["speaker"]] * (w1 - w0)
        out.append(part)
    return out


def label_segments(segments: Sequence[dict[str, Any]], turns: Sequence[Turn]) -> list[dict[str, Any]]:
    """Transcript segments (absolute times, with word timestamps) -> the same, each with its ``speaker`` ("S1",
    ...) and ``word_speaker`` (one label per word); a segment in which the speaker changes is split there."""
    out: list[dict[str, Any]] = []
    for segment in segments:
        if not turns:
            out.append(segment)
            continue
        words = segment.get("words") or []
        word_speakers = [speaker_at(s, e, turns) for s, e in segment.get("timestamp", [])]
        if len(set(word_speakers)) > 1:
            out += split_segment(segment, word_speakers)
            continue
        speaker = speaker_label(word_speakers[0] if word_speakers else
                                speaker_at(segment["start_ms"], segment["end_ms"], turns))
        out.append({**segment, "speaker": speaker, "word_speaker": [speaker] * len(words)})
    return out
