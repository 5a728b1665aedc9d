"""Data loaders: IDX parsing and validation, .npz files, the bundled sets, and the errors for bad data."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from bmc.data import Dataset, find_fashion_mnist, load_dataset, read_idx
from bmc.diagnostics import DataError


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """Encode an array as IDX: magic (00 00 code rank), big-endian uint32 dims, big-endian data."""
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def write_idx_dir(directory: Path, n_train: int = 12, n_test: int = 5, gz: bool = False, dotted: bool = False) -> dict:
    """Write a tiny MNIST-layout directory of 4x3 images and return the arrays written."""
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 4, 3), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 4, 3), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(n_test, dtype=np.uint8) % 10,
    }
    directory.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        name = stem.replace("-idx", ".idx") if dotted else stem
        data = idx_bytes(array)
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return arrays


# --- IDX ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dotted", [False, True])
def test_idx_directory_round_trip(tmp_path: Path, gz: bool, dotted: bool) -> None:
    arrays = write_idx_dir(tmp_path / "set", gz=gz, dotted=dotted)
    ds = load_dataset(str(tmp_path / "set"))
    assert isinstance(ds, Dataset)
    assert ds.x_train.shape == (12, 4, 3) and ds.x_test.shape == (5, 4, 3)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64  # raw pixels, as the files store them
    np.testing.assert_array_equal(ds.x_train, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert ds.scale == 1 / 255 and ds.raw_format == "uint8 pixels 0..255"  # what a build records and applies
    assert ds.num_classes == 10
    assert ds.sample_shape == (4, 3)
    assert "12 train / 5 test, 4x3" in ds.description


@pytest.mark.parametrize(("code", "dtype"), [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32),
                                             (0x0D, np.float32), (0x0E, np.float64)])  # fmt: skip
def test_read_idx_dtypes(tmp_path: Path, code: int, dtype: type) -> None:
    array = np.arange(24).reshape(2, 3, 4).astype(dtype)
    (tmp_path / "a").write_bytes(idx_bytes(array, code))
    got = read_idx(tmp_path / "a")
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, array)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda b: b[:-1], "truncated"),
        (lambda b: b + b"\0", "trailing bytes"),
        (lambda b: b[:6], "truncated IDX header"),
        (lambda b: b"", "not an IDX file"),
        (lambda b: b"\x00\x01" + b[2:], "not an IDX file"),  # bad magic
        (lambda b: b[:2] + b"\x07" + b[3:], "not an IDX file"),  # unknown type code
        (lambda b: b"PK\x03\x04" + b[4:], "not an IDX file"),
        (lambda b: gzip.compress(b)[:-9], "corrupt or truncated gzip"),
        (lambda b: gzip.compress(b)[:12] + b"garbage" * 4, "corrupt or truncated gzip"),
    ],
)
def test_bad_idx_file_names_the_file(tmp_path: Path, mangle, message: str) -> None:
    write_idx_dir(tmp_path)
    bad = tmp_path / "t10k-images-idx3-ubyte"
    bad.write_bytes(mangle(bad.read_bytes()))
    with pytest.raises(DataError) as err:
        load_dataset(str(tmp_path))
    assert message in err.value.message
    assert "t10k-images-idx3-ubyte" in err.value.message


def test_idx_count_mismatch(tmp_path: Path) -> None:
    write_idx_dir(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(11, dtype=np.uint8)))
    with pytest.raises(DataError, match="has 11 labels but train-images-idx3-ubyte has 12 images"):
        load_dataset(str(tmp_path))


def test_idx_wrong_rank(tmp_path: Path) -> None:
    write_idx_dir(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((12, 12), dtype=np.uint8)))
    with pytest.raises(DataError, match=r"expected images of shape \[n, rows, cols\]"):
        load_dataset(str(tmp_path))


def test_idx_float_labels_rejected(tmp_path: Path) -> None:
    write_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(5, dtype=np.float32), 0x0D))
    with pytest.raises(DataError, match="expected integer class indices"):
        load_dataset(str(tmp_path))


def test_idx_train_test_image_shapes_must_match(tmp_path: Path) -> None:
    write_idx_dir(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((5, 3, 4), dtype=np.uint8)))
    with pytest.raises(DataError, match="train images are 4x3 but test images are 3x4"):
        load_dataset(str(tmp_path))


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_dataset(str(tmp_path))
    assert "no IDX files found" in err.value.message
    assert "train-images-idx3-ubyte[.gz]" in err.value.message
    assert any("apt-get install dataset-fashion-mnist" in note for note in err.value.notes)


def test_incomplete_directory(tmp_path: Path) -> None:
    write_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"missing t10k-labels-idx1-ubyte\[\.gz\]"):
        load_dataset(str(tmp_path))


# --- npz ---------------------------------------------------------------------------------------------------------


def test_npz_classification_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x_train, x_test = rng.normal(size=(20, 3, 2)), rng.normal(size=(6, 3, 2))
    y_train, y_test = rng.integers(0, 4, 20).astype(np.int32), np.array([0, 1, 2, 3, 6, 1], dtype=np.uint8)
    np.savez(tmp_path / "toy.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, extra=np.zeros(1))
    ds = load_dataset(str(tmp_path / "toy.npz"))
    assert ds.name == "toy"
    assert ds.x_train.dtype == np.float32 and ds.x_train.shape == (20, 3, 2)
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    np.testing.assert_allclose(ds.x_test, x_test.astype(np.float32))
    np.testing.assert_array_equal(ds.y_test, y_test)
    assert ds.num_classes == 7  # max label over train and test, plus one


def test_npz_regression(tmp_path: Path) -> None:
    np.savez_compressed(
        tmp_path / "reg.npz", x_train=np.ones((4, 2)), y_train=np.arange(4.0), x_test=np.ones((2, 2)), y_test=[0.5, 1]
    )
    ds = load_dataset(str(tmp_path / "reg.npz"))
    assert ds.num_classes is None and not ds.is_classification
    assert ds.y_train.dtype == np.float32 and ds.y_test.dtype == np.float32
    assert "regression" in ds.description


def test_npz_missing_keys_lists_found_keys(tmp_path: Path) -> None:
    np.savez(tmp_path / "bad.npz", x_train=np.ones((2, 1)), labels=np.zeros(2))
    with pytest.raises(DataError) as err:
        load_dataset(str(tmp_path / "bad.npz"))
    assert "missing array(s) y_train, x_test, y_test" in err.value.message
    assert any("found keys: x_train, labels" in note for note in err.value.notes)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": np.ones((3, 2)), "y_train": np.zeros(2, int)}, "x_train has 3 samples but y_train has 2"),
        ({"x_train": np.ones(3), "y_train": np.zeros(3, int)}, r"expected shape \[n, ...sample shape\]"),
        ({"x_test": np.ones((2, 3))}, "x_train samples have shape"),
        ({"y_test": np.zeros(2)}, "y_train is int64 but y_test is float64"),
        ({"y_train": np.array([0, -1, 1])}, "must be >= 0"),
        ({"y_train": np.array(["a", "b", "c"])}, "expected integer class indices or float targets"),
        ({"x_train": np.full((3, 2), np.nan)}, "NaN"),
        ({"x_test": np.ones((0, 2)), "y_test": np.zeros(0, int)}, "x_test has no samples"),
    ],
)
def test_npz_bad_arrays(tmp_path: Path, arrays: dict, message: str) -> None:
    base = {"x_train": np.ones((3, 2)), "y_train": np.zeros(3, int), "x_test": np.ones((2, 2)), "y_test": [0, 1]}
    np.savez(tmp_path / "d.npz", **{**base, **arrays})
    with pytest.raises(DataError, match=message):
        load_dataset(str(tmp_path / "d.npz"))


@pytest.mark.parametrize(
    "content",
    [b"not a zip file at all", b"PK\x03\x04broken", b""],
)
def test_npz_not_an_archive(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "d.npz").write_bytes(content)
    with pytest.raises(DataError, match="cannot read"):
        load_dataset(str(tmp_path / "d.npz"))


def test_npz_that_is_npy(tmp_path: Path) -> None:
    with open(tmp_path / "d.npz", "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(DataError, match=r"not a \.npz archive"):
        load_dataset(str(tmp_path / "d.npz"))


def test_npz_with_pickled_objects(tmp_path: Path) -> None:
    objects = np.array([{"a": 1}, None], dtype=object)
    np.savez(tmp_path / "d.npz", x_train=objects, y_train=[0, 1], x_test=objects, y_test=[0, 1])
    with pytest.raises(DataError, match="arrays of Python objects"):
        load_dataset(str(tmp_path / "d.npz"))


def test_npz_damaged_member(tmp_path: Path) -> None:
    base = {"x_train": np.ones((300, 2)), "y_train": np.zeros(300, int), "x_test": np.ones((2, 2)), "y_test": [0, 1]}
    np.savez(tmp_path / "d.npz", **base)
    raw = bytearray((tmp_path / "d.npz").read_bytes())
    raw[200:260] = b"\xff" * 60  # inside x_train's data: the zip CRC check fails on read
    (tmp_path / "d.npz").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="a member of the archive is damaged"):
        load_dataset(str(tmp_path / "d.npz"))


# --- specs -------------------------------------------------------------------------------------------------------


def test_unknown_spec_lists_accepted_specs() -> None:
    with pytest.raises(DataError) as err:
        load_dataset("cifar10")
    text = err.value.render()
    for accepted in ("digits", "diabetes", "breast_cancer", "fashion_mnist", "mnist", "IDX", ".npz"):
        assert accepted in text


@pytest.mark.parametrize("spec", ["no/such/dir", "missing.npz"])
def test_missing_path(spec: str) -> None:
    with pytest.raises(DataError, match="no such file or directory"):
        load_dataset(spec)


def test_existing_file_of_other_kind(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("1,2\n")  # a CSV file with a header and no rows
    with pytest.raises(DataError, match="expected a header row and at least one row of data"):
        load_dataset(str(tmp_path / "data.csv"))
    (tmp_path / "data.txt").write_text("1,2\n")
    with pytest.raises(DataError, match=r"expected a \.npz or \.csv file, or a directory of IDX files or images"):
        load_dataset(str(tmp_path / "data.txt"))


def test_mnist_explains_how_to_get_it() -> None:
    with pytest.raises(DataError) as err:
        load_dataset("mnist")
    assert "pass their directory" in err.value.message
    assert any("train-images-idx3-ubyte" in note for note in err.value.notes)


# --- built-in sets -----------------------------------------------------------------------------------------------


def test_digits() -> None:
    pytest.importorskip("sklearn", reason="the digits data set needs scikit-learn: `pip install scikit-learn`")
    ds = load_dataset("digits")
    assert ds.x_train.shape[1:] == (64,) and len(ds.x_train) + len(ds.x_test) == 1797
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 16.0 and ds.scale == 1 / 16  # raw pixels 0..16
    assert ds.num_classes == 10
    # 80/20 overall and per class (stratified).
    assert abs(len(ds.x_test) / 1797 - 0.2) < 0.01
    train_counts, test_counts = np.bincount(ds.y_train, minlength=10), np.bincount(ds.y_test, minlength=10)
    np.testing.assert_allclose(test_counts / (train_counts + test_counts), 0.2, atol=0.01)
    # Deterministic: loading again gives the same split.
    again = load_dataset("digits")
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    np.testing.assert_array_equal(ds.y_test, again.y_test)


def test_digits_split_is_a_partition() -> None:
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    from bmc.data.split import stratified_split

    y = sklearn_datasets.load_digits().target
    train, test = stratified_split(y)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(y)
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)  # sorted: original order kept


def test_breast_cancer() -> None:
    pytest.importorskip("sklearn", reason="needs scikit-learn: `pip install scikit-learn`")
    ds = load_dataset("breast_cancer")
    assert ds.x_train.shape[1:] == (30,) and len(ds.x_train) + len(ds.x_test) == 569
    assert ds.num_classes == 2 and set(np.unique(ds.y_train)) == {0, 1}
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, atol=1e-4)


def test_diabetes() -> None:
    pytest.importorskip("sklearn", reason="needs scikit-learn: `pip install scikit-learn`")
    ds = load_dataset("diabetes")
    assert ds.num_classes is None
    assert ds.x_train.shape[1:] == (10,) and len(ds.x_train) + len(ds.x_test) == 442
    assert ds.y_train.dtype == np.float32 and ds.y_train.ndim == 1
    assert abs(float(ds.y_train.mean())) < 1e-5 and abs(float(ds.y_train.std()) - 1.0) < 1e-4
    assert "target standardized" in ds.description


def test_missing_sklearn_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn...` raise ImportError
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DataError) as err:
        load_dataset("digits")
    assert "pip install scikit-learn" in err.value.render()


def test_fashion_mnist() -> None:
    if find_fashion_mnist() is None:
        pytest.skip("Fashion-MNIST is not installed: `apt-get install dataset-fashion-mnist`")
    ds = load_dataset("Fashion-MNIST")  # case and -/_ do not matter (one load: this is the slowest test)
    assert ds.name == "fashion_mnist"
    assert ds.x_train.shape == (60000, 28, 28) and ds.x_test.shape == (10000, 28, 28)
    assert ds.y_train.shape == (60000,) and ds.y_test.shape == (10000,)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64 and ds.scale == 1 / 255
    assert ds.num_classes == 10
    np.testing.assert_array_equal(np.bincount(ds.y_test), [1000] * 10)
    assert ds.description.startswith("Fashion-MNIST (IDX, ")


def test_fashion_mnist_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    from bmc.data import builtin

    monkeypatch.setattr(builtin, "find_fashion_mnist", lambda: None)
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion_mnist")


def test_fashion_mnist_found_through_dpkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relocated install is found from `dpkg -L`'s file list when no known directory has the files."""
    import subprocess

    from bmc.data import builtin

    write_idx_dir(tmp_path / "fm", gz=True)
    listing = f"/.\n{tmp_path}\n{tmp_path}/fm\n{tmp_path}/fm/train-images-idx3-ubyte.gz\n/usr/share/doc/x\n"
    fake = subprocess.CompletedProcess(["dpkg"], 0, stdout=listing, stderr="")
    monkeypatch.setattr(builtin, "FASHION_MNIST_DIRS", ())
    monkeypatch.setattr(builtin.subprocess, "run", lambda *args, **kwargs: fake)
    assert builtin.find_fashion_mnist() == tmp_path / "fm"
    assert load_dataset("fashion_mnist").x_train.shape == (12, 4, 3)

    monkeypatch.setattr(builtin.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(["dpkg"], 1, "", ""))
    assert builtin.find_fashion_mnist() is None
