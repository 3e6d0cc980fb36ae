"""Tests of medtui.data.medmnist on the real official files (see ../shared/data/medmnist/PROVENANCE.md).

Nothing here reaches the network: download attempts are either pointed at hosts that
cannot answer or routed to a fake ``medmnist`` / ``download_url`` that copies a local file.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from medtui.data import medmnist as mm
from medtui.errors import DataError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "medmnist"
# From PROVENANCE.md: train / val / test sizes and per-class names of the two shared files.
REAL = {
    "breastmnist": ((546, 78, 156), "750601b1f35ba3300ea97c75c52ff8f6"),
    "pneumoniamnist": ((4708, 524, 624), "28209eda62fecd6e6a2d98b1501bb15f"),
}


@pytest.fixture
def shared() -> Path:
    """The folder of real MedMNIST files, or skip."""
    if not (SHARED / "breastmnist.npz").is_file() or not (SHARED / "pneumoniamnist.npz").is_file():
        pytest.skip(f"real MedMNIST files not found in {SHARED} (see PROVENANCE.md there)")
    return SHARED


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    return msg


def _write_npz(path: Path, n_classes: int = 2, size: int = 28, drop: str = "", bad_label: bool = False) -> None:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % n_classes).astype(np.uint8)[:, None]
    if bad_label:
        arrays["test_labels"][0, 0] = n_classes
    arrays.pop(drop, None)
    np.savez_compressed(path, **arrays)


@pytest.mark.parametrize("name", sorted(REAL))
def test_load_real_file(shared: Path, name: str) -> None:
    (n_train, n_val, n_test), _ = REAL[name]
    data = mm.load_medmnist(mm.medmnist_spec(name), shared, download=False)
    assert set(data.splits) == {"train", "val", "test"}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        s = data.splits[split]
        assert s.images.shape == (n, 28, 28, 1)
        assert s.images.dtype == np.uint8 and s.labels.dtype == np.int64
        assert s.labels.shape == (n,)
        assert sorted(np.unique(s.labels).tolist()) == [0, 1]
        assert s.images.flags["C_CONTIGUOUS"] and not isinstance(s.images, np.memmap)
    assert data.spec.n_classes == 2
    assert data.splits["train"].images.std() > 10  # real pixels, not a blank array


def test_verify_md5_real(shared: Path) -> None:
    for name, (_, md5) in REAL.items():
        assert mm.verify_md5(shared / f"{name}.npz", md5)
        assert mm.medmnist_spec(name).options["md5"] == md5
    assert not mm.verify_md5(shared / "breastmnist.npz", REAL["pneumoniamnist"][1])


def test_locate(shared: Path, tmp_path: Path) -> None:
    spec = mm.medmnist_spec("breastmnist")
    assert mm.locate(spec, tmp_path) is None
    (tmp_path / "medmnist").mkdir()
    shutil.copy(shared / "breastmnist.npz", tmp_path / "medmnist" / "breastmnist.npz")
    assert mm.locate(spec, tmp_path) == tmp_path / "medmnist" / "breastmnist.npz"
    shutil.copy(shared / "breastmnist.npz", tmp_path / "breastmnist.npz")
    assert mm.locate(spec, tmp_path) == tmp_path / "breastmnist.npz"
    assert mm.locate(mm.medmnist_spec("breastmnist_64"), tmp_path) is None
    assert len(mm.load_medmnist(spec, tmp_path / "medmnist", download=False).splits["train"]) == 546


def test_missing_file_download_off(tmp_path: Path) -> None:
    spec = mm.medmnist_spec("pneumoniamnist_64")
    with pytest.raises(DataError) as exc:
        mm.load_medmnist(spec, tmp_path, download=False)
    msg = _one_line(exc)
    assert "pneumoniamnist_64.npz" in msg and str(tmp_path) in msg
    assert spec.options["md5"] in msg and "zenodo.org" in msg
    assert list(tmp_path.iterdir()) == []


def _network_up() -> bool:
    try:
        socket.create_connection(("zenodo.org", 443), timeout=2).close()
        return True
    except OSError:
        return False


def test_missing_file_download_without_network_fails_fast(tmp_path: Path) -> None:
    if _network_up():
        pytest.skip("zenodo.org is reachable: this test checks the offline failure")
    start = time.monotonic()
    with pytest.raises(DataError) as exc:
        mm.load_medmnist(mm.medmnist_spec("breastmnist_64"), tmp_path / "data", download=True)
    assert time.monotonic() - start < 20
    msg = _one_line(exc)
    assert "breastmnist_64.npz not found" in msg and "could not be downloaded" in msg
    assert "742edef2a1fd1524b2efff4bd7ba9364" in msg and str(tmp_path / "data") in msg
    assert not (tmp_path / "data" / "breastmnist_64.npz").exists()


def test_unresolvable_host_fails_fast(tmp_path: Path) -> None:
    spec = mm.medmnist_spec("breastmnist")
    spec = replace(spec, options={**spec.options, "url": "https://medtui-test.invalid/x.npz"})  # RFC 2606
    start = time.monotonic()
    with pytest.raises(DataError, match="could not be downloaded"):
        mm.load_medmnist(spec, tmp_path, download=True)
    assert time.monotonic() - start < 10


def test_silent_host_fails_within_probe_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A server that accepts connections and never answers, like a filtering firewall or sandbox:
    # without a timeout urllib would wait on it forever.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setattr(mm, "PROBE_TIMEOUT_S", 0.5)
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        spec = mm.medmnist_spec("breastmnist")
        spec = replace(spec, options={**spec.options, "url": f"http://127.0.0.1:{silent.getsockname()[1]}/x.npz"})
        outcome: list[BaseException] = []

        def attempt() -> None:
            try:
                mm.load_medmnist(spec, tmp_path, download=True)
            except BaseException as e:  # noqa: BLE001 - handed to the test thread
                outcome.append(e)

        # A daemon thread, so that a regression (no timeout) fails this test instead of hanging it.
        worker = threading.Thread(target=attempt, daemon=True)
        worker.start()
        worker.join(timeout=5)
        assert not worker.is_alive(), "download attempt still waiting on a silent host after 5 s"
    assert len(outcome) == 1 and isinstance(outcome[0], DataError)
    msg = str(outcome[0])
    assert "\n" not in msg and "could not be downloaded (no network?)" in msg


def _fake_medmnist(download: object) -> types.ModuleType:
    mod = types.ModuleType("medmnist")
    mod.INFO = {"breastmnist": {"python_class": "BreastMNIST"}}  # type: ignore[attr-defined]
    mod.BreastMNIST = type("BreastMNIST", (), {"download": download})  # type: ignore[attr-defined]
    return mod


def test_download_through_medmnist(shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def download(self: object) -> None:
        calls.append((self.flag, self.size_flag, self.root))  # type: ignore[attr-defined]
        shutil.copy(shared / "breastmnist.npz", Path(self.root) / "breastmnist.npz")  # type: ignore[attr-defined]

    monkeypatch.setattr(mm, "_probe_host", lambda url, timeout: None)
    monkeypatch.setitem(sys.modules, "medmnist", _fake_medmnist(download))
    data = mm.load_medmnist(mm.medmnist_spec("breastmnist"), tmp_path / "new", download=True)
    assert calls == [("breastmnist", "", str(tmp_path / "new"))]
    assert len(data.splits["test"]) == 156


def test_failed_download_removes_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def download(self: object) -> None:
        (Path(self.root) / "breastmnist.npz").write_bytes(b"PK\x03\x04 truncated")  # type: ignore[attr-defined]
        raise ConnectionResetError("peer went away")

    monkeypatch.setattr(mm, "_probe_host", lambda url, timeout: None)
    monkeypatch.setitem(sys.modules, "medmnist", _fake_medmnist(download))
    with pytest.raises(DataError) as exc:
        mm.load_medmnist(mm.medmnist_spec("breastmnist"), tmp_path, download=True)
    assert "no network?" in _one_line(exc)
    assert not (tmp_path / "breastmnist.npz").exists()


def test_download_without_medmnist_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mm, "_probe_host", lambda url, timeout: None)
    monkeypatch.setitem(sys.modules, "medmnist", None)  # makes `import medmnist` raise ImportError
    with pytest.raises(DataError) as exc:
        mm.load_medmnist(mm.medmnist_spec("breastmnist"), tmp_path, download=True)
    assert "medmnist package is not installed" in _one_line(exc)


def test_real_medmnist_download_method_gets_what_it_needs(
    shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Our download bypasses the dataset's __init__: check the real download() still finds
    # every attribute it reads, by replacing only torchvision's network call.
    pytest.importorskip("medmnist")
    tv_utils = pytest.importorskip("torchvision.datasets.utils")
    seen = {}

    def fake_download_url(url: str, root: str, filename: str, md5: str) -> None:
        seen.update(url=url, root=root, filename=filename, md5=md5)
        shutil.copy(shared / "pneumoniamnist.npz", Path(root) / filename)

    monkeypatch.setattr(mm, "_probe_host", lambda url, timeout: None)
    monkeypatch.setattr(tv_utils, "download_url", fake_download_url)
    data = mm.load_medmnist(mm.medmnist_spec("pneumoniamnist"), tmp_path, download=True)
    assert seen == {"url": mm.download_url("pneumoniamnist", 28), "root": str(tmp_path),
                    "filename": "pneumoniamnist.npz", "md5": REAL["pneumoniamnist"][1]}
    assert len(data.splits["train"]) == 4708


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"drop": "val_labels"}, "val_labels"), ({"drop": "train_images"}, "train_images"),
     ({"bad_label": True}, "labels must be in 0..1"), ({"size": 32}, "wrong file")],
)
def test_malformed_npz(tmp_path: Path, kwargs: dict, needle: str) -> None:
    _write_npz(tmp_path / "breastmnist.npz", **kwargs)
    with pytest.raises(DataError) as exc:
        mm.load_medmnist(mm.medmnist_spec("breastmnist"), tmp_path, download=False)
    assert needle in _one_line(exc)


def test_synthetic_npz_loads(tmp_path: Path) -> None:
    # The malformed cases above only mean something if the well-formed variant loads.
    _write_npz(tmp_path / "breastmnist.npz")
    data = mm.load_medmnist(mm.medmnist_spec("breastmnist"), tmp_path, download=False)
    assert data.counts() == {"train": [3, 3], "val": [1, 1], "test": [2, 1]}


@pytest.mark.parametrize("content", [b"this is not a zip file\n", b"PK\x03\x04broken"])
def test_not_an_npz(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "breastmnist.npz").write_bytes(content)
    with pytest.raises(DataError) as exc:
        mm.load_medmnist(mm.medmnist_spec("breastmnist"), tmp_path, download=False)
    assert "not a readable .npz" in _one_line(exc)


def test_npy_named_npz(tmp_path: Path) -> None:
    with open(tmp_path / "breastmnist.npz", "wb") as fh:
        np.save(fh, np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match="not an .npz"):
        mm.load_medmnist(mm.medmnist_spec("breastmnist"), tmp_path, download=False)


@pytest.mark.parametrize("name", ["chestmnist", "chestmnist_64", "chestmnist_128", "chestmnist_224"])
def test_chestmnist_refused(tmp_path: Path, name: str) -> None:
    assert "multi-label" in mm.REFUSED[name] and "single-label" in mm.REFUSED[name]
    assert name not in {s.name for s in mm.medmnist_specs()}
    with pytest.raises(DataError) as exc:
        mm.medmnist_spec(name)
    assert "multi-label" in _one_line(exc) and "14" in str(exc.value)
    chest = replace(mm.medmnist_spec("pneumoniamnist"), name=name, options={"flag": "chestmnist"})
    with pytest.raises(DataError, match="multi-label"):
        mm.load_medmnist(chest, tmp_path, download=True)


def test_specs_table() -> None:
    specs = mm.medmnist_specs()
    assert len(specs) == 11 * 4 and len({s.name for s in specs}) == len(specs)
    for spec in specs:
        flag, size = spec.options["flag"], spec.options["size"]
        assert spec.source == "medmnist" and spec.image_size == size and size in mm.SIZES
        assert spec.name == (flag if size == 28 else f"{flag}_{size}")
        assert spec.options["file"] == f"{spec.name}.npz"
        assert 3 <= len(spec.templates) <= 5
        for t in spec.templates:
            assert t.count("{}") == 1
            t.format("x")  # no other placeholder
        assert all(c == c.lower() and c.strip() and "(" not in c for c in spec.classes)
        assert len(set(spec.classes)) == spec.n_classes
    retina = mm.medmnist_spec("retinamnist")
    assert retina.classes[0] == "no diabetic retinopathy" and retina.classes[-1] == "proliferative diabetic retinopathy"
    assert "immature granulocyte" in mm.medmnist_spec("bloodmnist_224").classes


def test_specs_agree_with_medmnist_info() -> None:
    info = pytest.importorskip("medmnist.info").INFO
    for spec in mm.medmnist_specs():
        row = info[spec.options["flag"]]
        size = spec.options["size"]
        assert spec.n_classes == len(row["label"])
        assert spec.channels == row["n_channels"]
        assert spec.options["md5"] == row["MD5" if size == 28 else f"MD5_{size}"]
        assert spec.options["url"] == row["url" if size == 28 else f"url_{size}"]
        n = row["n_samples"]
        sizes = (spec.options["n_train"], spec.options["n_val"], spec.options["n_test"])
        assert sizes == (n["train"], n["val"], n["test"])


def test_import_needs_neither_torch_nor_medmnist() -> None:
    code = ("import sys, medtui.data.medmnist as m, medtui.data.user; m.medmnist_specs(); "
            "print('torch' in sys.modules, 'medmnist' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.split() == ["False", "False"]
