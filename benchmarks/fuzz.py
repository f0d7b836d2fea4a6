"""A long fuzzing run: the properties of ``tests/test_fuzz.py`` with many more examples.

    .venv/bin/python benchmarks/fuzz.py                    # ~5 min; 3000 inputs per property
    .venv/bin/python benchmarks/fuzz.py --examples 200     # a quick look

For each property (manifest loading from arbitrary bytes and documents, manifests with
one edit or one changed character, ``restore()`` of a mutated captured state, the
loader's ``load_state_dict`` with a mutated state) it reports how many inputs were tried,
how long it took, and what failed (hypothesis's shrunk example and the error), then
writes ``results/fuzz.json``. Exit status 1 when any property failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "fuzz.json"
PROPERTIES = (
    "test_manifest_from_arbitrary_bytes",
    "test_manifest_from_arbitrary_documents",
    "test_manifest_with_one_edit_never_changes_a_stream_silently",
    "test_manifest_with_one_changed_character_never_changes_a_stream_silently",
    "test_restore_of_a_mutated_state",
    "test_loader_load_state_dict_of_a_mutated_state",
    "test_stream_loader_load_state_dict_of_a_mutated_state",
)


def load_properties(examples: int):  # noqa: ANN201 - the test module, loaded from its file
    os.environ["SEEDTREE_FUZZ_EXAMPLES"] = str(examples)  # read when the module is loaded
    sys.path.insert(0, str(HERE.parent))
    spec = importlib.util.spec_from_file_location("seedtree_fuzz_properties", HERE.parent / "tests" / "test_fuzz.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=3000, help="inputs per property (default 3000)")
    args = parser.parse_args()
    module = load_properties(args.examples)
    load_start = os.getloadavg()[0]
    rows = []
    for name in PROPERTIES:
        before = sum(module.TRIED.values())
        t0 = time.perf_counter()
        try:
            getattr(module, name)()
            found = None
        except BaseException as exc:  # noqa: BLE001 - a failing property is the finding we report
            if isinstance(exc, KeyboardInterrupt):
                raise
            found = "".join(traceback.format_exception_only(exc)).strip()
            notes = getattr(exc, "__notes__", [])
            if notes:
                found += "\n" + "\n".join(notes)
        seconds = time.perf_counter() - t0
        tried = sum(module.TRIED.values()) - before
        rows.append(
            {"property": name.removeprefix("test_"), "inputs": tried, "seconds": round(seconds, 1), "found": found}
        )
        verdict = "no failure" if found is None else "FAILED: " + found.splitlines()[0]
        print(f"{name.removeprefix('test_'):75} {tried:7d} inputs {seconds:7.1f} s  {verdict}", flush=True)
    total = sum(r["inputs"] for r in rows)
    failed = [r for r in rows if r["found"]]
    print(f"{total} inputs in all; {len(failed)} propert{'y' if len(failed) == 1 else 'ies'} failed")
    for r in failed:
        print(f"\n{r['property']}:\n{r['found']}")
    result = {
        "examples_per_property": args.examples,
        "inputs": total,
        "failed": len(failed),
        "rows": rows,
        "load_average": [load_start, os.getloadavg()[0]],
        "python": sys.version.split()[0],
    }
    OUT.parent.mkdir(exist_ok=True)
    tmp = OUT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(OUT)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
