"""Tasks declared by users in a TOML file (``[[task]]`` tables).

Three layouts are understood: an ``npz`` in the MedMNIST layout, a ``folder`` tree
``root/<split>/<class>/<image>`` and a ``csv`` with columns ``path,label,split``.
Parsing checks every field and resolves paths, so the resulting :class:`TaskSpec`
is self-contained (it is stored with runs as JSON); pixels are read only by
:func:`load_user_task`.
"""

from __future__ import annotations

import csv
import re
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from medtui.data.base import SPLITS, Split, TaskData, TaskSpec, validate_split
from medtui.data.medmnist import read_npz
from medtui.errors import DataError, UsageError

FORMATS: tuple[str, ...] = ("npz", "folder", "csv")
IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
DEFAULT_TEMPLATES: tuple[str, ...] = ("a medical image showing {}.", "a photo of {}.")
DEFAULT_IMAGE_SIZE = 64
DEFAULT_CHANNELS = 3
_NAME = re.compile(r"[a-z0-9._-]+")
_KEYS = {"name", "domain", "format", "path", "classes", "templates", "image_size", "channels", "description"}


def _check_template(t: Any) -> bool:
    """One ``{}`` and nothing else ``str.format`` would trip over (``{0}``, a lone ``{``)."""
    if not isinstance(t, str) or t.count("{}") != 1:
        return False
    try:
        t.format("x")
    except (IndexError, KeyError, ValueError):
        return False
    return True


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v.strip() for v in value)


