"""Form fields of the transcription routes and the decoding fields of a WebSocket stream's first message,
validated: unknown fields, options outside their choices and missing files raise ``ApiError`` (422, listing the
valid values), which the app turns into OpenAI's error JSON.

The decoding fields are DecodingOptions' own (``sensevoice.optionspec``: each field's form and stream spelling),
so a new option is a new field of every request shape with no edit here; a request's fields override the
server-wide options (``sensevoice serve``'s flags), and its phrases (hotwords) join the server's.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from fastapi.responses import JSONResponse
from starlette.datastructures import FormData, UploadFile

import model as sv
from sensevoice import optionspec
from sensevoice.optionspec import Option
from sensevoice.diarize import DiarizationOptions
from sensevoice.serve import formats

# Accepted as the form's ``model`` besides the served model's id (``ModelDir.identity``): this project's name, as
# clients written before the id named the model send it, and what OpenAI SDK examples send; one model is served.
MODEL_ALIASES = ("sensevoice-small", "whisper-1")
LANGUAGE_CHOICES = (*sv.LANGUAGES, *sv.LANGUAGE_ALIASES)
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
# OpenAI's transcription fields besides the decoding options (temperature and stream=false are accepted and have no
# effect here; ``prompt``'s words join the hotwords), and SenseVoice api.py's (its language is spelled ``lang``).
OPENAI_FIELDS = ("file", "model", "response_format", "timestamp_granularities[]", "prompt", "temperature", "stream")
# Ours beside OpenAI's: ``subtitles=true`` with verbose_json adds the srt and vtt renderings of the same result (the
# browser page's Copy and Download give the server's own subtitles, not a copy of its writers).
SUBTITLES_FIELD = "subtitles"
ASR_FIELDS = ("files", "keys")
ASR_SPELLING = {"language": "lang"}
# Each door's defaults where they differ from the server-wide options: ITN on for OpenAI's route and for streams
# (FunASR's client sends itn=true unless told otherwise), off for api.py's route, as api.py has it.
OPENAI_DEFAULTS = {"textnorm": "withitn"}
ASR_DEFAULTS = {"textnorm": "woitn"}
STREAM_DEFAULTS = {"textnorm": "withitn"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               405: "invalid_request_error", 408: "timeout_error", 413: "request_too_large",
               422: "invalid_request_error", 429: "rate_limit_error",
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


def key_matches(expected: str | None, authorization: str, query_key: str | None = None) -> bool:
    """Whether a request carries the service's API key (None: no key needed), as ``Authorization: Bearer KEY`` or,
    where given (WebSocket: browsers cannot set its headers), as ``?api_key=KEY``."""
    if expected is None:
        return True
    scheme, _, token = authorization.partition(" ")
    given = token.strip() if scheme.lower() == "bearer" else query_key or ""
    return hmac.compare_digest(given.encode(), expected.encode())


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


def yes_no(name: str, text: str) -> bool:
    if text.lower() not in TRUE + FALSE:
        raise ApiError(422, f"{name}={text!r}; expected one of {list(TRUE + FALSE)}", name)
    return text.lower() in TRUE


def uploads(form: FormData, name: str) -> list[UploadFile]:
    files = form.getlist(name)
    if not files:
        raise ApiError(422, f"missing the audio file: send it as the multipart field {name!r}", name)
    if not all(isinstance(f, UploadFile) for f in files):
        raise ApiError(422, f"{name} must be an uploaded file (multipart/form-data with a filename)", name)
    return files  # type: ignore[return-value]


HOTWORD_COMMAS = re.compile("[,，]")  # between comma-separated hotword phrases (ASCII or full-width)


def parse_hotwords(value: Any) -> tuple[str, ...]:
    """Phrases from a request (DecodingOptions checks and normalises them): "" for none, a JSON object of
    phrases (FunASR's ``{"phrase": weight, ...}``, as a string the way its clients send it, or as an object; its
    weights are on FunASR's scale, not ours, so each phrase gets the server's hotword_weight), comma-separated
    phrases (what FunASR's client sends for its --hotword file: "cousin,twenty,阿里巴巴"; ASCII or full-width commas,
    a trailing one allowed) or space-separated words. ValueError names what is accepted."""
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"hotwords={value[:80]!r} is not a JSON object ({err})") from None
    if isinstance(value, dict):
        return tuple(value)
    if isinstance(value, str) and HOTWORD_COMMAS.search(value):
        return tuple(phrase.strip() for phrase in HOTWORD_COMMAS.split(value.rstrip(" ,，")))
    if isinstance(value, str):
        return tuple(value.split())
    raise ValueError(f"hotwords={value!r}; expected FunASR's JSON object {{\"phrase\": weight, ...}} (as a string "
                     "or an object), comma-separated phrases or space-separated words")


def request_fields(cls: type, door: str, spelling: Mapping[str, str] | None = None) -> dict[str, Option]:
    """{a request's field name: its option} for every option a request may set (``door``: "form" or "stream")."""
    spelling = spelling or {}
    return {spelling.get(o.name) or o.spelled(door): o for o in optionspec.of_type(cls) if o.exposed}


def from_text(option: Option, name: str, text: str) -> Any:
    """A form field's text as the option's value (its range and choices are the options type's to check)."""
    if "as_flag" in option.spec:
        return option.from_flag(yes_no(name, text))
    if option.kind == "bool":
        return yes_no(name, text)
    if option.kind == "tuple":
        return hotwords_field(name, text)
    if option.kind == "str":
        return text
    try:
        return int(text) if option.kind == "int" else float(text)
    except ValueError:
        raise ApiError(422, f"{name}={text!r}; expected {'an integer' if option.kind == 'int' else 'a number'}",
                       name) from None


def hotwords_field(name: str, value: Any) -> tuple[str, ...]:
    try:
        return parse_hotwords(value)
    except ValueError as err:
        raise ApiError(422, str(err), name) from None


def from_json(option: Option, name: str, value: Any) -> Any:
    """A stream message's JSON value as the option's value (yes/no fields must be JSON true/false)."""
    if ("as_flag" in option.spec or option.kind == "bool") and not isinstance(value, bool):
        raise ApiError(422, f"{name}={value!r} must be true or false", name)
    if "as_flag" in option.spec:
        return option.from_flag(value)
    return hotwords_field(name, value) if option.kind == "tuple" else value


def given_values(by_field: Mapping[str, Option], request: FormData | Mapping[str, Any]) -> dict[str, Any]:
    """{option name: value} of the fields (``by_field``: {field name: option}) a request gives: a form's non-empty
    fields (``FormData``: text) or a stream message's non-null ones (JSON; null is "not given", as an absent key)."""
    values = {}
    for name, option in by_field.items():
        if isinstance(request, FormData):
            text = text_field(request, name, "")
            if text:
                values[option.name] = from_text(option, name, text)
        elif request.get(name) is not None:
            values[option.name] = from_json(option, name, request[name])
    return values


def validated(build: Callable[..., Any], *args: Any, **values: Any) -> Any:
    """``build(*args, **values)`` (an options type, ``dataclasses.replace``); its TypeError or ValueError, which names
    the field and what it accepts ("beam_size=0 must be ..."), as ApiError (422, that field as the param)."""
    try:
        return build(*args, **values)
    except (TypeError, ValueError) as err:
        message = str(err)
        raise ApiError(422, message, (message.split("=")[0].split() or [None])[0]) from None


def request_options(base: sv.DecodingOptions, values: Mapping[str, Any], timestamps: bool) -> sv.DecodingOptions:
    """The server-wide decoding options with a request's values (its phrases join the server's) and timestamps."""
    values = {name: getattr(base, name) + tuple(value) if isinstance(getattr(base, name), tuple) else value
              for name, value in values.items()}
    return validated(dataclasses.replace, base, output_timestamp=timestamps, **values)


def form_options(form: FormData, base: sv.DecodingOptions, defaults: Mapping[str, Any], timestamps: bool,
                 spelling: Mapping[str, str] | None = None, **values: Any) -> sv.DecodingOptions:
    """A form's decoding fields (absent ones: this door's ``defaults``, then the server's) -> the options."""
    given = given_values(request_fields(type(base), "form", spelling), form)
    return request_options(base, {**defaults, **values, **given}, timestamps)


def stream_options(message: Mapping[str, Any], base: sv.DecodingOptions) -> sv.DecodingOptions:
    """A stream's first message's decoding fields (FunASR's ``itn`` and ``hotwords``, our ``language`` and the
    rest by their names) -> the options, with timestamps (a final's words carry their times)."""
    given = given_values(request_fields(type(base), "stream"), message)
    return request_options(base, {**STREAM_DEFAULTS, **given}, timestamps=True)


def accepted_fields(own: Sequence[str], cls: type, spelling: Mapping[str, str] | None = None) -> tuple[str, ...]:
    return (*own, *request_fields(cls, "form", spelling))


@dataclass(frozen=True)
class OpenAIRequest:
    """A validated OpenAI transcription request."""

    options: sv.DecodingOptions
    response_format: str
    granularities: tuple[str, ...]
    upload: UploadFile
    diarization: DiarizationOptions | None = None  # None: no speakers asked for
    subtitles: bool = False  # verbose_json with the srt and vtt of the same result (SUBTITLES_FIELD)


def switched_fields(cls: type, door: str) -> dict[str, Option]:
    """{a request's field name: its option} of a switched options type (DiarizationOptions): its switch
    ("diarize") and its fields (``door``: "form" or "stream")."""
    return {o.spelled(door): o for o in (optionspec.switch_of(cls), *optionspec.of_type(cls)) if o.exposed}


def switched_options(cls: type, values: Mapping[str, Any]) -> Any:
    """The options (``cls``) a request asked for with its switch or any of its fields (``values``: {name: value},
    the switch's among them), else None; ApiError (422, the field at fault) for a value the type refuses."""
    values = dict(values)
    switch_on = values.pop(optionspec.switch_of(cls).name, False)
    return validated(cls, **values) if switch_on or values else None


def requested_diarization(request: FormData | Mapping[str, Any],
                          cls: type = DiarizationOptions) -> DiarizationOptions | None:
    """A request's diarization fields (generated from ``cls``: ``diarize`` and the speaker counts; a form's text or
    a stream's first message's JSON, ``"diarize": true`` and counts as numbers) -> the options, or None when none
    of them is given."""
    door = "form" if isinstance(request, FormData) else "stream"
    return switched_options(cls, given_values(switched_fields(cls, door), request))


def parse_openai(form: FormData, model_id: str, base: sv.DecodingOptions = sv.DecodingOptions(),
                 diarization: type = DiarizationOptions) -> OpenAIRequest:
    """The fields of an OpenAI transcription request, validated; ``use_itn`` (default true) and the other decoding
    options, and the diarization options (``diarization``: their type), are ours."""
    check_fields(form, (*accepted_fields((*OPENAI_FIELDS, SUBTITLES_FIELD), type(base)),
                        *switched_fields(diarization, "form")))
    choice(form, "model", (model_id, *MODEL_ALIASES), model_id)
    choice(form, "stream", FALSE, "false")
    response_format = choice(form, "response_format", formats.RESPONSE_FORMATS, "json")
    granularities = tuple(g.strip() for g in form.getlist("timestamp_granularities[]") if isinstance(g, str))
    bad = [g for g in granularities if g not in formats.GRANULARITIES]
    if bad:
        raise ApiError(422, f"timestamp_granularities[]={bad}; expected any of {list(formats.GRANULARITIES)}",
                       "timestamp_granularities[]")
    if granularities and response_format != "verbose_json":
        raise ApiError(422, "timestamp_granularities[] needs response_format=verbose_json", "timestamp_granularities[]")
    subtitles = yes_no(SUBTITLES_FIELD, text_field(form, SUBTITLES_FIELD, "false"))
    if subtitles and response_format != "verbose_json":
        raise ApiError(422, f"{SUBTITLES_FIELD} needs response_format=verbose_json (or ask for srt or vtt alone)",
                       SUBTITLES_FIELD)
    prompt = text_field(form, "prompt", "")  # OpenAI's prompt: its words bias the decoding (hotwords)
    timestamps = formats.needs_timestamps(response_format, granularities) or subtitles  # cues split at words
    options = form_options(form, base, OPENAI_DEFAULTS, timestamps,
                           **({"hotwords": hotwords_field("prompt", prompt)} if prompt else {}))
    upload, *extra = uploads(form, "file")
    if extra:
        raise ApiError(422, f"send one file per request ({1 + len(extra)} were sent)", "file")
    return OpenAIRequest(options, response_format, granularities, upload, requested_diarization(form, diarization),
                         subtitles)


def parse_asr(form: FormData, base: sv.DecodingOptions = sv.DecodingOptions()
              ) -> tuple[sv.DecodingOptions, list[UploadFile], list[str]]:
    """The fields of an api.py request, validated: options, files and their keys (default: the file names)."""
    check_fields(form, accepted_fields(ASR_FIELDS, type(base), ASR_SPELLING))
    options = form_options(form, base, ASR_DEFAULTS, False, ASR_SPELLING)
    files = uploads(form, "files")
    keys_text = text_field(form, "keys", "")
    keys = [k.strip() for k in keys_text.split(",")] if keys_text else [f.filename or f"file{i}"
                                                                         for i, f in enumerate(files)]
    if len(keys) != len(files):
        raise ApiError(422, f"keys names {len(keys)} audios ({keys_text!r}) but {len(files)} files were sent", "keys")
    return options, files, keys
