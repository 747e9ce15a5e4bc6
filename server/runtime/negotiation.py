"""Which content coding a response goes out in (Accept-Encoding), and the responses that vary by it.

The runtime's files are sent from the copies built at install time (`precompressed`); the loader and the
static scripts, a few KB each, are gzip-compressed here, once per distinct body. Every such response carries
`Vary: Accept-Encoding` and a strong ETag of its own representation, and answers a matching If-None-Match
with 304. The API's JSON answers of a KB or more (a batch's per-record results: 140 KB for 1,000 records)
are gzip-compressed as they go (`compress_answer`, level 5: about a millisecond for such a batch).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable
from functools import lru_cache

from flask import Response, request, send_file

from lsmigrate.server.runtime.precompressed import Copy

#: Codings in the order lsmigrate prefers them among those a client accepts equally.
PREFERENCE = ("br", "gzip", "identity")
#: RFC 9110 §8.4.1.3: a recipient takes x-gzip for gzip.
_ALIASES = {"x-gzip": "gzip"}
#: The weight of identity when the header neither names it nor has "*": acceptable, chosen last.
_IMPLIED_IDENTITY = 0.0001
#: Bodies shorter than this are sent as they are: gzip's 20 bytes of framing would eat the gain.
_MIN_GZIP = 1024
#: How long what a versioned URL names may be cached: for good.
YEAR = 365 * 24 * 3600


def _weights(header: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for element in header.split(","):
        coding, *parameters = (part.strip() for part in element.split(";"))
        if not coding:
            continue
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    weight = 0.0  # a q that is no number accepts nothing rather than everything
        coding = coding.lower()
        coding = _ALIASES.get(coding, coding)
        weights[coding] = max(weight, weights.get(coding, 0.0))
    return weights


def choose_coding(header: str | None, available: Iterable[str]) -> str:
    """The coding to send among `available`: the one the Accept-Encoding `header` weighs most (q), br before
    gzip before identity on a tie; identity when there is no header or it accepts none of them (RFC 9110
    §12.5.3 lets a server send identity then rather than a 406)."""
    if header is None:
        return "identity"
    weights = _weights(header)
    implied = weights.get("*", _IMPLIED_IDENTITY)

    def weight(coding: str) -> float:
        if coding in weights:
            return weights[coding]
        return implied if coding == "identity" else weights.get("*", 0.0)

    accepted = [coding for coding in PREFERENCE if coding in set(available) and weight(coding) > 0]
    if not accepted:
        return "identity"
    return max(accepted, key=lambda coding: (weight(coding), -PREFERENCE.index(coding)))


def send_copy(copies: dict[str, Copy], filename: str, mimetype: str | None) -> Response:
    """One of a runtime file's copies, chosen by Accept-Encoding, cached for good (its URL names the version)."""
    copy = copies[choose_coding(request.headers.get("Accept-Encoding"), copies)]
    # The name is the file's own (so the type is guessed from it), not the copy's FILE.br.
    response = send_file(
        copy.path, mimetype=mimetype, download_name=filename, conditional=True, etag=copy.etag, max_age=YEAR
    )
    if copy.coding != "identity":
        response.headers["Content-Encoding"] = copy.coding
    response.vary.add("Accept-Encoding")
    response.cache_control.immutable = True
    return response


@lru_cache(maxsize=64)
def _encoded(body: bytes, coding: str) -> tuple[bytes, str]:
    """`body` in `coding` (gzip 9, or brotli 11: made once per body and process), and its ETag."""
    if coding == "br":
        import brotli

        data = brotli.compress(body, quality=11)
    else:
        data = gzip.compress(body, compresslevel=9, mtime=0)
    return data, hashlib.sha256(data).hexdigest()[:32]


def _codings() -> tuple[str, ...]:
    try:
        import brotli  # noqa: F401
    except ImportError:
        return ("gzip", "identity")
    return ("br", "gzip", "identity")


def encoded_response(body: bytes, mimetype: str, cache_control: str) -> Response:
    """`body` as a response, brotli- or gzip-compressed (made once) when the request accepts it, with a strong
    ETag per representation; 304 when If-None-Match names it."""
    coding = "identity"
    if len(body) >= _MIN_GZIP:
        coding = choose_coding(request.headers.get("Accept-Encoding"), _codings())
    if coding != "identity":
        data, etag = _encoded(body, coding)
        response = Response(data, mimetype=mimetype)
        response.headers["Content-Encoding"] = coding
    else:
        response = Response(body, mimetype=mimetype)
        etag = hashlib.sha256(body).hexdigest()[:32]
    response.headers["Cache-Control"] = cache_control
    response.vary.add("Accept-Encoding")
    response.set_etag(etag)
    response.make_conditional(request)  # to 304 in place when If-None-Match names the etag
    return response


#: gzip's level for the API's answers: made once each, so fast (level 5: a batch's 140 KB in about a millisecond).
_ANSWER_LEVEL = 5


def compress_answer(response: Response) -> Response:
    """A JSON answer of _MIN_GZIP bytes or more, gzip-compressed when the request accepts it (Vary says so)."""
    if response.mimetype != "application/json" or response.direct_passthrough or "Content-Encoding" in response.headers:
        return response
    body = response.get_data()
    if len(body) < _MIN_GZIP:
        return response
    response.vary.add("Accept-Encoding")
    if choose_coding(request.headers.get("Accept-Encoding"), ("gzip", "identity")) != "gzip":
        return response
    response.set_data(gzip.compress(body, compresslevel=_ANSWER_LEVEL, mtime=0))
    response.headers["Content-Encoding"] = "gzip"
    return response
