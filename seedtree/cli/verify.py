"""``seedtree verify``: run a command several times with one root and check its outputs match.

Working copies. Each try runs in a fresh folder that mirrors the current folder with
symlinks (cheap even next to a large data set), except for the named outputs: an output
starts absent (an output that is a folder here starts as an empty folder) and every
folder above an output is a real folder, so what a try writes to its outputs lands in its
own copy. Anything the command writes elsewhere goes through the symlinks to the real
files, exactly as if it ran here: name every path it writes as an output.

One place for every try. The tries run one after the other, each at the *same* absolute
path (``<tmp>/seedtree-verify-XXXX/run``); when a try ends its folder is moved aside to
``try-N``. So an output that records where it was written (a Lightning checkpoint holds its
``dirpath``, logs hold absolute paths) is the same in every try, and a difference always
means the command itself behaved differently.

Verdict. Try 1's outputs are compared with every other try's (content hash; arrays and
torch files, ``.pt``/``.pth``/``.ckpt``, element by element, see ``seedtree.cli.compare``).
Without outputs the command's stdout is compared. Then one more try runs with a different
root: if its outputs equal try 1's, the seed is not reaching the code, which is reported
(``seed_effect`` False).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..core.tree import SeedTree
from . import run as runner
from .compare import Difference, compare, tree_digest

__all__ = ["STDOUT", "Try", "VerifyError", "VerifyResult", "junit_xml", "make_workspace", "verify", "write_junit"]

STDOUT = "<stdout>"


class VerifyError(ValueError):
    """Bad arguments to ``verify`` (e.g. an output path outside the current folder)."""


@dataclass
class Try:
    """One run of the command: with which root, how it ended, and ``workdir``, where its
    working copy is kept once it ended (every try runs at the verify run's one path)."""

    label: str
    root: SeedTree
    workdir: Path
    returncode: int = 0
    stderr_tail: str = ""

    def output(self, name: str) -> Path:
        return self.workdir.parent / f"{self.workdir.name}.stdout" if name == STDOUT else self.workdir / name


@dataclass
class VerifyResult:
    """The verdict. ``ok``: every try succeeded and matched try 1. ``seed_effect``: whether a
    different root changed the outputs (None when not checked or that try failed)."""

    ok: bool
    outputs: list[str]
    tries: list[Try]
    mismatches: list[Difference] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)
    seed_effect: bool | None = None
    kept: Path | None = None

    def summary(self) -> str:
        """What a person reads: the verdict first, then the evidence."""
        n = sum(1 for t in self.tries if t.label.startswith("try"))
        lines = []
        if self.failures:
            lines.append(f"NOT VERIFIED: {len(self.failures)} of the runs failed")
            lines.extend(f"  {f}" for f in self.failures)
        elif self.mismatches:
            lines.append(f"NOT REPRODUCIBLE: outputs differ between runs with the same root ({n} tries)")
            lines.extend(f"  {d}" for d in self.mismatches[:20])
            if len(self.mismatches) > 20:
                lines.append(f"  ... and {len(self.mismatches) - 20} more")
        else:
            lines.append(f"REPRODUCIBLE: {n} tries with root {self.tries[0].root.entropy} gave identical outputs")
            lines.extend(f"  {name}  sha256 {digest}" for name, digest in self.digests.items())
        if self.seed_effect is False:
            lines.append(
                "WARNING: a different root gave identical outputs: the seed is not reaching the code "
                "(call seedtree.seed_everything() or use seedtree.root_from_env() in the command)"
            )
        if self.kept is not None:
            lines.append(f"tries kept in {self.kept}")
        return "\n".join(lines)


def _check_outputs(outputs: Sequence[str]) -> list[str]:
    names = []
    for text in outputs:
        path = PurePosixPath(text.replace(os.sep, "/"))
        if path.is_absolute() or ".." in path.parts or not path.parts or path == PurePosixPath("."):
            raise VerifyError(
                f"--output {text!r} must be a path inside the current folder (relative, no '..'), "
                "so that each try can write its own copy"
            )
        names.append(path.as_posix())
    return names


