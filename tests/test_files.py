"""Files and memory: a damaged or hostile agent file, a run too big for the machine, a GPU that is not there,
a full disk and a save killed mid-write each end in one DeepQError line, before anything is allocated, run
or lost. Real files, real torch.save, a real full filesystem (tmpfs) and real subprocesses."""

from __future__ import annotations

import collections
import errno
import math
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_errors import Exploit  # a pickle that runs code when loaded (pytest puts tests/ on sys.path)

import deepq
from deepq import CheckpointError, DeepQError
from deepq.agent import Agent
from deepq.files import atomic_save, safe_load

GB = 10**9


def tiny(tmp_path: Path, **kw: Any) -> deepq.Config:
    base: dict[str, Any] = dict(total_steps=64, learning_starts=16, batch_size=8, buffer_size=64, train_freq=4,
                                eval_interval=0, checkpoint_interval=0, run_dir=str(tmp_path / "run"),
                                progress=False, device="cpu")
    return deepq.Config(**(base | kw))


TINY_ARGS = ("--total_steps", "64", "--learning_starts", "16", "--batch_size", "8", "--train_freq", "4",
             "--eval_interval", "0", "--checkpoint_interval", "0", "--progress", "false")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deepq.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The CLI failed with exit 2 and exactly one line on stderr, `deepq: error: ...` (no traceback, no warning)."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("deepq: error: "), proc.stderr[-3000:]
    return lines[0]


# ---- agent files: non-finite or wrong-dtype weights, missing keys, absurd shapes ---------------------------

@pytest.fixture
def agent_file(tmp_path: Path) -> Path:
    path = tmp_path / "agent.pt"
    Agent((4,), 2, deepq.Config(hidden_sizes=(8,), device="cpu")).save(path)
    return path


def altered(agent_file: Path, change: Callable[[dict[str, Any]], None], name: str = "altered.pt") -> Path:
    """A real agent file, loaded, changed in one place and saved again with torch.save."""
    data = torch.load(agent_file, weights_only=True)
    change(data)
    path = agent_file.with_name(name)
    torch.save(data, path)
    return path


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.__setitem__(key, value)


