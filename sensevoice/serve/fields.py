"""Form fields of the transcription routes, validated: unknown fields, options outside their choices and missing
files raise ``ApiError`` (422, listing the valid values), which the app turns into OpenAI's error JSON."""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass
from typing import Sequence

from fastapi.responses import JSONResponse
from starlette.datastructures import FormData, UploadFile

import model as sv
from sensevoice.diarize import DiarizationOptions
from sensevoice.serve import formats

MODEL_ID = "sensevoice-small"
MODEL_ALIASES = ("whisper-1",)  # what OpenAI SDK examples send; this service hosts one model
LANGUAGE_CHOICES = (*sv.LANGUAGES, *sv.LANGUAGE_ALIASES)
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
# OpenAI's transcription fields (temperature and stream=false are accepted and have no effect here; ``prompt``
# becomes hotwords: its words bias the decoding), and ours: use_itn and the search options.
SEARCH_FIELDS = ("beam_size", "restrict_language", "tag_topk")
DIARIZATION_FIELDS = ("diarize", "num_speakers", "min_speakers", "max_speakers")  # a speaker count implies diarize
OPENAI_FIELDS = ("file", "model", "language", "response_format", "timestamp_granularities[]", "use_itn", "prompt",
                 "temperature", "stream", *SEARCH_FIELDS, *DIARIZATION_FIELDS)
ASR_FIELDS = ("files", "keys", "lang", "use_itn")  # SenseVoice's api.py
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               405: "invalid_request_error", 408: "timeout_error", 413: "request_too_large",
               422: "invalid_request_error",
               503: "server_overloaded", 504: "timeout_error"}