def make_workspace(project: Path, outputs: Sequence[str], dest: Path) -> None:
    """Fill the empty folder ``dest`` with a symlink mirror of ``project`` in which the
    ``outputs`` are absent (folders: empty) and their parent folders are real."""
    outs = {PurePosixPath(o) for o in outputs}
    parents = {p for o in outs for p in o.parents if p != PurePosixPath(".")}

    def mirror(src: Path, dst: Path, rel: PurePosixPath) -> None:
        for entry in sorted(os.scandir(src), key=lambda e: e.name):
            item = rel / entry.name
            if item in outs:
                if entry.is_dir():
                    (dst / entry.name).mkdir()
            elif item in parents and entry.is_dir():
                (dst / entry.name).mkdir()
                mirror(Path(entry.path), dst / entry.name, item)
            else:
                os.symlink(os.path.abspath(entry.path), dst / entry.name)

    mirror(project, dest, PurePosixPath("."))
    for out in outs:
        (dest / out).parent.mkdir(parents=True, exist_ok=True)


def _run_try(argv: Sequence[str], attempt: Try, project: Path, outputs: Sequence[str], place: Path) -> None:
    """Run one try at ``place`` (the same path for every try), then move its folder to
    ``attempt.workdir``."""
    place.mkdir()
    try:
        make_workspace(project, outputs, place)
        env = runner.child_environment(attempt.root)
        env["PWD"] = str(place)
        out_path = attempt.output(STDOUT)
        err_path = attempt.workdir.parent / f"{attempt.workdir.name}.stderr"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = runner.start(argv, cwd=place, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            attempt.returncode = proc.wait()
    finally:
        if place.exists():
            os.rename(place, attempt.workdir)
        else:  # the command removed its own folder
            attempt.workdir.mkdir()
    if attempt.returncode != 0:
        tail = err_path.read_bytes()[-2000:].decode("utf-8", "replace").strip().splitlines()[-5:]
        attempt.stderr_tail = "\n".join(tail)


def _failure(attempt: Try) -> str:
    how = (
        f"killed by signal {-attempt.returncode}"
        if attempt.returncode < 0
        else f"exited with status {attempt.returncode}"
    )
    text = f"{attempt.label} {how}"
    if attempt.stderr_tail:
        text += " ; last stderr lines:\n" + "\n".join(f"      {line}" for line in attempt.stderr_tail.splitlines())
    return text


def _missing(attempt: Try, outputs: Sequence[str]) -> list[str]:
    return [f"{attempt.label} did not write {name}" for name in outputs if not attempt.output(name).exists()]


def verify(
    argv: Sequence[str],
    outputs: Sequence[str] = (),
    tries: int = 2,
    root: SeedTree | None = None,
    other_root: bool = True,
    keep: bool = False,
    cwd: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> VerifyResult:
    """Run ``argv`` ``tries`` times with ``root`` (default: fresh entropy), each in its own
    working copy of ``cwd`` (default: the current folder) placed at one path shared by all
    tries, compare the ``outputs`` (default: stdout), then once with another root. Raises
    ``runner.CommandNotFound`` if the command cannot start and ``VerifyError`` for bad
    output paths."""
    if tries < 2:
        raise VerifyError(f"verify needs at least 2 tries to compare, got {tries}")
    names = _check_outputs(outputs) if outputs else [STDOUT]
    project = Path(cwd or os.getcwd()).resolve()
    root = root if root is not None else SeedTree()
    log = log or (lambda _line: None)
    base = Path(tempfile.mkdtemp(prefix="seedtree-verify-"))
    files = [n for n in names if n != STDOUT]
    place = base / "run"
    attempts = [Try(f"try {i + 1}", root, base / f"try-{i + 1}") for i in range(tries)]
    result = VerifyResult(ok=False, outputs=names, tries=list(attempts))
    try:
        for attempt in attempts:
            log(f"seedtree verify: {attempt.label}/{tries} (root {root.entropy}) ...")
            _run_try(argv, attempt, project, files, place)
            if attempt.returncode != 0:
                result.failures.append(_failure(attempt))
            else:
                result.failures.extend(_missing(attempt, files))
            if result.failures:
                break  # the verdict is settled; do not spend more runs on it
        if not result.failures:
            first = attempts[0]
            for name in names:
                result.digests[name] = tree_digest(first.output(name))
                for other in attempts[1:]:
                    for diff in compare(first.output(name), other.output(name), name):
                        result.mismatches.append(
                            Difference(f"{diff.name} ({first.label} vs {other.label})", diff.detail)
                        )
        if other_root and not result.failures and not result.mismatches:
            alt = Try("different root", _other(root), base / "other-root")
            log(f"seedtree verify: one run with a different root (root {alt.root.entropy}) ...")
            _run_try(argv, alt, project, files, place)
            result.tries.append(alt)
            if alt.returncode == 0 and not _missing(alt, files):
                result.seed_effect = any(compare(attempts[0].output(n), alt.output(n), n) for n in names)
        result.ok = not result.failures and not result.mismatches
    finally:
        if keep:
            result.kept = base
        else:
            shutil.rmtree(base, ignore_errors=True)
    return result


def _other(root: SeedTree) -> SeedTree:
    """A root unrelated to ``root`` yet fixed by it (so verify's own runs are replayable)."""
    return SeedTree((root / "seedtree-verify" / "other-root").seed_int(128))


# -- JUnit XML report (``seedtree verify --junit report.xml``) -----------------------------

# XML 1.0 cannot hold most control characters, even escaped; a stderr tail may contain them.
_NOT_XML = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13))


