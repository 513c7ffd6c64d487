"""Sampling the server with py-spy while a workload runs, and reading the samples back.

`python -m bench --profile DIR` records one collapsed-stack file per backend and workload
(py-spy's raw format: one line per distinct stack, `frame;frame;... count`). py-spy is not a
dependency of stadsnav: `pip install py-spy` first. `python -m bench.profiling FILE [N]` prints the
top N functions by own time and by total time (own plus callees) from one such file.
"""

from __future__ import annotations

import contextlib
import linecache
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def py_spy(pids: list[int], output: Path | None, rate: int = 250) -> Iterator[None]:
    """Record the given processes into output (a .txt of collapsed stacks) during the block."""
    if output is None or not pids:
        yield
        return
    executable = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(executable).exists():
        raise RuntimeError("--profile needs py-spy: pip install py-spy")
    recorders = []
    for pid in pids:
        target = output if len(pids) == 1 else output.with_suffix(f".{pid}.txt")
        recorders.append(
            subprocess.Popen(
                [
                    executable,
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    str(rate),
                    "--format",
                    "raw",
                    "--threads",
                    "--nonblocking",
                    "--output",
                    str(target),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    time.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        for recorder in recorders:
            recorder.send_signal(signal.SIGINT)
        for recorder in recorders:
            try:
                recorder.wait(timeout=30)
            except subprocess.TimeoutExpired:
                recorder.kill()


def _frame_name(frame: str, lines: bool = False) -> str:
    """`function (path/to/module.py:123)` -> `function (module.py)`, or with `:123` if lines."""
    name, _, where = frame.partition(" (")
    path, _, line = where.rstrip(")").rpartition(":")
    if not path:
        path, line = line, ""
    for marker in ("site-packages/", "src/", "lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "lib/python3.":
                path = "stdlib/" + path.split("/", 1)[-1]
            break
    if lines and line:
        path = f"{path}:{line}"
    return f"{name} ({path})" if path else name


def read_stacks(path: Path, lines: bool = False) -> Counter[tuple[str, ...]]:
    """Stacks (outermost frame first) and their sample counts; thread names left out."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for text in path.read_text().splitlines():
        stack, _, count = text.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = tuple(
            _frame_name(f, lines) for f in stack.split(";") if not f.startswith("thread (")
        )
        stacks[frames] += int(count)
    return stacks


def hotspots(
    stacks: Counter[tuple[str, ...]], top: int = 15
) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """(samples, [(function, own %)], [(function, total %)]) for the busiest functions."""
    total = sum(stacks.values())
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks.items():
        if frames:
            own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    scale = 100 / max(1, total)
    # Total time only for the broker's own code: the frameworks' frames are on every stack.
    ours = [
        (name, n)
        for name, n in inclusive.most_common()
        if "(stadsnav/" in name and "(stadsnav/cli.py" not in name and "__main__" not in name
    ]
    return (
        total,
        [(name, round(n * scale, 1)) for name, n in own.most_common(top)],
        [(name, round(n * scale, 1)) for name, n in ours[:top]],
    )


def _source_line(frame: str) -> str:
    """`  <- the line's text` for frames in stadsnav (and the Python standard library)."""
    where = frame.rpartition(" (")[2].rstrip(")")
    path, _, line = where.rpartition(":")
    if not line.isdigit() or not path.startswith("stadsnav/"):
        return ""
    import stadsnav

    root = Path(stadsnav.__file__).parent.parent
    text = linecache.getline(str(root / path), int(line)).strip()
    return f"  <- {text[:70]}" if text else ""


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m bench.profiling FILE.txt [TOP]", file=sys.stderr)
        return 2
    top = int(argv[1]) if len(argv) > 1 else 15
    samples, own, inclusive = hotspots(read_stacks(Path(argv[0])), top)
    _, own_lines, _ = hotspots(read_stacks(Path(argv[0]), lines=True), top)
    print(f"{samples} samples (CPU only: idle threads are not sampled)")
    print("\nown time (the function itself; C code is counted in the Python line calling it):")
    for name, share in own:
        print(f"  {share:5.1f} %  {name}")
    print("\nown time by line (source as it is now; re-run if the code changed since):")
    for name, share in own_lines:
        print(f"  {share:5.1f} %  {name}{_source_line(name)}")
    print("\ntotal time of stadsnav functions (the function and what it calls):")
    for name, share in inclusive:
        print(f"  {share:5.1f} %  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
