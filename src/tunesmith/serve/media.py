"""Images in API requests: OpenAI-style ``image_url`` content parts for a vision-language model.

A part is ``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``. data: URLs
always work; a local path (``file:///...`` or a plain path) only when the server was started with a
media folder (``media_dir``), and only inside it; the server never fetches http(s) URLs. Every
refusal is a 400 naming the message and part.
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

MAX_IMAGES = 16


class ImagePartError(ValueError):
    """A content part that cannot become an image (the API answers 400 with this message)."""


def _open(data: bytes | Path, where: str) -> Any:
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
        img.load()
        return img.convert("RGB")
    except Exception as exc:  # PIL raises many types for bad bytes
        raise ImagePartError(f"{where}: not a readable image ({type(exc).__name__})") from None


def _url(part: dict[str, Any], where: str) -> str:
    value = part.get("image_url")
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str) or not url:
        raise ImagePartError(f"{where}: image_url needs a 'url' (a data: URL such as data:image/png;base64,...)")
    return url


def load_image_part(part: dict[str, Any], where: str, media_dir: str | None) -> Any:
    """The PIL image an ``image_url`` part stands for."""
    url = _url(part, where)
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        if ";base64" not in header:
            raise ImagePartError(f"{where}: only base64 data: URLs are accepted (data:image/png;base64,...)")
        try:
            return _open(base64.b64decode(payload, validate=True), where)
        except binascii.Error:
            raise ImagePartError(f"{where}: the data: URL is not valid base64") from None
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        raise ImagePartError(f"{where}: the server does not fetch URLs; send the image as a data: URL")
    if not media_dir:
        raise ImagePartError(f"{where}: local paths are accepted only when the server is started with a media "
                             "folder (tunesmith serve media_dir=FOLDER); send a data: URL")
    root = Path(media_dir).resolve()
    path = Path(unquote(parsed.path) if parsed.scheme == "file" else url)
    path = (path if path.is_absolute() else root / path).resolve()
    if not path.is_relative_to(root):
        raise ImagePartError(f"{where}: {url!r} is outside the server's media folder")
    if not path.is_file():
        raise ImagePartError(f"{where}: {url!r} not found in the server's media folder")
    return _open(path, where)


def is_image_part(part: dict[str, Any]) -> bool:
    return part.get("type") in ("image_url", "input_image")
