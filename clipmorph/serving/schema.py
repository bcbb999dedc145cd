"""What the BentoML services exchange, and how engine errors become HTTP errors.

The model service exposes one batchable method over ``FrameItem`` lists (see
``clipmorph.serving.remote`` for the API side of that call).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import numpy as np
from pydantic import BaseModel

from clipmorph.errors import BadInput, ClipMorphError, MediaError, UnknownStyle, without_paths
from clipmorph.inference.options import StyleMix, StylizeOptions


class Picture(BaseModel):
    """An RGB picture between the services, as raw bytes plus shape (``FrameItem`` adds the options)."""

    pixels: bytes
    height: int
    width: int

    @classmethod
    def of(cls, rgb: np.ndarray) -> Picture:
        return cls(pixels=np.ascontiguousarray(rgb, dtype=np.uint8).tobytes(), height=rgb.shape[0], width=rgb.shape[1])

    def array(self) -> np.ndarray:
        if len(self.pixels) != self.height * self.width * 3:
            expected = self.height * self.width * 3
            raise BadInput(f"frame has {len(self.pixels)} bytes, expected {expected} for {self.width}x{self.height}")
        return np.frombuffer(self.pixels, dtype=np.uint8).reshape(self.height, self.width, 3)


class FrameItem(Picture):
    """One frame to stylize and its options (each item may use a different style).

    Pixels travel as raw bytes plus shape: BentoML pickles internal calls, so this costs no
    base64, and pydantic can describe it (it cannot describe an ndarray field).
    """

    kind: str = "image"  # or "video": a metric label
    style: str  # StyleMix text: "monet" or "monet=0.7,scream=0.3"
    strength: float = 1.0
    preserve_color: bool = False
    max_side: int | None = None
    keep_size: bool = True
    scale_marks: bool = True

    @classmethod
    def of(cls, pixels: np.ndarray, options: StylizeOptions, kind: str = "image") -> FrameItem:
        return cls(
            kind=kind,
            pixels=np.ascontiguousarray(pixels, dtype=np.uint8).tobytes(),
            height=pixels.shape[0],
            width=pixels.shape[1],
            style=str(options.style),
            strength=options.strength,
            preserve_color=options.preserve_color,
            max_side=options.max_side,
            keep_size=options.keep_size,
            scale_marks=options.scale_marks,
        )

    def frame(self) -> np.ndarray:
        return self.array()

    def options(self) -> StylizeOptions:
        return StylizeOptions(
            StyleMix.parse(self.style),
            self.strength,
            self.preserve_color,
            self.max_side,
            self.keep_size,
            self.scale_marks,
        )


@dataclass(frozen=True)
class ItemError:
    """The model's answer for one item it could not stylize: the batch's other items still get
    their frames, and only the request that sent this item fails (with its own reason)."""

    message: str
    reason: str

    @classmethod
    def of(cls, error: ClipMorphError) -> ItemError:
        return cls(str(error), getattr(error, "reason", "invalid"))

    @classmethod
    def received(cls, answer: Any) -> Any:
        """Give a model-service answer its type back: a non-batchable call returns an
        ``ItemError`` as a plain dict (BentoML's JSON), a batch returns it pickled."""
        if isinstance(answer, dict) and set(answer) == {"message", "reason"}:
            return cls(**answer)
        return answer

    def throw(self) -> None:
        if self.reason == "internal":
            raise RuntimeError(self.message)
        raise BadInput(self.message, self.reason)


REASON_STATUS = {
    "forbidden": HTTPStatus.FORBIDDEN,
    "protected": HTTPStatus.FORBIDDEN,
    "exists": HTTPStatus.CONFLICT,
    "unavailable": HTTPStatus.SERVICE_UNAVAILABLE,
    "busy": HTTPStatus.TOO_MANY_REQUESTS,  # a 4xx: BentoML shows its message (it hides every 5xx's)
    "unknown_style": HTTPStatus.NOT_FOUND,
}


def error_answer(error: ClipMorphError) -> tuple[int, str]:
    """The HTTP status and the client's message for an engine error (never a server path)."""
    message = without_paths(str(error))
    if isinstance(error, UnknownStyle):
        return HTTPStatus.NOT_FOUND, message
    if isinstance(error, MediaError):
        return HTTPStatus.UNPROCESSABLE_ENTITY, message
    return REASON_STATUS.get(getattr(error, "reason", ""), HTTPStatus.BAD_REQUEST), message


@contextmanager
def http_errors() -> Iterator[None]:
    """Engine errors as ``ErrorAnswer``: ``answers_errors`` turns them into the response.

    Not BentoML's exceptions: BentoML replaces the message of every 401, 403 and 5xx with a
    generic text, so "set CLIPMORPH_TRAIN_CONTENT" or "the admin token is needed" never
    reached the client."""
    try:
        yield
    except ClipMorphError as error:
        from clipmorph.serving import metrics

        status, message = error_answer(error)
        if status != HTTPStatus.UNPROCESSABLE_ENTITY:  # a media failure is ours, not a rejected input
            metrics.rejected(getattr(error, "reason", "invalid"))
        raise ErrorAnswer(status, message) from error


class ErrorAnswer(Exception):
    """An error the client must read: status and message, answered as ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = int(status), message

    def response(self):
        from starlette.responses import JSONResponse

        return JSONResponse({"error": self.message}, status_code=self.status)


def answers_errors(method: Callable) -> Callable:
    """Decorate a route method (below ``@bentoml.api``): an ``ErrorAnswer`` raised inside
    becomes its JSON response, whatever its status. BentoML passes a returned response through."""

    @functools.wraps(method)
    def route(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except ErrorAnswer as answer:
            from bentoml import Context

            for value in (*args, *kwargs.values()):
                if isinstance(value, Context):  # BentoML sets a ctx route's status from ctx, not the response
                    value.response.status_code = answer.status
            return answer.response()

    return route