class ApiError(Exception):
    """An error answer: HTTP status, a message naming the problem, the form field at fault."""

    def __init__(self, status: int, message: str, param: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.headers = status, message, param, headers


def error_response(status: int, message: str, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": ERROR_TYPES.get(status, "server_error"), "param": param,
                      "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def check_fields(form: FormData, accepted: Sequence[str]) -> None:
    unknown = sorted(set(form.keys()) - set(accepted))
    if unknown:
        raise ApiError(422, f"unknown form field(s) {unknown}; accepted: {list(accepted)}", unknown[0])


def text_field(form: FormData, name: str, default: str) -> str:
    value = form.get(name)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise ApiError(422, f"{name} must be a text field, not a file", name)
    return value.strip()


def choice(form: FormData, name: str, choices: Sequence[str], default: str) -> str:
    value = text_field(form, name, default)
    if value not in choices:
        raise ApiError(422, f"{name}={value!r}; expected one of {list(choices)}", name)
    return value


def flag(form: FormData, name: str, default: bool) -> bool:
    value = text_field(form, name, str(default)).lower()
    if value not in TRUE + FALSE:
        raise ApiError(422, f"{name}={value!r}; expected one of {list(TRUE + FALSE)}", name)
    return value in TRUE


def uploads(form: FormData, name: str) -> list[UploadFile]:
    files = form.getlist(name)
    if not files:
        raise ApiError(422, f"missing the audio file: send it as the multipart field {name!r}", name)
    if not all(isinstance(f, UploadFile) for f in files):
        raise ApiError(422, f"{name} must be an uploaded file (multipart/form-data with a filename)", name)
    return files  # type: ignore[return-value]


def integer(form: FormData, name: str, default: int) -> int:
    value = text_field(form, name, str(default))
    if not value.isdigit():
        raise ApiError(422, f"{name}={value!r}; expected an integer >= 0", name)
    return int(value)


def search_fields(form: FormData, base: sv.DecodingOptions) -> dict[str, object]:
    """This request's search options (default: the server's); ``prompt``'s words become hotwords."""
    fields: dict[str, object] = {"beam_size": integer(form, "beam_size", base.beam_size),
                                 "restrict_language": flag(form, "restrict_language", base.restrict_language),
                                 "tag_topk": integer(form, "tag_topk", base.tag_topk)}
    prompt = text_field(form, "prompt", "")
    if prompt:
        fields["hotwords"] = base.hotwords + tuple((word, None) for word in prompt.split())
    return fields


def request_options(base: sv.DecodingOptions, language: str, use_itn: bool, timestamps: bool,
                    **search: object) -> sv.DecodingOptions:
    """The server-wide decoding options with this request's language, ITN choice, timestamps and search fields."""
    try:
        return dataclasses.replace(base, language=language, textnorm="withitn" if use_itn else "woitn",
                                   output_timestamp=timestamps, **search)
    except (TypeError, ValueError) as err:  # names the field and its allowed values
        raise ApiError(422, str(err), str(err).split("=")[0]) from None


@dataclass(frozen=True)
class OpenAIRequest:
    """A validated OpenAI transcription request."""

    options: sv.DecodingOptions
    response_format: str
    granularities: tuple[str, ...]
    upload: UploadFile
    diarization: DiarizationOptions | None = None  # None: no speakers asked for


def diarization_fields(form: FormData) -> DiarizationOptions | None:
    """``diarize`` (a flag) and the speaker counts; any count asks for diarization too."""
    counts = {name: integer(form, name, 0) for name in DIARIZATION_FIELDS[1:] if text_field(form, name, "")}
    if not flag(form, "diarize", False) and not counts:
        return None
    try:
        return DiarizationOptions(**counts)
    except ValueError as err:  # names the field and its range
        raise ApiError(422, str(err), str(err).split("=")[0]) from None


def parse_openai(form: FormData, model_id: str, base: sv.DecodingOptions = sv.DecodingOptions()) -> OpenAIRequest:
    """The fields of an OpenAI transcription request, validated; ``use_itn`` (default true) is ours."""
    check_fields(form, OPENAI_FIELDS)
    choice(form, "model", (model_id, *MODEL_ALIASES), model_id)
    choice(form, "stream", FALSE, "false")
    language = choice(form, "language", LANGUAGE_CHOICES, "auto")
    response_format = choice(form, "response_format", formats.RESPONSE_FORMATS, "json")
    granularities = tuple(g.strip() for g in form.getlist("timestamp_granularities[]") if isinstance(g, str))
    bad = [g for g in granularities if g not in formats.GRANULARITIES]
    if bad:
        raise ApiError(422, f"timestamp_granularities[]={bad}; expected any of {list(formats.GRANULARITIES)}",
                       "timestamp_granularities[]")
    if granularities and response_format != "verbose_json":
        raise ApiError(422, "timestamp_granularities[] needs response_format=verbose_json", "timestamp_granularities[]")
    options = request_options(base, language, flag(form, "use_itn", True),
                              formats.needs_timestamps(response_format, granularities), **search_fields(form, base))
    upload, *extra = uploads(form, "file")
    if extra:
        raise ApiError(422, f"send one file per request ({1 + len(extra)} were sent)", "file")
    return OpenAIRequest(options, response_format, granularities, upload, diarization_fields(form))


def parse_asr(form: FormData, base: sv.DecodingOptions = sv.DecodingOptions()
              ) -> tuple[sv.DecodingOptions, list[UploadFile], list[str]]:
    """The fields of an api.py request, validated: options, files and their keys (default: the file names)."""
    check_fields(form, ASR_FIELDS)
    language = choice(form, "lang", LANGUAGE_CHOICES, "auto")
    options = request_options(base, language, flag(form, "use_itn", False), False)
    files = uploads(form, "files")
    keys_text = text_field(form, "keys", "")
    keys = [k.strip() for k in keys_text.split(",")] if keys_text else [f.filename or f"file{i}"
                                                                         for i, f in enumerate(files)]
    if len(keys) != len(files):
        raise ApiError(422, f"keys names {len(keys)} audios ({keys_text!r}) but {len(files)} files were sent", "keys")
    return options, files, keys
