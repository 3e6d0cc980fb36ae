"""The MedMNIST v2 2D datasets as medtui tasks.

Metadata (classes, split sizes, MD5s) is shipped here as literals, copied once from
``medmnist.info.INFO`` of ``medmnist==3.0.2``, so that listing tasks needs neither torch
nor the ``medmnist`` package. The package is imported lazily, and only to download.

Task names follow the official file names: ``pneumoniamnist`` is the 28 px file
``pneumoniamnist.npz``, ``pneumoniamnist_64`` is ``pneumoniamnist_64.npz`` and so on.
"""

from __future__ import annotations

import hashlib
import socket
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from medtui.data.base import SPLITS, Split, TaskData, TaskSpec, validate_split
from medtui.errors import DataError, UnknownTaskError

SIZES: tuple[int, ...] = (28, 64, 128, 224)
ZENODO_RECORD = "https://zenodo.org/records/10519652/files"
# A download whose host does not answer a HEAD request within this many seconds fails at
# once; urllib's own calls have no timeout and would hang a job on a filtered network.
PROBE_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0


class MedmnistSet(NamedTuple):
    """Metadata of one MedMNIST 2D set (one row of :data:`MEDMNIST_2D`)."""

    python_class: str
    domain: str
    channels: int
    n_samples: tuple[int, int, int]  # train, val, test
    license: str
    md5: dict[int, str]  # image size -> MD5 of the official npz
    classes: tuple[str, ...]
    templates: tuple[str, ...]
    origin: str  # the dataset MedMNIST derived the set from


def _organ(plane: str, python_class: str, n: tuple[int, int, int], md5: dict[int, str]) -> MedmnistSet:
    """The three OrganMNIST sets differ only in slicing plane, sizes and MD5s."""
    article = "an" if plane == "axial" else "a"
    return MedmnistSet(
        python_class, f"abdominal CT ({plane})", 1, n, "CC BY 4.0", md5,
        ("bladder", "left femur", "right femur", "heart", "left kidney", "right kidney",
         "liver", "left lung", "right lung", "pancreas", "spleen"),
        (f"{article} {plane} abdominal CT slice showing the {{}}.",
         f"{article} {plane} computed tomography image of the {{}}.",
         f"a CT scan in the {plane} plane showing the {{}}.",
         f"{article} {plane} CT image of the abdomen centred on the {{}}."),
        "LiTS liver tumour segmentation CT volumes",
    )