def _xml_text(text: str) -> str:
    return text.translate(_NOT_XML).encode("utf-8", "replace").decode("utf-8")


def _owner(name: str, outputs: Sequence[str]) -> str | None:
    """The output a difference's file name belongs to (the longest output that contains it)."""
    owners = [o for o in outputs if name == o or name.startswith(o.rstrip("/") + "/")]
    return max(owners, key=len) if owners else None


def junit_xml(result: VerifyResult, argv: Sequence[str], seconds: float = 0.0, strict: bool = False) -> bytes:
    """The verdict as JUnit XML, one ``testcase`` per compared output (``<stdout>`` when the
    command's stdout was compared): a ``failure`` carrying the output's first difference (all
    of them in its text), an ``error`` on every output when a try failed or wrote nothing
    there (the outputs were not compared). When the run with a different root took place, a
    further test case ``different root changes the outputs`` fails under ``strict`` when it
    did not (else it passes with the warning in its ``system-out``)."""
    import xml.etree.ElementTree as ET

    command = " ".join(argv)
    suite = ET.Element("testsuite", name="seedtree verify", timestamp=_now_iso(), time=f"{seconds:.3f}")
    cases: list[ET.Element] = []
    for output in result.outputs:
        case = ET.Element("testcase", classname="seedtree.verify", name=output, time="0")
        if result.failures:
            error = ET.SubElement(case, "error", type="RunFailed", message=_xml_text(result.failures[0].split("\n")[0]))
            error.text = _xml_text("\n".join(result.failures))
        else:
            mine = [d for d in result.mismatches if _owner(d.name.split(" (")[0], result.outputs) == output]
            if mine:
                failure = ET.SubElement(case, "failure", type="NotReproducible", message=_xml_text(str(mine[0])))
                failure.text = _xml_text("\n".join(str(d) for d in mine))
            elif output in result.digests:
                ET.SubElement(case, "system-out").text = f"sha256 {result.digests[output]}"
        cases.append(case)
    if result.seed_effect is not None:
        case = ET.Element("testcase", classname="seedtree.verify", name="different root changes the outputs", time="0")
        if result.seed_effect is False:
            warning = "a different root gave identical outputs: the seed is not reaching the code"
            if strict:
                ET.SubElement(case, "failure", type="SeedIgnored", message=warning)
            else:
                ET.SubElement(case, "system-out").text = "WARNING: " + warning
        cases.append(case)
    props = ET.SubElement(suite, "properties")  # the schema puts properties before the test cases
    ET.SubElement(props, "property", name="command", value=_xml_text(command))
    ET.SubElement(props, "property", name="root", value=str(result.tries[0].root.entropy) if result.tries else "")
    suite.extend(cases)
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
    suite.set("skipped", "0")
    suites = ET.Element("testsuites", name="seedtree verify", tests=suite.get("tests", "0"))
    suites.set("failures", suite.get("failures", "0"))
    suites.set("errors", suite.get("errors", "0"))
    suites.set("time", suite.get("time", "0"))
    suites.append(suite)
    ET.indent(suites)
    text: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return text + b"\n"


def _now_iso() -> str:
    import datetime as _dt

    return _dt.datetime.now(_dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def write_junit(
    result: VerifyResult, path: str | os.PathLike[str], argv: Sequence[str], seconds: float = 0.0, strict: bool = False
) -> Path:
    """Write ``junit_xml(...)`` to ``path`` atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(junit_xml(result, argv, seconds, strict))
    os.replace(tmp, path)
    return path
