"""YOLO (darknet / ultralytics) box labels, read as :class:`BoxAnnotation`.

One text file per image, one box a line: ``class x_centre y_centre width
height``, all but the class normalised to 0..1 by the image's width and
height. Class names come from ``classes.txt`` / ``*.names`` (one a line) or a
``data.yaml`` (``names:`` as a list or an ``{index: name}`` mapping, block
or flow style; read here without a YAML library). Boxes become pixel
corners ``x0 y0 x1 y1`` (clipped to the image), as :func:`read_voc_xml`
gives them. An image without a label file is *not annotated* (``None``); an
empty label file means an image with no boxes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from eyescan.data.readers import BoxAnnotation
from eyescan.errors import DataError

#: Files holding the class names, looked for in this order by :func:`find_yolo_names`.
NAME_FILES = ("classes.txt", "data.yaml", "data.yml", "obj.names")


def find_yolo_names(folder: Path) -> Path | None:
    """The class-names file in ``folder`` (:data:`NAME_FILES`, then any ``*.names``)."""
    folder = Path(folder)
    for name in NAME_FILES:
        if (folder / name).is_file():
            return folder / name
    return next(iter(sorted(folder.glob("*.names"))), None)


def read_yolo_names(path: Path) -> list[str]:
    """Class names by index from ``classes.txt``/``*.names`` or ``data.yaml``."""
    path = Path(path)
    text = _text(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        names = _yaml_names(path, text.splitlines())
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise DataError(f"{path}: no class names")
    return names


def read_yolo_boxes(
    path: Path,
    width: int,
    height: int,
    names: Sequence[str] | None = None,
    filename: str = "",
) -> BoxAnnotation:
    """One YOLO label file as boxes in pixels of a ``width`` × ``height`` image.

    Labels are ``names[class]`` (the class number as text without ``names``).
    A malformed line stops with a one-line :class:`DataError` naming the file
    and the line.
    """
    path = Path(path)
    annotation = BoxAnnotation(filename or path.with_suffix("").name, int(width), int(height))
    for number, line in enumerate(_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{number}"
        if len(fields) != 5:
            raise DataError(
                f"{where}: expected 'class x_centre y_centre width height', "
                f"got {len(fields)} field{'s' if len(fields) != 1 else ''}"
            )
        try:
            cls = int(fields[0])
            xc, yc, w, h = (float(v) for v in fields[1:])
        except ValueError:
            raise DataError(
                f"{where}: {line.strip()!r} is not an integer class and 4 numbers"
            ) from None
        if cls < 0 or (names is not None and cls >= len(names)):
            known = f"0-{len(names) - 1}" if names else "none"
            raise DataError(f"{where}: class {cls} has no name (classes {known})")
        if not all(-1e-6 <= v <= 1 + 1e-6 for v in (xc, yc, w, h)):
            raise DataError(f"{where}: coordinates must be normalised to 0..1, got {line.strip()}")
        if w <= 0 or h <= 0:
            raise DataError(f"{where}: box width and height must be > 0")
        annotation.labels.append(names[cls] if names is not None else str(cls))
        annotation.boxes.append(
            (
                max(0.0, (xc - w / 2) * width),
                max(0.0, (yc - h / 2) * height),
                min(float(width), (xc + w / 2) * width),
                min(float(height), (yc + h / 2) * height),
            )
        )
    return annotation


def yolo_annotation(
    image: Path, label: Path, names: Sequence[str] | None = None
) -> BoxAnnotation | None:
    """The boxes of ``image`` from its label file ``label``, or ``None`` where there is
    no label file (not annotated; an empty file is an image without boxes)."""
    from eyescan.imaging.imageio import image_size

    if not Path(label).is_file():
        return None
    width, height = image_size(image)
    return read_yolo_boxes(label, width, height, names, Path(image).name)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None


def _yaml_names(path: Path, lines: list[str]) -> list[str]:
    """``names:`` of a YAML file: ``[a, b]``, ``{0: a}``, or a block list / mapping."""
    top = [k for k, line in enumerate(lines) if re.match(r"names\s*:", line)]
    if not top:
        raise DataError(f"{path}: no top-level 'names:' (a list or mapping of class names)")
    i = top[0]
    rest = _uncomment(lines[i].partition(":")[2])
    if rest.startswith(("[", "{")):
        closing = "]" if rest[0] == "[" else "}"
        flow = rest
        for more in lines[i + 1 :]:
            if closing in _unquoted(flow):
                break
            flow += " " + _uncomment(more)
        body = flow.strip()
        if not body.endswith(closing):
            raise DataError(f"{path}: 'names:' {rest[0]}…{closing} is not closed")
        items = [_scalar(p) for p in _split_flow(body[1:-1]) if p.strip()]
        return items if closing == "]" else _indexed(path, [_pair(path, p) for p in items])
    if rest:
        raise DataError(f"{path}: 'names:' must be a list or a mapping, got {rest!r}")
    block = []
    for line in lines[i + 1 :]:
        text = _uncomment(line)
        if not text:
            continue
        if not line[:1].isspace() and not text.startswith("-"):
            break  # the next top-level key
        block.append(text)
    if all(item.startswith("-") for item in block):
        return [_scalar(item[1:]) for item in block]
    return _indexed(path, [_pair(path, item) for item in block])


def _pair(path: Path, text: str) -> tuple[str, str]:
    key, sep, value = text.partition(":")
    if not sep:
        raise DataError(f"{path}: 'names:' entry {text!r} is not 'index: name'")
    return _scalar(key), _scalar(value)


def _indexed(path: Path, pairs: list[tuple[str, str]]) -> list[str]:
    """Names of an ``{index: name}`` mapping, in index order; indices 0..n-1."""
    try:
        by_index = {int(k): v for k, v in pairs}
    except ValueError:
        raise DataError(f"{path}: 'names:' keys must be class indices 0, 1, …") from None
    if sorted(by_index) != list(range(len(by_index))):
        raise DataError(f"{path}: 'names:' indices must be 0..{len(by_index) - 1} without gaps")
    return [by_index[k] for k in range(len(by_index))]


def _unquoted(text: str) -> str:
    """``text`` with quoted parts blanked (to find brackets, commas and comments)."""
    out, quote = [], ""
    for ch in text:
        if quote:
            out.append(" ")
            quote = "" if ch == quote else quote
        else:
            quote = ch if ch in "'\"" else ""
            out.append(" " if quote else ch)
    return "".join(out)


def _uncomment(text: str) -> str:
    plain = _unquoted(text)
    cut = plain.find(" #") if not plain.lstrip().startswith("#") else plain.find("#")
    return (text[:cut] if cut >= 0 else text).strip()


def _split_flow(text: str) -> list[str]:
    plain, parts, start = _unquoted(text), [], 0
    for k, ch in enumerate(plain):
        if ch == ",":
            parts.append(text[start:k])
            start = k + 1
    return [*parts, text[start:]]


def _scalar(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text