def _config(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["config"].__setitem__(key, value)


def _tensor(key: str, make: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["online"].__setitem__(key, make(d["online"][key]))


def _poison(value: float) -> Callable[[torch.Tensor], torch.Tensor]:
    def make(t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        t.view(-1)[0] = value
        return t
    return make


# (what is changed, the change, what the one-line CheckpointError must say)
BAD_FILES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("nan-weight", _tensor("net.1.weight", _poison(math.nan)),
     r"tensor online\['net.1.weight'\] holds 1 NaN and 0 inf"),
    ("inf-bias", _tensor("net.3.bias", _poison(math.inf)), r"tensor online\['net.3.bias'\] holds 0 NaN and 1 inf"),
    ("float64-weight", _tensor("net.1.weight", lambda t: t.double()),
     r"tensor online\['net.1.weight'\] is float64; deepq writes float32"),
    ("int64-bias", _tensor("net.1.bias", lambda t: t.long()), r"tensor online\['net.1.bias'\] is int64"),
    ("wrong-shape", _tensor("net.1.weight", lambda t: torch.zeros(9, 4)),
     r"tensor online\['net.1.weight'\] has shape \[9, 4\]; the network its config builds has \[8, 4\]"),
    ("missing-tensor", lambda d: d["online"].pop("net.3.bias"), r"do not fit .*missing 'net.3.bias'"),
    ("extra-tensor", lambda d: d["online"].__setitem__("net.9.weight", torch.zeros(2)),
     r"do not fit .*unexpected 'net.9.weight'"),
    ("negative-obs_shape", _set("obs_shape", [-4]), r"obs_shape is \[-4\] \(list\).*positive integers"),
    ("float-obs_shape", _set("obs_shape", [4.0]), r"obs_shape is \[4.0\]"),
    ("string-obs_shape", _set("obs_shape", "4"), r"obs_shape is '4' \(str\)"),
    ("astronomic-obs_shape", _set("obs_shape", [2**40, 2**40]), r"obs_shape is .*at most 2\*\*40 values"),
    ("float-n_actions", _set("n_actions", 1e10), r"n_actions is 10000000000.0 \(float\); .*positive integer"),
    ("zero-n_actions", _set("n_actions", 0), r"n_actions is 0 \(int\)"),
    ("huge-n_actions", _set("n_actions", 10**10),
     r"10,000,000,000 actions\) needs ~\d+ [GT]B for the Q-network and its target copy \(.* parameters\); this "),
    ("huge-hidden_sizes", _config("hidden_sizes", [2**20, 2**20]),
     r"its network \(hidden_sizes=\[1048576, 1048576\], 2 actions\) needs ~[\d.]+ TB .*; this machine has "),
    ("invalid-config", _config("gamma", 1.5), r"its config is not valid \(gamma=1.5 is not valid"),
    ("unknown-config-field", _config("bogus", 1), r"its config is not valid \(unknown config field\(s\) \['bogus'\]"),
    ("int-hidden_sizes", _config("hidden_sizes", 5), r"its config's hidden_sizes is 5 \(int\)"),
    ("impossible-arch", _config("arch", "nature_cnn"), r"do not make a network \(arch='nature_cnn' needs image"),
    ("config-not-a-dict", _set("config", [1, 2]), r"config is \[1, 2\] \(list\)"),
    ("online-not-a-dict", _set("online", [1]), r"online is \[1\] \(list\)"),
    ("no-online", lambda d: d.pop("online"), r"has no 'online' entry"),
    ("no-obs_shape", lambda d: d.pop("obs_shape"), r"has no 'obs_shape' entry"),
    ("no-config", lambda d: d.pop("config"), r"has no 'config' entry"),
]


@pytest.mark.parametrize(("change", "says"), [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES])
def test_a_bad_agent_file_is_one_checkpoint_error_naming_it(agent_file: Path, change: Callable[[dict[str, Any]], None],
                                                            says: str) -> None:
    path = altered(agent_file, change)
    with pytest.raises(CheckpointError, match=says) as err:
        deepq.load(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    deepq.load(agent_file)  # control: the same file before the change loads


def test_eval_of_nan_weights_is_one_line_not_a_score(agent_file: Path, tmp_path: Path) -> None:
    path = altered(agent_file, _tensor("net.1.weight", _poison(math.nan)), "nan_weights.pt")
    line = one_error_line(cli("eval", str(path), "--env", "CartPole-v1", "--episodes", "1", cwd=tmp_path))
    assert f"{path}: tensor online['net.1.weight'] holds 1 NaN" in line


def test_a_custom_network_file_is_checked_against_the_built_network(tmp_path: Path) -> None:
    def factory(obs_shape: tuple[int, ...], n_actions: int) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(obs_shape[0], n_actions))

    path = tmp_path / "custom.pt"
    Agent((4,), 2, deepq.Config(network=factory, device="cpu")).save(path)
    bad = altered(path, _tensor("0.weight", _poison(math.nan)), "custom_nan.pt")
    with pytest.raises(CheckpointError, match=r"tensor online\['0.weight'\] holds 1 NaN"):
        deepq.load(bad, network=factory)
    assert deepq.load(path, network=factory).q_values(np.zeros(4, np.float32)).shape == (2,)


# ---- devices -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("device", ["cuda", "cuda:N"])
def test_a_cuda_device_torch_cannot_see_is_one_line(tmp_path: Path, device: str) -> None:
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA: --device cuda is fine here")
    if device == "cuda:N":
        device = f"cuda:{torch.cuda.device_count() + 1}"
    line = one_error_line(cli("train", "CartPole-v1", *TINY_ARGS, "--buffer_size", "64", "--device", device,
                              "--run_dir", str(tmp_path / "run"), cwd=tmp_path))
    assert f"device='{device}' but torch sees " in line and "cpu or auto" in line


# ---- saving: permissions, a full disk, a save killed mid-write -----------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_saved_files_get_the_umask_permissions(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        atomic_save({"x": torch.zeros(3)}, tmp_path / "x.pt")
        Agent((4,), 2, deepq.Config(hidden_sizes=(8,), device="cpu")).save(tmp_path / "agent.pt")
        assert os.umask(umask) == umask  # reading it left it as it was
    finally:
        os.umask(old)
    for name in ("x.pt", "agent.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB filesystem (tmpfs), unmounted afterwards; needs root."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def fill(folder: Path) -> None:
    """Write a file until the disk is full."""
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC


def test_a_full_disk_keeps_the_previous_file_and_says_so(tiny_disk: Path) -> None:
    from deepq.errors import DiskFullError

    path = tiny_disk / "agent.pt"
    Agent((4,), 2, deepq.Config(hidden_sizes=(8,), device="cpu")).save(path)
    before = path.read_bytes()
    fill(tiny_disk)
    with pytest.raises(DeepQError) as err:
        Agent((4,), 2, deepq.Config(hidden_sizes=(256, 256), device="cpu")).save(path)  # ~280 kB, no room
    msg = str(err.value)
    assert isinstance(err.value, DiskFullError) and isinstance(err.value, OSError)
    assert err.value.errno == errno.ENOSPC and "\n" not in msg
    assert msg.startswith(f"No space left on device writing {path}; the previous agent.pt is intact")
    assert err.value.__cause__ is None and err.value.__suppress_context__  # one error, not a chain of two
    assert path.read_bytes() == before and deepq.load(path).cfg.hidden_sizes == (8,)
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["agent.pt", "filler"]  # no temp file left


def test_a_full_disk_with_no_previous_file_says_nothing_was_kept(tiny_disk: Path) -> None:
    fill(tiny_disk)
    with pytest.raises(OSError, match="no earlier version of it existed") as err:
        atomic_save({"w": torch.zeros(100_000)}, tiny_disk / "checkpoint.pt")
    assert isinstance(err.value, DeepQError)
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]


SAVER = """
import sys, torch
from deepq.files import atomic_save
big = torch.arange(16_000_000, dtype=torch.float32)  # 64 MB: each save takes a while
step = 0
atomic_save({"step": step, "w": big}, sys.argv[1])
print("saved", flush=True)
while True:
    step += 1
    atomic_save({"step": step, "w": big}, sys.argv[1])
"""


def test_a_save_killed_mid_write_leaves_a_temp_file_that_is_then_removed(tmp_path: Path) -> None:
    from deepq.files import remove_stale_temp_files

    folder = tmp_path / "run"
    folder.mkdir()
    target = folder / "checkpoint.pt"
    keep = [folder / "notes.tmp", folder / ".hidden", folder / ".checkpoint.pt.backup"]  # not atomic_save's
    for p in keep:
        p.write_text("mine")
    leftovers: list[Path] = []
    for _ in range(20):  # the kill must land while a temp file exists (nearly all the time, by design)
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(target)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "saved"
        deadline = time.monotonic() + 30
        while not list(folder.glob(".checkpoint.pt.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        leftovers = sorted(folder.glob(".checkpoint.pt.*.tmp"))
        if leftovers:
            break
    assert proc.returncode == -signal.SIGKILL and len(leftovers) == 1
    assert torch.load(target, weights_only=True)["w"].shape == (16_000_000,)  # the last whole save is intact

    assert remove_stale_temp_files(folder) == leftovers
    assert sorted(folder.iterdir()) == sorted([*keep, target])  # only atomic_save's leftover went
    assert all(p.read_text() == "mine" for p in keep)
    assert remove_stale_temp_files(folder) == [] and remove_stale_temp_files(folder / "missing") == []


# ---- loading: hostile pickles are named as such, and no message stops mid-sentence ----------------------



class Shell:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, ("echo pwned",)


def _ends_whole(msg: str) -> None:
    """One line that ends with deepq's own closing sentence, with none of torch's long text cut into it."""
    assert "\n" not in msg and msg.endswith("Use a file written by deepq, or train again to produce one.")
    assert "Weights only load failed" not in msg and "PyTorch 2.6" not in msg


@pytest.mark.parametrize("payload", ["exploit", "os.system", "os.system-protocol-0"])
def test_a_malicious_pickle_is_named_as_python_objects_refused_unrun(tmp_path: Path, payload: str) -> None:
    marker, path = tmp_path / "marker.txt", tmp_path / "evil.pt"
    if payload == "exploit":
        torch.save(Exploit(marker), path)
    elif payload == "os.system":
        torch.save(Shell(), path)
    else:
        path.write_bytes(pickle.dumps(Shell(), protocol=0))
    with pytest.raises(CheckpointError) as err:
        deepq.load(path)
    msg = str(err.value)
    assert "holds pickled Python objects (" in msg and "which deepq never writes" in msg
    assert "refused without running anything" in msg and "corrupt" not in msg
    _ends_whole(msg)
    assert not marker.exists()


def test_a_plain_pickle_is_refused_unrun_without_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"format": "deepq-agent", "n": collections.OrderedDict()}, protocol=4))
    line = one_error_line(cli("eval", str(path), cwd=tmp_path))  # torch's protocol-4 UserWarning is not printed
    assert "plain Python pickle" in line and "refused without running anything" in line


@pytest.mark.parametrize("damage", ["truncated", "random-bytes", "empty"])
def test_a_damaged_file_is_corrupt_in_whole_sentences(agent_file: Path, damage: str) -> None:
    data = agent_file.read_bytes()
    agent_file.write_bytes({"truncated": data[: len(data) // 2], "random-bytes": np.random.default_rng(0).bytes(4096),
                            "empty": b""}[damage])
    with pytest.raises(CheckpointError) as err:
        safe_load(agent_file, "deepq-agent")
    msg = str(err.value)
    _ends_whole(msg)
    assert "corrupt or truncated" in msg and "Python objects" not in msg
