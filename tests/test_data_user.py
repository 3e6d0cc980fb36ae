"""Tests of medtui.data.user: TOML task files and the npz / folder / csv layouts.

Every dataset is generated in tmp_path from tiny arrays whose pixel values encode the
class, so label assignment can be checked from the decoded pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medtui.data.user import (
    DEFAULT_TEMPLATES,
    load_task_file,
    load_user_task,
    parse_task_table,
    spec_to_table,
)
from medtui.errors import DataError, UsageError

CLASSES = ["normal", "pneumonia"]
# Class c is drawn with grey level LEVEL[c]; flat images keep that level through resizing.
LEVEL = (40, 200)


def _png(path: Path, level: int, size: tuple[int, int] = (12, 10), mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((size[1], size[0]), level, np.uint8)
    Image.fromarray(arr).convert(mode).save(path)


def _folder(root: Path, counts: dict[str, tuple[int, int]], classes: list[str] = CLASSES) -> None:
    for split, per_class in counts.items():
        for c, n in enumerate(per_class):
            (root / split / classes[c]).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                _png(root / split / classes[c] / f"img{i}.png", LEVEL[c])


def _toml(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg
    return msg


def _check_levels(data, split: str) -> None:  # type: ignore[no-untyped-def]
    s = data.splits[split]
    got = s.images.reshape(len(s), -1).mean(axis=1)
    assert np.allclose(got, np.array(LEVEL)[s.labels], atol=1)


def test_folder_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _folder(tmp_path / "data" / "cxr", {"train": (3, 2), "test": (1, 2)})
    (tmp_path / "data" / "cxr" / "train" / "normal" / "notes.txt").write_text("ignored")
    cfg = _toml(tmp_path / "tasks.toml", """
[[task]]
name = "my-cxr"
domain = "chest x-ray"
format = "folder"
path = "data/cxr"
templates = ["a chest x-ray showing {}."]
image_size = 16
channels = 1
""")
    monkeypatch.chdir(tmp_path / "data")  # paths resolve against the TOML's folder, not the cwd
    (spec,) = load_task_file(cfg)
    assert spec.classes == ("normal", "pneumonia")  # sorted sub-folders of train
    assert spec.source == "folder" and spec.options["path"] == str((tmp_path / "data" / "cxr").resolve())
    data = load_user_task(spec)
    assert set(data.splits) == {"train", "test"}
    assert data.splits["train"].images.shape == (5, 16, 16, 1)
    assert data.splits["train"].images.dtype == np.uint8 and data.splits["train"].labels.dtype == np.int64
    assert data.counts() == {"train": [3, 2], "test": [1, 2]}
    _check_levels(data, "train")
    _check_levels(data, "test")


def test_folder_classes_order_given(tmp_path: Path) -> None:
    _folder(tmp_path / "cxr", {"train": (2, 1), "val": (1, 1), "test": (1, 1)})
    spec = parse_task_table({"name": "cxr", "domain": "chest x-ray", "path": "cxr",
                             "classes": ["pneumonia", "normal"]}, tmp_path, "t.toml")
    assert spec.source == "folder" and spec.image_size == 64 and spec.channels == 3
    assert spec.templates == DEFAULT_TEMPLATES
    data = load_user_task(spec)
    assert data.splits["val"].images.shape == (2, 64, 64, 3)
    assert data.counts()["train"] == [1, 2]  # label 0 is now "pneumonia"
    s = data.splits["train"]
    assert np.all(s.images[s.labels == 0] > 150) and np.all(s.images[s.labels == 1] < 60)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda r: (r / "train" / "effusion").mkdir(), "unexpected class folder"),
        (lambda r: (r / "test" / "pneumonia").rename(r / "test" / "other"), "unexpected class folder"),
        (lambda r: (r / "validation").mkdir(), "unexpected folder"),
    ],
)
def test_folder_bad_class_folder(tmp_path: Path, make, needle: str) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "cxr"
    _folder(root, {"train": (1, 1), "test": (1, 1)})
    make(root)
    with pytest.raises(DataError) as exc:
        parse_task_table({"name": "cxr", "domain": "x", "path": str(root), "classes": CLASSES}, tmp_path, "t.toml")
    assert needle in _one_line(exc) and "t.toml: task 'cxr'" in str(exc.value)


def test_folder_missing_class_folder(tmp_path: Path) -> None:
    _folder(tmp_path / "cxr", {"train": (1, 1), "test": (1, 1)})
    with pytest.raises(DataError, match=r"missing class folder .*effusion"):
        parse_task_table({"name": "cxr", "domain": "x", "path": "cxr", "classes": CLASSES + ["effusion"]},
                         tmp_path, "t.toml")


def test_csv_task(tmp_path: Path) -> None:
    for i, c in enumerate([0, 1, 1, 0, 1, 0]):
        _png(tmp_path / "imgs" / f"{i}.png", LEVEL[c], size=(80, 100), mode="RGB")
    rows = ["path,label,split", "imgs/0.png,normal,train", "imgs/1.png,1,train", "imgs/2.png,pneumonia,train",
            "imgs/3.png,0,val", "imgs/4.png,pneumonia,test", "imgs/5.png,normal,test"]
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "labels.csv").write_text("\n".join(rows).replace("imgs/", "../imgs/") + "\n")
    spec = parse_task_table({"name": "csv-task", "domain": "chest x-ray", "path": "meta/labels.csv",
                             "classes": CLASSES, "image_size": 24}, tmp_path, "t.toml")
    assert spec.source == "csv" and spec.channels == 3
    data = load_user_task(spec)
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 3, "val": 1, "test": 2}
    assert data.splits["train"].labels.tolist() == [0, 1, 1]
    assert data.splits["test"].labels.tolist() == [1, 0]
    assert data.splits["train"].images.shape == (3, 24, 24, 3)
    _check_levels(data, "train")


@pytest.mark.parametrize(
    ("row", "needle"),
    [("img.png,effusion,train", "unknown label 'effusion'"), ("img.png,2,train", "unknown label '2'"),
     ("img.png,normal,holdout", "split 'holdout'"), ("nope.png,normal,train", "not found")],
)
def test_csv_errors(tmp_path: Path, row: str, needle: str) -> None:
    _png(tmp_path / "img.png", 10)
    (tmp_path / "l.csv").write_text(f"path,label,split\nimg.png,0,test\n{row}\n")
    spec = parse_task_table({"name": "c", "domain": "x", "path": "l.csv", "classes": CLASSES}, tmp_path, "t.toml")
    with pytest.raises(DataError) as exc:
        load_user_task(spec)
    assert needle in _one_line(exc) and "line 3" in str(exc.value)


def test_csv_missing_column(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text("file,label,split\nimg.png,0,train\n")
    spec = parse_task_table({"name": "c", "domain": "x", "path": "l.csv", "classes": CLASSES}, tmp_path, "t.toml")
    with pytest.raises(DataError, match="lacks column"):
        load_user_task(spec)


def _npz(path: Path, size: int = 20, channels: int = 3, val: bool = False, label_max: int = 1) -> None:
    shape = (size, size, channels) if channels == 3 else (size, size)
    arrays = {
        "train_images": np.zeros((4, *shape), np.uint8), "train_labels": np.array([[0], [1], [0], [label_max]]),
        "test_images": np.ones((2, *shape), np.uint8), "test_labels": np.array([[1], [0]]),
    }
    if val:
        arrays |= {"val_images": np.ones((1, *shape), np.uint8), "val_labels": np.array([[1]])}
    np.savez(path, **arrays)


def test_npz_task(tmp_path: Path) -> None:
    _npz(tmp_path / "a.npz", size=20, channels=3)
    _npz(tmp_path / "b.npz", size=32, channels=1, val=True)
    cfg = _toml(tmp_path / "tasks.toml", """
