"""One Triton batch in, one answer per request out: the logic of both served models.

Triton's Python backend hands ``execute`` a list of requests that its dynamic batcher
gathered; each needs its own response, and a bad one must not take the others down. The
handlers here do that work on plain numpy (no Triton import), so it is tested without a
server: validate each request, run the good ones as one batch, and if that batch fails
anyway, run its requests one by one so that only the culprit gets an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from acfd_deploy.errors import AcfdError, one_line
from acfd_deploy.pipeline.detector import Detections, Detector
from acfd_deploy.pipeline.io import DEFAULT_MAX_PIXELS, decode_image
from acfd_deploy.pipeline.preprocess import DEFAULT_MIN_SIZE
from acfd_deploy.runtime.base import Runner

# rows of det_boxes / det_scores: the pipeline's top-k after NMS (PostprocessConfig.max_det)
from acfd_deploy.tritonrepo.pbtxt import MAX_DETECTIONS as MAX_DETECTIONS

T = TypeVar("T")
R = TypeVar("R")


class RequestError(AcfdError):
    """One request that cannot be answered; the message is what its client reads.
    ``internal`` marks a failure of ours (Triton code INTERNAL) rather than bad input
    (INVALID_ARG)."""

    def __init__(self, message: str, internal: bool = False) -> None:
        super().__init__(message)
        self.internal = internal


# how much of an exception's message a client reads
MESSAGE_LIMIT = 300


def _as_request_error(exc: BaseException) -> RequestError:
    if isinstance(exc, RequestError):
        return exc
    if isinstance(exc, AcfdError):
        return RequestError(one_line(exc, MESSAGE_LIMIT))
    return RequestError(f"internal error while running this request: {type(exc).__name__}: {one_line(exc, MESSAGE_LIMIT)}", internal=True)


def run_isolated(items: Sequence[T], run_batch: Callable[[list[T]], list[R]]) -> list[R | RequestError]:
    """``run_batch(items)`` once; if it raises, each item alone, so one failure stays one.

    ``run_batch`` returns one result per item, in order. Used for what validation cannot
    catch (a runner that fails on one request's data): the batch is rerun only then.
    """
    if not items:
        return []
    try:
        results = run_batch(list(items))
        if len(results) != len(items):
            raise RuntimeError(f"{len(results)} results for {len(items)} requests")
        return list(results)
    except Exception as exc:
        if len(items) == 1:
            return [_as_request_error(exc)]
    out: list[R | RequestError] = []
    for item in items:
        try:
            out.append(run_batch([item])[0])
        except Exception as exc:
            out.append(_as_request_error(exc))
    return out


def answer_by_shape(
    inputs: Sequence[np.ndarray | None],
    check: Callable[[np.ndarray | None], np.ndarray],
    run_batch: Callable[[list[tuple[int, np.ndarray]]], list[R]],
) -> list[R | RequestError]:
    """One answer per request: each input checked on its own (a bad one gets its error),
    requests of one shape run as one batch (:func:`run_isolated`, so a failure in a batch
    is pinned on the request that caused it)."""
    results: list[R | RequestError | None] = [None] * len(inputs)
    groups: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}
    for i, images in enumerate(inputs):
        try:
            checked = check(images)
        except RequestError as exc:
            results[i] = exc
            continue
        groups.setdefault(tuple(checked.shape[1:]), []).append((i, checked))
    for members in groups.values():
        answers: list[R | RequestError] = run_isolated(members, run_batch)
        for (i, _), answer in zip(members, answers):
            results[i] = answer
    return [r if r is not None else RequestError("no result (internal error)", internal=True) for r in results]


# ---------------------------------------------------------------- acfd_engine


def check_engine_input(images: np.ndarray | None, min_size: int = DEFAULT_MIN_SIZE) -> np.ndarray:
    """The raw network's input contract, per request: float32 ``[b, 3, H, W]``, each side
    at least ``min_size``, finite values. Triton has already checked dtype and rank
    against the config; this is for what it cannot check."""
    if images is None:
        raise RequestError("the request has no input 'images'")
    if images.dtype != np.float32:
        raise RequestError(f"input 'images' must be FP32, got {images.dtype}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise RequestError(f"input 'images' must be [batch, 3, H, W] RGB, got shape {list(images.shape)}")
    h, w = images.shape[2:]
    if h < min_size or w < min_size:
        raise RequestError(f"input 'images' is {h}x{w}; each side must be at least {min_size} px (the network's minimum)")
    if not np.isfinite(images).all():
        raise RequestError("input 'images' holds NaN or infinite values")
    return images


class EngineHandler:
    """``acfd_engine``: ``images [b, 3, H, W]`` per request -> ``(boxes [b, N, 4], scores [b, N])``.

    Requests of the same size are run as one tensor (Triton batches only equal shapes, but
    the check costs nothing)."""

    def __init__(self, runner: Runner, min_size: int = DEFAULT_MIN_SIZE) -> None:
        self.runner = runner
        self.min_size = min_size

    def __call__(self, inputs: Sequence[np.ndarray | None]) -> list[tuple[np.ndarray, np.ndarray] | RequestError]:
        return answer_by_shape(inputs, lambda images: check_engine_input(images, self.min_size), self._run)

    def _run(self, members: list[tuple[int, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
        arrays = [a for _, a in members]
        batch = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
        boxes, scores = self.runner.infer(batch)
        boxes, scores = np.asarray(boxes, np.float32), np.asarray(scores, np.float32)
        out, start = [], 0
        for a in arrays:
            out.append((boxes[start : start + len(a)], scores[start : start + len(a)]))
            start += len(a)
        return out


# ---------------------------------------------------------------- acfd (end to end)


def request_images(payload: np.ndarray | None, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[np.ndarray]:
    """A request's ``image`` tensor (``[b, 1]`` or ``[b]`` of encoded bytes) -> RGB arrays.

    Any image that cannot be read fails the whole request, with a message naming it."""
    if payload is None:
        raise RequestError("the request has no input 'image'")
    items = np.asarray(payload, dtype=object).reshape(-1)
    if items.size == 0:
        raise RequestError("input 'image' is empty")
    out = []
    for j, item in enumerate(items):
        label = "image" if items.size == 1 else f"image {j}"
        if isinstance(item, str):
            raise RequestError(f"{label}: expected the encoded bytes of an image file, got text")
        out.append(decode_image(item, max_pixels, label=label))
    return out


def pack_detections(dets: Sequence[Detections], conf: float = 0.0, rows: int = MAX_DETECTIONS) -> dict[str, np.ndarray]:
    """Triton outputs for ``b`` images: ``num_dets int32 [b, 1]``, ``det_boxes float32
    [b, rows, 4]`` (xyxy, original image pixels), ``det_scores float32 [b, rows]``; rows
    past ``num_dets`` are zero. Detections scoring below ``conf`` are left out."""
    n = len(dets)
    num = np.zeros((n, 1), np.int32)
    boxes = np.zeros((n, rows, 4), np.float32)
    scores = np.zeros((n, rows), np.float32)
    for i, d in enumerate(dets):
        keep = np.asarray(d.scores) >= conf
        b, s = np.asarray(d.boxes, np.float32)[keep][:rows], np.asarray(d.scores, np.float32)[keep][:rows]
        num[i, 0] = len(s)
        boxes[i, : len(s)] = b
        scores[i, : len(s)] = s
    return {"num_dets": num, "det_boxes": boxes, "det_scores": scores}


class EndToEndHandler:
    """``acfd``: encoded image bytes per request -> the detections acfd-detect writes.

    Every request's images are decoded first (a bad file fails only its request); the
    images of all good requests then go through one :class:`Detector` call, so Triton's
    batch is the runner's batch."""

    def __init__(self, detector: Detector, conf: float = 0.0, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        if detector.config.post.max_det > MAX_DETECTIONS:
            raise AcfdError(f"the served outputs hold {MAX_DETECTIONS} detections; max_det is {detector.config.post.max_det}")
        self.detector = detector
        self.conf = conf
        self.max_pixels = max_pixels

    def __call__(self, inputs: Sequence[np.ndarray | None]) -> list[dict[str, np.ndarray] | RequestError]:
        results: list[dict[str, np.ndarray] | RequestError | None] = [None] * len(inputs)
        decoded: list[tuple[int, list[np.ndarray]]] = []
        for i, payload in enumerate(inputs):
            try:
                decoded.append((i, request_images(payload, self.max_pixels)))
            except Exception as exc:  # AcfdError (ImageLoadError included) or ours
                results[i] = _as_request_error(exc)
        answers = run_isolated(decoded, self._run)
        for (i, _), answer in zip(decoded, answers):
            results[i] = answer
        return [r if r is not None else RequestError("no result (internal error)", internal=True) for r in results]

    def _run(self, members: list[tuple[int, list[np.ndarray]]]) -> list[dict[str, np.ndarray]]:
        images = [img for _, imgs in members for img in imgs]
        dets = self.detector.detect(images)
        out, start = [], 0
        for _, imgs in members:
            out.append(pack_detections(dets[start : start + len(imgs)], self.conf))
            start += len(imgs)
        return out


# ---------------------------------------------------------------- acfd_e2e (decoded pixels)


def check_pixels(images: np.ndarray | None, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An end-to-end engine's input, per request: uint8 ``[b, H, W, 3]`` RGB, not empty.
    Triton checks dtype and rank against the config first; this is what it cannot check
    (a zero-sized side) and the same words where a client skips Triton's checks."""
    if images is None:
        raise RequestError("the request has no input 'images'")
    if images.dtype != np.uint8:
        raise RequestError(f"input 'images' must be UINT8 decoded pixels, got {images.dtype}")
    if images.ndim != 4 or images.shape[3] != 3:
        raise RequestError(f"input 'images' must be [batch, H, W, 3] RGB, got shape {list(images.shape)}")
    if min(images.shape) < 1:
        raise RequestError(f"input 'images' is empty: shape {list(images.shape)}")
    h, w = images.shape[1:3]
    if h * w > max_pixels:
        raise RequestError(f"input 'images' is {h}x{w} = {h * w} pixels, more than the {max_pixels} allowed")
    return images


class PixelsHandler:
    """``acfd_e2e``: decoded ``uint8 [b, H, W, 3]`` per request -> the end-to-end engine's
    ``num_dets``, ``det_boxes``, ``det_scores`` as they are (the graph resized, merged the
    scales and suppressed). Requests of one size go through one ``infer_detections`` call."""

    def __init__(self, runner: Runner, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        if runner.outputs != "detections":
            raise AcfdError(f"{runner.name} is a raw network; acfd_e2e needs an end-to-end model (acfd-export --end2end)")
        self.runner = runner
        self.max_pixels = max_pixels

    def __call__(self, inputs: Sequence[np.ndarray | None]) -> list[dict[str, np.ndarray] | RequestError]:
        return answer_by_shape(inputs, lambda images: check_pixels(images, self.max_pixels), self._run)

    def _run(self, members: list[tuple[int, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        arrays = [a for _, a in members]
        num, boxes, scores = self.runner.infer_detections(arrays[0] if len(arrays) == 1 else np.concatenate(arrays))
        out, start = [], 0
        for a in arrays:
            end = start + len(a)
            out.append({"num_dets": num[start:end], "det_boxes": boxes[start:end], "det_scores": scores[start:end]})
            start = end
        return out
