"""Faults and bad input, tried as a user would: racing forks, a command killed
by SIGKILL, bad arguments at every public entry, damaged states and manifests, `seedtree
verify` on a real Lightning script, and Dask's default for the global RNGs."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import seedtree as st
from seedtree.runtime import ambient
from seedtree.runtime.state import STATE

TREE = st.SeedTree(20241010)


def seedtree_cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHASHSEED", "SEEDTREE_ENTROPY")}
    return subprocess.run(
        [sys.executable, "-m", "seedtree", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


# -- 1. forks from several threads at once -----------------------------------------------

FORK_RACE = r"""
import json, os, sys, threading
import numpy as np
import seedtree as st
from seedtree.runtime.controllers import unregister

# numpy's global RNG shows the race; without torch imported each fork is ~4x cheaper.
unregister("torch"), unregister("torch_cuda")
rounds, threads = int(sys.argv[1]), int(sys.argv[2])
st.seed_everything(2024)
report = []
for _ in range(rounds):
    barrier = threading.Barrier(threads)
    draws = [None] * threads

    def fork_and_draw(i):
        read_end, write_end = os.pipe()
        barrier.wait()                       # every thread forks at the same moment
        pid = os.fork()
        if pid == 0:
            os.write(write_end, np.random.random_sample(2).tobytes())
            os._exit(0)
        os.close(write_end)
        data = b""
        while len(data) < 16:
            chunk = os.read(read_end, 16 - len(data))
            if not chunk:
                break
            data += chunk
        os.close(read_end)
        os.waitpid(pid, 0)
        draws[i] = np.frombuffer(data, dtype=np.float64).tolist()

    workers = [threading.Thread(target=fork_and_draw, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    report.append(draws)
print(json.dumps(report))
"""


@pytest.mark.slow
def test_threads_forking_at_once_never_share_a_stream(tmp_path: Path) -> None:
    rounds, threads = 100, 16
    script = tmp_path / "race.py"
    script.write_text(FORK_RACE)
    proc = subprocess.run(
        [sys.executable, str(script), str(rounds), str(threads)], capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    duplicated_rounds = sum(len({tuple(d) for d in draws}) != threads for draws in report)
    assert duplicated_rounds == 0, f"{duplicated_rounds} of {rounds} rounds had two children on one stream"
    # Each fork took its own n: the children drew exactly root / "fork" / n for n = 0..1599,
    # whichever child got which n.
    got = {tuple(d) for draws in report for d in draws}
    want = set()
    with st.isolate():
        for n in range(rounds * threads):
            st.seed_globals(st.SeedTree(2024) / "fork" / n, import_missing=["numpy"])
            want.add(tuple(np.random.random_sample(2).tolist()))
    assert got == want


# -- 2. `seedtree run` when the command dies of SIGKILL ----------------------------------


def test_a_command_killed_by_sigkill_exits_137_and_is_recorded(tmp_path: Path) -> None:
    proc = seedtree_cli("run", "--seed", "1", "--record", "m.json", "--", "sh", "-c", "kill -9 $$", cwd=tmp_path)
    assert proc.returncode == 137, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    run = st.Manifest.load(tmp_path / "m.json").fields["run"]
    assert run["signal"] == "SIGKILL" and run["exit_status"] is None


def test_signals_a_process_cannot_raise_on_itself_are_left_to_the_exit_status() -> None:
    code = (
        "import signal\n"
        "from seedtree.cli.run import die_by_signal\n"
        "for sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTSTP, signal.SIGCHLD, signal.SIGCONT):\n"
        "    die_by_signal(sig)\n"
        "print('alive')\n"
        "die_by_signal(signal.SIGTERM)\n"
        "print('not reached')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["alive"], proc.stderr
    assert proc.returncode == -signal.SIGTERM


# -- 3. validation at every public entry -------------------------------------------------


def _one(x: Any) -> Any:
    return x


def _entries() -> list[tuple[str, Callable[[], Any], type[Exception], str]]:
    from seedtree import audit, ranks, threads
    from seedtree import pool as st_pool
    from seedtree.runtime.seeding import bind_process

    out: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
        ("run_threads n=-1", lambda: threads.run_threads(_one, TREE, -1), ValueError, "n .*>= 0, got -1"),
        ("run_threads n=2.0", lambda: threads.run_threads(_one, TREE, 2.0), TypeError, "n .*float"),
        ("run_threads n=True", lambda: threads.run_threads(_one, TREE, True), TypeError, "n .*bool"),
        ("run_threads fn", lambda: threads.run_threads(3, TREE, 2), TypeError, "target must be a callable"),
        ("run_threads tree", lambda: threads.run_threads(_one, 42, 2), TypeError, "tree must be a seedtree.SeedTree"),
        ("Thread target", lambda: threads.Thread(TREE, target=None), TypeError, "target must be a callable"),
        ("Thread node", lambda: threads.Thread(1, target=_one), TypeError, "node must be a seedtree.SeedTree"),
        (
            "keyed_map executor",
            lambda: st_pool.keyed_map("x", _one, [1], TREE),
            TypeError,
            "executor must be a concurrent.futures.Executor",
        ),
        ("initializer tree", lambda: st_pool.initializer(42), TypeError, "tree must be a seedtree.SeedTree"),
        ("initializer then", lambda: st_pool.initializer(TREE, then=3), TypeError, "then .*callable"),
        (
            "initializer then_args",
            lambda: st_pool.initializer(TREE, then=_one, then_args=[1]),
            TypeError,
            "then_args must be a tuple",
        ),
        ("pool.worker_node", lambda: st_pool.worker_node("tree"), TypeError, "tree must be a seedtree.SeedTree"),
        ("rank_tree", lambda: ranks.rank_tree(7), TypeError, "tree must be a seedtree.SeedTree"),
        ("audit_pool tasks", lambda: audit.audit_pool(None, tasks=0), ValueError, "tasks must be an int >= 1"),
        ("audit_loader", lambda: audit.audit_loader(3), TypeError, "make_loader must be a callable"),
        ("bind_process", lambda: bind_process(42), TypeError, "SeedTree"),
        ("capture str", lambda: st.capture("numpy"), TypeError, "list of library names"),
        ("record node", lambda: st.record("x", "notatree"), TypeError, "needs a SeedTree node"),
        ("record name", lambda: st.record("", TREE), TypeError, "non-empty str name"),
        ("Manifest stream", lambda: st.Manifest(TREE, {"a": "x"}), TypeError, "str names to SeedTree nodes"),
        ("Manifest root", lambda: st.Manifest(42), TypeError, "root must be a SeedTree"),
        ("Manifest.collect", lambda: st.Manifest.collect(5), TypeError, "needs a SeedTree root"),
    ]
    try:
        from seedtree.joblib import parallel_map
    except ImportError:
        pass
    else:
        out += [
            ("parallel_map fn", lambda: parallel_map(3, [1], TREE), TypeError, "fn must be a callable"),
            ("parallel_map tree", lambda: parallel_map(_one, [1], 3), TypeError, "tree must be a seedtree.SeedTree"),
            ("parallel_map items", lambda: parallel_map(_one, "abc", TREE), TypeError, "not a single str"),
        ]
    try:
        import seedtree.dask as st_dask
    except ImportError:
        pass
    else:
        out += [
            (
                "client_map client",
                lambda: st_dask.client_map("x", _one, [1], TREE),
                TypeError,
                "client must be a distributed.Client",
            ),
            ("delayed_map start", lambda: st_dask.delayed_map(_one, [1], TREE, start=-1), ValueError, "start"),
            ("delayed_map fn", lambda: st_dask.delayed_map(None, [1], TREE), TypeError, "fn must be a callable"),
            ("dask worker_node", lambda: st_dask.worker_node(1, "w"), TypeError, "tree must be a seedtree.SeedTree"),
            ("worker_plugin", lambda: st_dask.worker_plugin(1), TypeError, "tree must be a seedtree.SeedTree"),
        ]
    return out


ENTRIES = _entries()


@pytest.mark.parametrize(("call", "error", "message"), [e[1:] for e in ENTRIES], ids=[e[0] for e in ENTRIES])
def test_bad_arguments_are_refused_with_one_clear_line(
    call: Callable[[], Any], error: type[Exception], message: str, clean_seedtree: None
) -> None:
    before = _all_states()
    with pytest.raises(error, match=message) as info:
        call()
    assert "\n" not in str(info.value)
    assert _all_states() == before  # a refused call changed nothing
    assert "x" not in STATE.recorded()


def test_keyed_map_checks_every_argument_before_submitting() -> None:
    from seedtree.pool import keyed_map

    with ThreadPoolExecutor(2) as ex:
        with pytest.raises(TypeError, match="fn must be a callable"):
            keyed_map(ex, 42, [1], TREE)
        with pytest.raises(TypeError, match="tree must be a seedtree.SeedTree"):
            keyed_map(ex, _one, [1], 42)
        with pytest.raises(TypeError, match="not a single str"):
            keyed_map(ex, _one, "abc", TREE)
        assert keyed_map(ex, _one, [1, 2], TREE) == [1, 2]


def test_run_threads_with_no_threads_is_an_empty_list() -> None:
    from seedtree.threads import run_threads

    assert run_threads(_one, TREE, 0) == []


def test_a_refused_record_leaves_the_next_manifest_writable(tmp_path: Path, clean_seedtree: None) -> None:
    st.record("good", TREE / "good")
    with pytest.raises(TypeError):
        st.record("x", "notatree")  # type: ignore[arg-type]
    st.manifest(TREE).save(tmp_path / "m.json")  # used to die with an AttributeError here
    assert set(st.Manifest.load(tmp_path / "m.json").streams) == {"good"}


# -- 3. restore: damaged or foreign states change nothing --------------------------------


def _all_states() -> dict[str, Any]:
    """Every RNG state a failed restore must leave alone, compared by value."""
    torch = sys.modules.get("torch")
    snap = ambient.snapshot()
    return {
        "random": random.getstate(),
        "numpy": repr(np.random.get_state(legacy=False)),
        "torch": None if torch is None else torch.get_rng_state().tolist(),
        "ambient": (snap["default"], snap["node"], repr(snap["state"])),
    }


def _damage(part: str) -> Callable[[dict[str, Any]], None]:
    def torch_short(s: dict[str, Any]) -> None:
        s["torch"] = s["torch"][:100]

    def torch_bytes(s: dict[str, Any]) -> None:
        s["torch"] = [300] * 10

    def numpy_word(s: dict[str, Any]) -> None:
        s["numpy"]["key"][5] = 2**40

    def numpy_pos(s: dict[str, Any]) -> None:
        s["numpy"]["pos"] = 625

    def random_short(s: dict[str, Any]) -> None:
        s["random"]["internal"] = s["random"]["internal"][:10]

    def random_version(s: dict[str, Any]) -> None:
        s["random"]["version"] = 2

    def ambient_node(s: dict[str, Any]) -> None:
        s["ambient"]["node"] = {"entropy": "-1", "path": []}

    def ambient_gen(s: dict[str, Any]) -> None:
        s["ambient"]["state"] = {"bit_generator": "MT19937", "state": {}}

    def foreign_lib(s: dict[str, Any]) -> None:
        s["tensorflow"] = {"seed": 1}

    def foreign_format(s: dict[str, Any]) -> None:
        s["format"] = "something-else/1"

    return {
        f.__name__: f
        for f in (
            torch_short,
            torch_bytes,
            numpy_word,
            numpy_pos,
            random_short,
            random_version,
            ambient_node,
            ambient_gen,
            foreign_lib,
            foreign_format,
        )
    }[part]


DAMAGES = [
    "torch_short",
    "torch_bytes",
    "numpy_word",
    "numpy_pos",
    "random_short",
    "random_version",
    "ambient_node",
    "ambient_gen",
    "foreign_lib",
    "foreign_format",
]


@pytest.mark.parametrize("damage", DAMAGES)
def test_restore_of_a_damaged_state_raises_valueerror_and_changes_nothing(damage: str, clean_seedtree: None) -> None:
    torch = pytest.importorskip("torch")
    st.seed_everything(5)
    st.rng().random(3)  # the ambient generator has a state of its own
    state = st.capture()
    state["torch"] = state["torch"].tolist()  # as a JSON round trip gives it back
    # Move every generator on, so that a partial restore would show.
    random.random(), np.random.random(), torch.rand(1), st.rng().random()
    _damage(damage)(state)
    before = _all_states()
    with pytest.raises(ValueError, match="RNG state|seedtree RNG state|registered binding") as info:
        st.restore(state)
    assert "\n" not in str(info.value)
    assert _all_states() == before


def test_restore_of_a_good_state_still_restores_everything(clean_seedtree: None) -> None:
    st.seed_everything(6)
    state = json.loads(json.dumps({k: v for k, v in st.capture().items() if k != "torch"}))
    a = (random.random(), float(np.random.random()), float(st.rng().random()))
    st.restore(state)
    assert (random.random(), float(np.random.random()), float(st.rng().random())) == a


# -- 4. every manifest entry is checked --------------------------------------------------


def _saved_manifest(tmp_path: Path) -> dict[str, Any]:
    root = st.SeedTree(123456789)
    manifest = st.Manifest(root, {"model/init": root / "model" / 7, "data": st.SeedTree(99) / "aug" / b"\x01"})
    manifest.save(tmp_path / "m.json")
    return json.loads((tmp_path / "m.json").read_text())


def _flip(text: str) -> str:
    """``text`` with its last digit changed."""
    i = max(i for i, c in enumerate(text) if c.isdigit())
    return text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1 :]


@pytest.mark.parametrize("where", ["entropy", "int key", "str key", "bytes key", "check"])
def test_a_flipped_digit_in_a_stream_gives_manifesterror_naming_it(tmp_path: Path, where: str) -> None:
    data = _saved_manifest(tmp_path)
    name = "data" if where == "bytes key" else "model/init"
    entry = data["streams"][name]
    if where == "entropy":
        entry["entropy"] = _flip(entry["entropy"])
    elif where == "int key":
        entry["path"][-1] += 1
    elif where == "str key":
        entry["path"][0] = "modal"
    elif where == "bytes key":
        entry["path"][-1]["bytes"] = "02"
    else:
        data["checks"]["streams"][name] = _flip(data["checks"]["streams"][name])
    (tmp_path / "m.json").write_text(json.dumps(data))
    with pytest.raises(st.ManifestError, match=f"stream {name!r} is damaged") as info:
        st.Manifest.load(tmp_path / "m.json")
    assert "\n" not in str(info.value)


def test_a_stream_without_its_check_or_a_check_without_its_stream_is_refused(tmp_path: Path) -> None:
    data = _saved_manifest(tmp_path)
    del data["checks"]["streams"]["data"]
    (tmp_path / "m.json").write_text(json.dumps(data))
    with pytest.raises(st.ManifestError, match="stream 'data' has no check"):
        st.Manifest.load(tmp_path / "m.json")
    data = _saved_manifest(tmp_path)
    del data["streams"]["data"]
    (tmp_path / "m.json").write_text(json.dumps(data))
    with pytest.raises(st.ManifestError, match="names the stream 'data', which is missing"):
        st.Manifest.load(tmp_path / "m.json")


def test_an_intact_manifest_round_trips(tmp_path: Path) -> None:
    _saved_manifest(tmp_path)
    loaded = st.Manifest.load(tmp_path / "m.json")
    assert loaded.streams["data"] == st.SeedTree(99) / "aug" / b"\x01"
    assert loaded.streams["model/init"] == st.SeedTree(123456789) / "model" / 7


# -- 5. `seedtree verify` on a real Lightning script --------------------------------------

LIGHTNING = """
import sys
import torch
import lightning as L
import seedtree as st


class Model(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, _):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


if sys.argv[1:] == ["--unseeded"]:
    torch.seed()              # deliberately: a fresh, unrecorded seed every run
else:
    st.seed_everything()      # the root seedtree verify hands over
x = torch.randn(32, 4)
data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8,
                                   shuffle=True)
# The default ModelCheckpoint writes <cwd>/checkpoints/epoch=0-step=4.ckpt, holding its
# absolute dirpath.
trainer = L.Trainer(max_epochs=1, accelerator="cpu", enable_progress_bar=False, logger=False,
                    enable_model_summary=False)
trainer.fit(Model(), data)
"""


@pytest.mark.slow
def test_verify_passes_a_seeded_lightning_script_and_fails_an_unseeded_one(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    (tmp_path / "train.py").write_text(LIGHTNING)
    proc = seedtree_cli(
        "verify", "--seed", "7", "--no-root-check", "-o", "checkpoints", "--", sys.executable, "train.py", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("REPRODUCIBLE"), proc.stdout
    proc = seedtree_cli(
        "verify",
        "--seed",
        "7",
        "--no-root-check",
        "-o",
        "checkpoints",
        "--",
        sys.executable,
        "train.py",
        "--unseeded",
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith("NOT REPRODUCIBLE"), proc.stdout
    assert "checkpoints/epoch=0-step=4.ckpt (try 1 vs try 2): tensor at ['state_dict']['layer." in proc.stdout


def test_torch_files_with_equal_contents_compare_equal_and_name_the_first_key(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from seedtree.cli.compare import compare_files

    a, b = tmp_path / "a.ckpt", tmp_path / "b.ckpt"
    w = torch.arange(6.0).reshape(2, 3)
    torch.save({"state_dict": {"w": w}, "score": float("nan")}, a)
    torch.save({"state_dict": {"w": w.clone()}, "score": float("nan")}, b, _use_new_zipfile_serialization=False)
    assert a.read_bytes() != b.read_bytes()
    assert compare_files(a, b) is None  # same contents, another encoding
    w2 = w.clone()
    w2[1, 2] = -1
    torch.save({"state_dict": {"w": w2}, "score": float("nan")}, b)
    assert (
        compare_files(a, b)
        == "tensor at ['state_dict']['w'] element [1, 2] differs: 5.0 vs -1.0 (1 of 6 elements differ)"
    )
    torch.save({"state_dict": {"w": w}, "score": 0.5, "dirpath": "/tmp/elsewhere"}, b)
    assert compare_files(a, b).startswith("keys: ['dirpath']")


def test_every_try_runs_at_the_same_absolute_path(tmp_path: Path) -> None:
    from seedtree.cli.verify import verify

    (tmp_path / "where.py").write_text("import os\nopen('out.txt', 'w').write(os.getcwd())\n")
    result = verify(
        [sys.executable, "where.py"],
        outputs=["out.txt"],
        tries=3,
        root=st.SeedTree(1),
        other_root=False,
        keep=True,
        cwd=tmp_path,
    )
    try:
        places = {(t.workdir / "out.txt").read_text() for t in result.tries}
        assert len(places) == 1 and result.ok, result.summary()
    finally:
        assert result.kept is not None
        import shutil

        shutil.rmtree(result.kept)


# -- 6. Dask binds the global RNGs by default where each worker is one thread ------------


def _dask_draw(x: int) -> tuple[int, float, float]:
    return x, float(np.random.random_sample()), float(st.rng().random())


def _dask_expected(n: int) -> list[tuple[int, float, float]]:
    out = []
    with st.isolate():
        for k in range(n):
            st.seed_globals(TREE / k)
            out.append((k, float(np.random.random_sample()), float((TREE / k).numpy().random())))
    return out


@pytest.mark.slow
def test_dask_binds_the_globals_by_default_on_one_thread_worker_processes() -> None:
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    from seedtree.dask import client_map, delayed_map

    n = 6
    want = _dask_expected(n)
    with (
        LocalCluster(
            n_workers=1, processes=True, threads_per_worker=1, dashboard_address=":0", worker_dashboard_address=":0"
        ) as cl,
        Client(cl) as client,
    ):
        got = client.gather(client_map(client, _dask_draw, range(n), TREE))
    assert got == want
    import dask

    # the synchronous scheduler binds them too, and puts the caller's globals back
    before = _all_states()
    assert list(dask.compute(*delayed_map(_dask_draw, range(n), TREE), scheduler="sync")) == want
    assert _all_states() == before
    # where they cannot be bound (threads share them) the default leaves them alone, no error
    threaded = dask.compute(*delayed_map(_dask_draw, range(n), TREE), scheduler="threads", num_workers=2)
    assert [(x, a) for x, _, a in threaded] == [(x, a) for x, _, a in want]
    with (
        LocalCluster(
            n_workers=1, processes=False, threads_per_worker=2, dashboard_address=":0", worker_dashboard_address=":0"
        ) as cl,
        Client(cl) as client,
    ):
        got = client.gather(client_map(client, _dask_draw, range(n), TREE))
        assert [(x, a) for x, _, a in got] == [(x, a) for x, _, a in want]
        with pytest.raises(RuntimeError, match="runs 2 threads"):  # asking for them explicitly still refuses
            client.gather(client_map(client, _dask_draw, range(2), TREE, bind_globals=True))


def test_doctor_says_where_dask_cannot_bind_the_globals() -> None:
    pytest.importorskip("distributed")
    from seedtree.cli import doctor

    checks = {c["name"]: c for c in doctor.checks()}
    assert "one thread" in checks["Dask global RNGs"]["advice"]
    assert "multi-threaded workers" in checks["Dask global RNGs"]["advice"]