MEDMNIST_2D: dict[str, MedmnistSet] = {
    "pathmnist": MedmnistSet(
        "PathMNIST", "pathology", 3, (89996, 10004, 7180), "CC BY 4.0",
        {28: "a8b06965200029087d5bd730944a56c1", 64: "55aa9c1e0525abe5a6b9d8343a507616",
         128: "ac42d08fb904d92c244187169d1fd1d9", 224: "2c51a510bcdc9cf8ddb2af93af1eadec"},
        ("adipose tissue", "background", "debris", "lymphocytes", "mucus", "smooth muscle",
         "normal colon mucosa", "cancer-associated stroma", "colorectal adenocarcinoma epithelium"),
        ("a histopathology image of {}.", "an H&E-stained colorectal tissue patch showing {}.",
         "a microscopy image of colorectal tissue showing {}.", "a pathology slide patch of {}."),
        "NCT-CRC-HE-100K colorectal histology patches",
    ),
    "dermamnist": MedmnistSet(
        "DermaMNIST", "dermoscopy", 3, (7007, 1003, 2005), "CC BY-NC 4.0",
        {28: "0744692d530f8e62ec473284d019b0c7", 64: "b70a2f5635c6199aeaa28c31d7202e1f",
         128: "2defd784463fa5243564e855ed717de1", 224: "8974907d8e169bef5f5b96bc506ae45d"},
        ("actinic keratosis or intraepithelial carcinoma", "basal cell carcinoma",
         "benign keratosis-like lesion", "dermatofibroma", "melanoma", "melanocytic nevus",
         "vascular lesion"),
        ("a dermoscopy image of {}.", "a dermatoscopic image of a skin lesion diagnosed as {}.",
         "a close-up photo of skin showing {}.", "a dermoscopic photograph of {}."),
        "HAM10000 dermatoscopic images",
    ),
    "octmnist": MedmnistSet(
        "OCTMNIST", "retinal OCT", 1, (97477, 10832, 1000), "CC BY 4.0",
        {28: "c68d92d5b585d8d81f7112f81e2d0842", 64: "e229e9440236b774d9f0dfef9d07bdaf",
         128: "0a97e76651ace45c5d943ee3f65b63ae", 224: "abc493b6d529d5de7569faaef2773ba3"},
        ("choroidal neovascularization", "diabetic macular edema", "drusen", "normal retina"),
        ("a retinal OCT scan showing {}.", "an optical coherence tomography scan of the retina showing {}.",
         "an OCT image of {}.", "a grayscale retinal OCT b-scan with {}."),
        "retinal OCT images of Kermany et al. (2018)",
    ),
    "pneumoniamnist": MedmnistSet(
        "PneumoniaMNIST", "chest x-ray", 1, (4708, 524, 624), "CC BY 4.0",
        {28: "28209eda62fecd6e6a2d98b1501bb15f", 64: "8f4eceb4ccffa70c672198ea285246c6",
         128: "05b46931834c231683c68f40c47b2971", 224: "d6a3c71de1b945ea11211b03746c1fe1"},
        ("normal lungs", "pneumonia"),
        ("a chest x-ray showing {}.", "a pediatric chest radiograph showing {}.",
         "a frontal chest x-ray of a child with {}.", "a chest radiograph with {}."),
        "pediatric chest x-rays of Kermany et al. (2018)",
    ),
    "retinamnist": MedmnistSet(
        "RetinaMNIST", "fundus photography", 3, (1080, 120, 400), "CC BY 4.0",
        {28: "bd4c0672f1bba3e3a89f0e4e876791e4", 64: "afda852cc34dcda56f86ad2b2457dbcc",
         128: "e48e916a24454daf90583d4e6efb1a18", 224: "eae7e3b6f3fcbda4ae613ebdcbe35348"},
        # Labels 0..4 are the DeepDRiD diabetic retinopathy severity grades.
        ("no diabetic retinopathy", "mild diabetic retinopathy", "moderate diabetic retinopathy",
         "severe diabetic retinopathy", "proliferative diabetic retinopathy"),
        ("a fundus photograph showing {}.", "a retinal fundus image with {}.",
         "a color fundus photo of an eye with {}.", "a fundus image graded as {}."),
        "DeepDRiD fundus images",
    ),
    "breastmnist": MedmnistSet(
        "BreastMNIST", "breast ultrasound", 1, (546, 78, 156), "CC BY 4.0",
        {28: "750601b1f35ba3300ea97c75c52ff8f6", 64: "742edef2a1fd1524b2efff4bd7ba9364",
         128: "363e4b3f8d712e9b5de15470a2aaadf1", 224: "b56378a6eefa9fed602bb16d192d4c8b"},
        ("malignant tumor", "normal tissue or benign tumor"),
        ("a breast ultrasound image showing {}.", "a breast ultrasound scan of {}.",
         "an ultrasound image of the breast showing {}.", "a grayscale breast sonogram with {}."),
        "BUSI breast ultrasound images",
    ),
    "bloodmnist": MedmnistSet(
        "BloodMNIST", "blood cell microscopy", 3, (11959, 1712, 3421), "CC BY 4.0",
        {28: "7053d0359d879ad8a5505303e11de1dc", 64: "2b94928a2ae4916078ca51e05b6b800b",
         128: "adace1e0ed228fccda1f39692059dd4c", 224: "b718ff6835fcbdb22ba9eacccd7b2601"},
        ("basophil", "eosinophil", "erythroblast", "immature granulocyte", "lymphocyte",
         "monocyte", "neutrophil", "platelet"),
        ("a peripheral blood smear image of {}.", "a microscopy image of a blood cell: {}.",
         "a stained blood cell classified as {}.", "a blood cell microscopy image showing {}."),
        "peripheral blood cell images of Acevedo et al. (2020)",
    ),
    "tissuemnist": MedmnistSet(
        "TissueMNIST", "kidney cortex microscopy", 1, (165466, 23640, 47280), "CC BY 4.0",
        {28: "ebe78ee8b05294063de985d821c1c34b", 64: "123ece2eba09d0aa5d698fda57103344",
         128: "61b955355d7425a89687b06cca3ce0c2", 224: "b077128c4a949f0a4eb01517f9037b9c"},
        ("collecting duct or connecting tubule", "distal convoluted tubule",
         "glomerular endothelial cell", "interstitial endothelial cell", "leukocyte", "podocyte",
         "proximal tubule segment", "thick ascending limb"),
        ("a kidney cortex microscopy image of {}.", "a microscopy image of human kidney tissue showing {}.",
         "a grayscale microscopy image of a kidney cortex cell from the {}."),
        "BBBC051 kidney cortex cells",
    ),
    "organamnist": _organ("axial", "OrganAMNIST", (34561, 6491, 17778),
                          {28: "68e3f8846a6bd62f0c9bf841c0d9eacc", 64: "2dcccc29b88e6da5a01161ef20cda288",
                           128: "eeae80d0a227a8d099027e1b3cfd3b60", 224: "50747347e05c87dd3aaf92c49f9f3170"}),
    "organcmnist": _organ("coronal", "OrganCMNIST", (12975, 2392, 8216),
                          {28: "b9ceb9546e10131b32923c5bbeaea2b1", 64: "3ce34a8724ea6f548e6db4744d03b6a9",
                           128: "773c1f009daa3fe5d9a2a201b2a7ed94", 224: "050f5e875dc056f6768abf94ec9995d1"}),
    "organsmnist": _organ("sagittal", "OrganSMNIST", (13932, 2452, 8827),
                          {28: "9ab87b696fb54e2a387ebe992d6ed5f1", 64: "53a6d115339d874c25e309a994ff46d3",
                           128: "ded0c5fa01a95dc4978b956f613e9b8e", 224: "b354719e553fbbb2513d5533f52a4cb1"}),
}