def _npy_shape(zf: zipfile.ZipFile, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one array of an npz, read from its .npy header only (no pixels decompressed)."""
    with zf.open(f"{key}.npy") as fh:
        version = np.lib.format.read_magic(fh)
        npy = np.lib.format
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, _, dtype = read_header(fh)
    return tuple(shape), dtype


def _npz_geometry(path: Path, where: str) -> tuple[int, int, dict[str, int]]:
    """(image_size, channels, samples per split) of an npz, from the .npy headers only."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = {n.removesuffix(".npy") for n in zf.namelist()}
            # the key check needs only the archive's listing: report every missing key before any run starts
            missing = [k for k in ("train_images", "train_labels", "test_images", "test_labels") if k not in names]
            if missing:
                raise DataError(f"{where}: {path} lacks key(s) {', '.join(missing)} (has: {', '.join(sorted(names))})")
            shape, dtype = _npy_shape(zf, "train_images")
            counts = {k: int(_npy_shape(zf, f"{k}_labels")[0][0]) for k in SPLITS if f"{k}_labels" in names and f"{k}_images" in names}
    except KeyError:
        raise DataError(f"{where}: {path} lacks key train_images") from None
    except (zipfile.BadZipFile, ValueError, OSError, IndexError) as exc:
        raise DataError(f"{where}: {path} is not a readable .npz archive ({type(exc).__name__})") from None
    if dtype != np.uint8:
        raise DataError(f"{where}: train_images in {path} must be uint8, got {dtype}")
    if len(shape) == 3:
        shape = (*shape, 1)
    if len(shape) != 4 or shape[1] != shape[2] or shape[3] not in (1, 3):
        raise DataError(f"{where}: train_images in {path} must be N x S x S [x 1|3] (square), got {shape}")
    return int(shape[1]), int(shape[3]), counts


def _class_dirs(split_dir: Path) -> list[str]:
    """Visible sub-folders of one split folder (hidden ones such as .ipynb_checkpoints are skipped)."""
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _check_folder(root: Path, classes: tuple[str, ...], where: str) -> None:
    """Every split folder must hold exactly one sub-folder per class; train and test must exist."""
    if not root.is_dir():
        raise DataError(f"{where}: {root} is not a folder")
    for entry in root.iterdir():
        if entry.is_dir() and not entry.name.startswith(".") and entry.name not in SPLITS:
            raise DataError(f"{where}: unexpected folder {entry} (splits are train, val, test)")
    for split in SPLITS:
        split_dir = root / split
        if not split_dir.is_dir():
            if split == "val":
                continue
            raise DataError(f"{where}: missing split folder {split_dir}")
        found = set(_class_dirs(split_dir))
        extra = sorted(found - set(classes))
        if extra:
            raise DataError(f"{where}: unexpected class folder {split_dir / extra[0]} (classes: {', '.join(classes)})")
        absent = [c for c in classes if c not in found]
        if absent:
            raise DataError(f"{where}: missing class folder {split_dir / absent[0]}")


def parse_task_table(table: dict, base_dir: Path, origin: str) -> TaskSpec:
    """Validate one ``[[task]]`` table and build its spec; paths are resolved against ``base_dir``.

    Field problems raise :class:`UsageError`, missing or malformed data :class:`DataError`,
    each a one-liner naming ``origin``, the task and the field.
    """
    if not isinstance(table, dict):
        raise UsageError(f"{origin}: each [[task]] entry must be a table")
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(f"{origin}: every task needs a 'name' made of a-z, 0-9, '.', '_', '-' (got {name!r})")
    where = f"{origin}: task {name!r}"

    def bad(field: str, must: str) -> UsageError:
        return UsageError(f"{where}: {field!r} must be {must}")

    unknown = sorted(set(table) - _KEYS)
    if unknown:
        known = ", ".join(sorted(_KEYS))
        raise UsageError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))} (known: {known})")
    domain = table.get("domain")
    if not isinstance(domain, str) or not domain.strip():
        raise bad("domain", "a non-empty string, e.g. \"chest x-ray\"")
    raw_path = table.get("path")
    if not isinstance(raw_path, str) or not raw_path.strip():
        raise bad("path", "a non-empty string (relative to the task file's folder)")
    path = (Path(base_dir) / Path(raw_path).expanduser()).resolve()
    # Without 'format' the path decides: .npz and .csv files, anything else a folder tree.
    fmt = table.get("format", {".npz": "npz", ".csv": "csv"}.get(path.suffix.lower(), "folder"))
    if fmt not in FORMATS:
        raise bad("format", f"one of {', '.join(FORMATS)} (got {fmt!r})")
    if not path.exists():
        raise DataError(f"{where}: 'path' {path} does not exist")
    if fmt != "folder" and not path.is_file():
        raise DataError(f"{where}: 'path' {path} must be a .{fmt} file")

    classes_raw = table.get("classes")
    if classes_raw is None and fmt == "folder":
        if not (path / "train").is_dir():
            raise DataError(f"{where}: missing split folder {path / 'train'}")
        classes_raw = _class_dirs(path / "train")
        if not classes_raw:
            raise DataError(f"{where}: {path / 'train'} has no class folders")
    if not _str_list(classes_raw):
        raise bad("classes", "a non-empty list of strings")
    if len(set(classes_raw)) != len(classes_raw):
        raise bad("classes", "a list of distinct names")
    classes = tuple(classes_raw)

    templates_raw = table.get("templates", list(DEFAULT_TEMPLATES))
    if not _str_list(templates_raw):
        raise bad("templates", "a non-empty list of strings")
    for t in templates_raw:
        if not _check_template(t):
            raise bad("templates", f"strings with exactly one {{}} and no other braces (got {t!r})")

    size, channels = table.get("image_size"), table.get("channels")
    for field, value in (("image_size", size), ("channels", channels)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise bad(field, f"an integer (got {value!r})")
    if channels is not None and channels not in (1, 3):
        raise bad("channels", f"1 (grayscale) or 3 (RGB) (got {channels})")
    if size is not None and not 8 <= size <= 1024:
        raise bad("image_size", f"between 8 and 1024 pixels (got {size})")
    options: dict[str, Any] = {"path": str(path)}
    if fmt == "npz":
        native_size, native_channels, counts = _npz_geometry(path, where)
        # split sizes from the headers: listings show real counts without loading pixels
        options.update({f"n_{k}": n for k, n in counts.items()})
        if "val" not in counts:
            options["n_val"] = 0
            options["note"] = f"task {name!r} has no validation split (no val_images/val_labels in {path.name})"
        if size is not None and size != native_size:
            raise bad("image_size", f"left out for npz tasks (the file's images are {native_size} px, not {size})")
        if channels is not None and channels != native_channels:
            raise bad("channels", f"left out for npz tasks (the file's images have {native_channels}, not {channels})")
        size, channels = native_size, native_channels
    elif fmt == "folder":
        _check_folder(path, classes, where)
    description = table.get("description", "")
    if not isinstance(description, str):
        raise bad("description", "a string")
    return TaskSpec(
        name=name,
        domain=domain.strip(),
        classes=classes,
        templates=tuple(templates_raw),
        source=fmt,
        image_size=size if size is not None else DEFAULT_IMAGE_SIZE,
        channels=channels if channels is not None else DEFAULT_CHANNELS,
        description=description,
        options=options,
    )


def load_task_file(path: Path) -> list[TaskSpec]:
    """Parse a TOML task file into specs; :class:`UsageError` for a missing or malformed file."""
    path = Path(path)
    origin = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{origin}: task file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{origin}: cannot read task file ({type(exc).__name__})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{origin}: invalid TOML: {' '.join(str(exc).split())}") from None
    extra = sorted(set(doc) - {"task"})
    if extra:
        listed = ", ".join(map(repr, extra))
        raise UsageError(f"{origin}: unknown top-level key(s) {listed}; declare tasks as [[task]] tables")
    tables = doc.get("task", [])
    if not isinstance(tables, list):
        raise UsageError(f"{origin}: 'task' must be an array of tables, written [[task]]")
    if not tables:
        raise UsageError(f"{origin}: no tasks declared; add at least one [[task]] table")
    specs: list[TaskSpec] = []
    for table in tables:
        spec = parse_task_table(table, path.parent, origin)
        if any(s.name == spec.name for s in specs):
            raise UsageError(f"{origin}: task {spec.name!r} is declared twice")
        specs.append(spec)
    return specs


def spec_to_table(spec: TaskSpec) -> dict:
    """The ``[[task]]`` table of a user spec (inverse of :func:`parse_task_table`, absolute path)."""
    table: dict[str, Any] = {
        "name": spec.name,
        "domain": spec.domain,
        "format": spec.source,
        "path": spec.options["path"],
        "classes": list(spec.classes),
        "templates": list(spec.templates),
        "image_size": spec.image_size,
        "channels": spec.channels,
    }
    if spec.description:
        table["description"] = spec.description
    return table


def _decode(file: Path, spec: TaskSpec) -> np.ndarray:
    """Decode one image file to ``size x size x channels`` uint8."""
    try:
        with Image.open(file) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                # 16-bit and float scans (x-ray, CT) use a fraction of their range; Pillow's
                # convert("L") would clip them to white, so stretch each image to 0..255.
                a = np.asarray(im, dtype=np.float64)
                lo, hi = float(a.min()), float(a.max())
                a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
                im = Image.fromarray(np.round(a).astype(np.uint8))
            im = im.convert("L" if spec.channels == 1 else "RGB")
            if im.size != (spec.image_size, spec.image_size):
                # Pillow's bilinear filter widens its support when shrinking, i.e. it antialiases.
                im = im.resize((spec.image_size, spec.image_size), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"task {spec.name!r}: cannot decode image {file} ({type(exc).__name__})") from None
    return arr[..., None] if arr.ndim == 2 else arr


def _build(spec: TaskSpec, items: dict[str, list[tuple[Path, int]]]) -> TaskData:
    """Decode each listed image once into per-split arrays and validate them."""
    for split in ("train", "test"):
        if not items.get(split):
            raise DataError(f"task {spec.name!r}: no {split} images in {spec.options['path']}")
    splits: dict[str, Split] = {}
    for split in SPLITS:
        entries = items.get(split)
        if not entries:
            continue
        images = np.empty((len(entries), spec.image_size, spec.image_size, spec.channels), dtype=np.uint8)
        for i, (file, _) in enumerate(entries):
            images[i] = _decode(file, spec)
        labels = np.array([label for _, label in entries], dtype=np.int64)
        splits[split] = validate_split(spec.name, split, images, labels, spec.n_classes)
    return TaskData(spec=spec, splits=splits)


def _folder_items(spec: TaskSpec, root: Path) -> dict[str, list[tuple[Path, int]]]:
    _check_folder(root, spec.classes, f"task {spec.name!r}")
    items: dict[str, list[tuple[Path, int]]] = {}
    for split in SPLITS:
        if not (root / split).is_dir():
            continue
        items[split] = [
            (f, label)
            for label, cls in enumerate(spec.classes)
            for f in sorted((root / split / cls).iterdir())
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
        ]
    return items


def _csv_items(spec: TaskSpec, file: Path) -> dict[str, list[tuple[Path, int]]]:
    index = {c: i for i, c in enumerate(spec.classes)}
    items: dict[str, list[tuple[Path, int]]] = {s: [] for s in SPLITS}
    try:
        with open(file, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in ("path", "label", "split") if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(
                    f"task {spec.name!r}: {file} lacks column(s) {', '.join(missing)} (header must be path,label,split)"
                )
            for row in reader:
                line = reader.line_num
                rel, label, split = ((row[k] or "").strip() for k in ("path", "label", "split"))
                if split not in SPLITS:
                    raise DataError(f"task {spec.name!r}: {file} line {line}: split {split!r} is not train/val/test")
                # A class name wins over an index, so classes named "0".."4" keep their own order.
                if label in index:
                    y = index[label]
                elif label.lstrip("-").isdigit() and 0 <= int(label) < len(spec.classes):
                    y = int(label)
                else:
                    raise DataError(f"task {spec.name!r}: {file} line {line}: unknown label {label!r} "
                                    f"(use a class name or an index 0..{len(spec.classes) - 1})")
                image = (file.parent / rel).resolve()
                if not rel or not image.is_file():
                    raise DataError(f"task {spec.name!r}: {file} line {line}: image {image} not found")
                items[split].append((image, y))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"task {spec.name!r}: cannot read {file} ({type(exc).__name__})") from None
    return items


def load_user_task(spec: TaskSpec) -> TaskData:
    """Load a user task's pixels (npz arrays, or every image decoded once, resized and converted)."""
    path = Path(spec.options["path"])
    if not path.exists():
        raise DataError(f"task {spec.name!r}: {path} does not exist (moved since the task was declared?)")
    if spec.source == "npz":
        splits = read_npz(path, spec.name, spec.n_classes, require_val=False)
        for split, s in splits.items():
            if s.images.shape[1:] != (spec.image_size, spec.image_size, spec.channels):
                raise DataError(f"task {spec.name!r}: {split} images in {path} have shape {s.images.shape[1:]}, "
                                f"expected {(spec.image_size, spec.image_size, spec.channels)}")
        return TaskData(spec=spec, splits=splits)
    if spec.source == "folder":
        return _build(spec, _folder_items(spec, path))
    if spec.source == "csv":
        return _build(spec, _csv_items(spec, path))
    raise DataError(f"task {spec.name!r}: source {spec.source!r} is not a user task format ({', '.join(FORMATS)})")


__all__ = [
    "DEFAULT_TEMPLATES", "FORMATS", "IMAGE_SUFFIXES", "load_task_file", "load_user_task",
    "parse_task_table", "spec_to_table",
]