[[task]]
name = "a"
domain = "dermoscopy"
path = "a.npz"
classes = ["benign", "malignant"]
description = "tiny"

[[task]]
name = "b"
domain = "chest x-ray"
format = "npz"
path = "b.npz"
classes = ["normal", "pneumonia"]
templates = ["an x-ray of {}.", "{} on a radiograph"]
""")
    a, b = load_task_file(cfg)
    assert (a.source, a.image_size, a.channels, a.description) == ("npz", 20, 3, "tiny")
    assert (b.image_size, b.channels) == (32, 1)
    da, db = load_user_task(a), load_user_task(b)
    assert set(da.splits) == {"train", "test"} and set(db.splits) == {"train", "val", "test"}
    assert da.splits["train"].images.shape == (4, 20, 20, 3) and db.splits["val"].images.shape == (1, 32, 32, 1)
    assert da.counts() == {"train": [2, 2], "test": [1, 1]}


def test_npz_errors(tmp_path: Path) -> None:
    _npz(tmp_path / "a.npz", size=20)
    base = {"name": "a", "domain": "x", "path": "a.npz", "classes": CLASSES}
    with pytest.raises(UsageError, match="'image_size'"):
        parse_task_table(base | {"image_size": 64}, tmp_path, "t.toml")
    with pytest.raises(UsageError, match="'channels'"):
        parse_task_table(base | {"channels": 1}, tmp_path, "t.toml")
    _npz(tmp_path / "a.npz", size=20, label_max=2)
    with pytest.raises(DataError, match=r"labels must be in 0\.\.1"):
        load_user_task(parse_task_table(base, tmp_path, "t.toml"))
    (tmp_path / "a.npz").write_text("not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        parse_task_table(base, tmp_path, "t.toml")


def test_spec_round_trip_and_json(tmp_path: Path) -> None:
    _folder(tmp_path / "cxr", {"train": (1, 1), "test": (1, 1)})
    _npz(tmp_path / "a.npz")
    for table in ({"name": "f", "domain": "x", "path": "cxr", "image_size": 8, "channels": 1},
                  {"name": "n", "domain": "x", "path": "a.npz", "classes": CLASSES, "description": "d"}):
        spec = parse_task_table(table, tmp_path, "t.toml")
        json.dumps(dict(spec.options))
        again = parse_task_table(spec_to_table(spec), tmp_path / "cxr", "saved")
        assert again == spec
        assert Path(spec.options["path"]).is_absolute()


def test_sixteen_bit_png_is_stretched(tmp_path: Path) -> None:
    arr = np.linspace(1000, 4000, 64).reshape(8, 8).astype(np.uint16)  # 12-bit scan: convert("L") would clip
    for split, c in (("train", "normal"), ("test", "pneumonia")):
        (tmp_path / "r" / split / c).mkdir(parents=True)
        Image.fromarray(arr).save(tmp_path / "r" / split / c / "x.png")
    (tmp_path / "r" / "train" / "pneumonia").mkdir()
    (tmp_path / "r" / "test" / "normal").mkdir()
    spec = parse_task_table({"name": "r", "domain": "x", "path": "r", "image_size": 8, "channels": 1},
                            tmp_path, "t.toml")
    img = load_user_task(spec).splits["train"].images[0, ..., 0]
    assert img.min() == 0 and img.max() == 255 and len(np.unique(img)) > 32


def test_corrupt_image(tmp_path: Path) -> None:
    _folder(tmp_path / "r", {"train": (1, 1), "test": (1, 1)})
    (tmp_path / "r" / "train" / "normal" / "bad.png").write_bytes(b"not a png")
    spec = parse_task_table({"name": "r", "domain": "x", "path": "r"}, tmp_path, "t.toml")
    with pytest.raises(DataError, match="cannot decode image .*bad.png"):
        load_user_task(spec)


def test_bad_toml(tmp_path: Path) -> None:
    cfg = _toml(tmp_path / "tasks.toml", '[[task]]\nname = "a"\ndomain = \n')
    with pytest.raises(UsageError) as exc:
        load_task_file(cfg)
    msg = _one_line(exc)
    assert msg.startswith(f"{cfg}: invalid TOML") and "line 3" in msg


def test_missing_task_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="task file not found"):
        load_task_file(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"domain": None}, "task 'a': 'domain' must be"),
        ({"classes": None}, "task 'a': 'classes' must be a non-empty list of strings"),
        ({"classes": []}, "'classes' must be a non-empty list of strings"),
        ({"classes": ["x", "x"]}, "'classes' must be a list of distinct"),
        ({"format": "hdf5"}, "'format' must be one of npz, folder, csv"),
        ({"templates": ["no placeholder"]}, "'templates' must be strings with exactly one {}"),
        ({"templates": ["{} and {}"]}, "exactly one {}"),
        ({"templates": ["{} of {name}"]}, "exactly one {}"),
        ({"name": "My Task"}, "'name'"),
        ({"path": None}, "'path' must be"),
        ({"image_size": "64"}, "'image_size' must be an integer"),
        ({"channels": 2}, "'channels' must be 1 (grayscale) or 3"),
        ({"clases": ["a"]}, "unknown field(s) 'clases'"),
    ],
)
def test_bad_fields(tmp_path: Path, change: dict, needle: str) -> None:
    (tmp_path / "l.csv").write_text("path,label,split\n")
    table = {"name": "a", "domain": "x", "path": "l.csv", "classes": ["p", "q"]}
    table.update(change)
    table = {k: v for k, v in table.items() if v is not None}
    with pytest.raises(UsageError) as exc:
        parse_task_table(table, tmp_path, "tasks.toml")
    msg = _one_line(exc)
    assert msg.startswith("tasks.toml: ") and needle in msg
    table = {"name": "a", "domain": "x", "path": "l.csv", "classes": ["p", "q"]}
    parse_task_table(table, tmp_path, "tasks.toml")  # the unchanged table is fine


def test_missing_path_and_duplicates(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        parse_task_table({"name": "a", "domain": "x", "path": "gone.csv", "classes": CLASSES}, tmp_path, "t.toml")
    (tmp_path / "l.csv").write_text("path,label,split\n")
    task = '[[task]]\nname = "a"\ndomain = "x"\npath = "l.csv"\nclasses = ["p"]\n'
    with pytest.raises(UsageError, match="declared twice"):
        load_task_file(_toml(tmp_path / "t.toml", task + task))
    with pytest.raises(UsageError, match="no tasks declared"):
        load_task_file(_toml(tmp_path / "t.toml", "# empty\n"))
    with pytest.raises(UsageError, match="unknown top-level"):
        load_task_file(_toml(tmp_path / "t.toml", "[tasks]\nname = 'a'\n"))


def test_empty_split(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text("path,label,split\n")
    spec = parse_task_table({"name": "a", "domain": "x", "path": "l.csv", "classes": CLASSES}, tmp_path, "t.toml")
    with pytest.raises(DataError, match="no train images"):
        load_user_task(spec)