_CHEST_REASON = (
    "chestmnist is multi-label (14 findings per image) and medtui only supports single-label tasks"
)
REFUSED: dict[str, str] = {
    ("chestmnist" if s == 28 else f"chestmnist_{s}"): _CHEST_REASON for s in SIZES
}


def task_name(flag: str, size: int) -> str:
    """The task name (and file stem) of a set at a size: ``pneumoniamnist``, ``pneumoniamnist_64``."""
    return flag if size == 28 else f"{flag}_{size}"


def download_url(flag: str, size: int) -> str:
    """The official Zenodo address of a set's npz file at a size."""
    return f"{ZENODO_RECORD}/{task_name(flag, size)}.npz?download=1"


def _spec(flag: str, size: int) -> TaskSpec:
    info = MEDMNIST_2D[flag]
    name = task_name(flag, size)
    train, val, test = info.n_samples
    return TaskSpec(
        name=name,
        domain=info.domain,
        classes=info.classes,
        templates=info.templates,
        source="medmnist",
        image_size=size,
        channels=info.channels,
        description=(
            f"MedMNIST v2 {info.python_class} at {size}x{size} px, from {info.origin} "
            f"({train}/{val}/{test} train/val/test images, {info.license})"
        ),
        options={"file": f"{name}.npz", "md5": info.md5[size], "flag": flag, "size": size,
                 "url": download_url(flag, size), "n_train": train, "n_val": val, "n_test": test},
    )


def medmnist_specs() -> list[TaskSpec]:
    """Specs of every supported MedMNIST 2D set at every size (set-major, sizes ascending)."""
    return [_spec(flag, size) for flag in MEDMNIST_2D for size in SIZES]


def medmnist_spec(name: str) -> TaskSpec:
    """The spec of one MedMNIST task by name; :class:`DataError` for refused ones (chestmnist)."""
    if name in REFUSED:
        raise DataError(f"task {name!r} is not supported: {REFUSED[name]}")
    for spec in medmnist_specs():
        if spec.name == name:
            return spec
    raise UnknownTaskError(f"unknown MedMNIST task {name!r}")


def locate(spec: TaskSpec, data_dir: Path) -> Path | None:
    """The task's npz file in ``data_dir`` or ``data_dir/medmnist``, or None when absent."""
    file = spec.options["file"]
    for candidate in (Path(data_dir) / file, Path(data_dir) / "medmnist" / file):
        if candidate.is_file():
            return candidate
    return None


def verify_md5(path: Path, md5: str) -> bool:
    """Whether the file's MD5 equals ``md5`` (reads it in chunks; slow for 224 px files)."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest() == md5.lower()


def read_npz(path: Path, task: str, n_classes: int, require_val: bool = True) -> dict[str, Split]:
    """Read the MedMNIST npz layout (``<split>_images``/``<split>_labels``) into validated splits.

    Every array is decompressed into memory once. ``val`` is optional when ``require_val``
    is false. Raises :class:`DataError` naming the file and the problem.
    """
    wanted = [s for s in SPLITS if require_val or s != "val"]
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"task {task!r}: {path} is not a readable .npz archive ({type(exc).__name__})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"task {task!r}: {path} is a single .npy array, not an .npz archive")
    with npz:
        keys = set(npz.files)
        missing = [f"{s}_{k}" for s in wanted for k in ("images", "labels") if f"{s}_{k}" not in keys]
        if missing:
            raise DataError(f"task {task!r}: {path} lacks key(s) {', '.join(missing)} (has: {', '.join(sorted(keys))})")
        if ("val_images" in keys) != ("val_labels" in keys):
            raise DataError(f"task {task!r}: {path} has only one of val_images, val_labels")
        present = [s for s in SPLITS if f"{s}_images" in keys]
        try:
            arrays = {s: (npz[f"{s}_images"], npz[f"{s}_labels"]) for s in present}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise DataError(f"task {task!r}: {path} is corrupt ({detail})") from None
    splits: dict[str, Split] = {}
    for split, (images, labels) in arrays.items():
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"task {task!r}: {split} labels in {path} must be integers, got {labels.dtype}")
        splits[split] = validate_split(task, split, images, labels, n_classes)
    return splits


def _check_shape(spec: TaskSpec, path: Path, splits: dict[str, Split]) -> None:
    """Refuse a file whose images do not have the spec's size or channels (a wrong file)."""
    for split, s in splits.items():
        h, w, c = s.images.shape[1:]
        if (h, w, c) != (spec.image_size, spec.image_size, spec.channels):
            raise DataError(
                f"task {spec.name!r}: {split} images in {path} are {h}x{w}x{c}, "
                f"expected {spec.image_size}x{spec.image_size}x{spec.channels} (wrong file?)"
            )


def _probe_host(url: str, timeout: float) -> None:
    """Raise unless an HTTP HEAD request for ``url`` gets an answer within ``timeout`` seconds.

    A bare TCP connect is not enough: sandboxes and captive networks accept any connection
    and then never answer, which urllib (no timeout of its own) would wait on forever.
    """
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "medtui"})
    try:
        urllib.request.urlopen(request, timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # the server answered: the network works, let the real download report the rest


def _download(spec: TaskSpec, data_dir: Path) -> None:
    """Fetch the npz into ``data_dir`` through the ``medmnist`` package; any failure propagates."""
    _probe_host(spec.options["url"], PROBE_TIMEOUT_S)
    import medmnist  # imports torch: only ever done here

    flag, size = spec.options["flag"], int(spec.options["size"])
    cls = getattr(medmnist, medmnist.INFO[flag]["python_class"])
    # Call the class's download() without its __init__, which would also decompress the
    # whole train split (gigabytes at 224 px) only for us to load it again.
    ds = cls.__new__(cls)
    ds.flag, ds.info, ds.root = flag, medmnist.INFO[flag], str(data_dir)
    ds.size, ds.size_flag = size, ("" if size == 28 else f"_{size}")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(READ_TIMEOUT_S)  # urllib has none: a stalled transfer would hang forever
    try:
        ds.download()
    finally:
        socket.setdefaulttimeout(previous)


def load_medmnist(spec: TaskSpec, data_dir: Path, download: bool = True) -> TaskData:
    """Load a MedMNIST task from its official npz in ``data_dir`` (downloading it when allowed).

    Raises :class:`DataError` with a one-line message when the file is missing and cannot be
    downloaded, is not an npz, lacks keys, or holds labels or shapes that do not fit the spec.
    """
    flag = spec.options.get("flag", spec.name)
    if spec.name in REFUSED or flag == "chestmnist":
        raise DataError(f"task {spec.name!r} is not supported: {_CHEST_REASON}")
    data_dir = Path(data_dir)
    file, md5, url = spec.options["file"], spec.options["md5"], spec.options["url"]
    hint = f"download it from {url} (md5 {md5}) into {data_dir}"
    path = locate(spec, data_dir)
    if path is None and not download:
        raise DataError(f"{file} not found in {data_dir} and downloading is off: {hint}")
    if path is None:
        target = data_dir / file
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(
                f"{file} not found and data folder {data_dir} cannot be created ({exc.strerror}): {hint}"
            ) from None
        try:
            _download(spec, data_dir)
        except ImportError:
            raise DataError(f"{file} not found in {data_dir} and could not be downloaded "
                            f"(the medmnist package is not installed): {hint}") from None
        except Exception as exc:  # noqa: BLE001 - network, DNS, HTTP, disk: all end the same way
            if target.exists() and not verify_md5(target, md5):
                target.unlink()  # a partial file would be mistaken for the real one next time
            kind = "no network?" if isinstance(exc, OSError) else type(exc).__name__
            raise DataError(f"{file} not found in {data_dir} and could not be downloaded ({kind}): {hint}") from None
        path = locate(spec, data_dir)
        if path is None:
            raise DataError(f"{file} not found in {data_dir} after downloading it: {hint}")
    splits = read_npz(path, spec.name, spec.n_classes, require_val=True)
    _check_shape(spec, path, splits)
    return TaskData(spec=spec, splits=splits)


__all__ = [
    "MEDMNIST_2D", "REFUSED", "SIZES", "MedmnistSet", "download_url", "load_medmnist", "locate",
    "medmnist_spec", "medmnist_specs", "read_npz", "task_name", "verify_md5",
]
