"""Every code sample in README.md and docs/**/*.md runs as written, so the docs cannot drift.

How a page is run (one pytest item per page):

- Fenced blocks are found by their tag. ```python, ```bash and ```sh blocks run; the
  tags in ``SHOWN_TAGS`` (console, text, ini, toml, yaml, json, systemd, dockerfile) are
  shown, not run. Any other tag, or no tag, fails the test: tag a transcript ``console``
  and a diagram ``text``.
- An HTML comment on the line just before a block steers it:
  ``<!-- sample: skip (reason) -->`` skips a block that cannot run as written (a server
  that runs until stopped, a network, root); the reason is required.
  ``<!-- sample: file NAME.py -->`` writes a python block to ``NAME.py`` in the temp dir
  (``pkg/mod.py`` makes the folders) instead of running it, so later samples can
  ``from NAME import ...`` and ``conveyor --app NAME:app`` can load it.
- One subprocess per page, in a fresh temp dir as its cwd, with every ``CONVEYOR_*``
  variable removed and the project's ``.venv/bin`` first on ``PATH``. It writes the
  page's files first, then runs the blocks in page order: python blocks ``exec`` in one
  ``__main__`` namespace (later blocks build on earlier ones); shell blocks run with
  ``bash -e`` in the same dir.
- Shell lines that install or build (``make …``, ``pip install …``, ``uv …``) are shown,
  not run (a line continued with ``\\`` goes with them). A ```bash line may not start
  with a ``$`` prompt: a prompted transcript is a ```console block.
- Each page runs as written (SQLite in the temp dir unless it names a store), and, when
  its python blocks name no store (``App()``) and it has python blocks, a second time with
  ``CONVEYOR_STORE=memory://``, python blocks only (the memory store lives in one process,
  so a shell command could not see it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN_TAGS = frozenset({"python", "bash", "sh"})
SHOWN_TAGS = frozenset({"console", "text", "ini", "toml", "yaml", "json", "systemd", "dockerfile"})
SHOWN_COMMANDS = re.compile(r"^(make\b|pip install\b|uv\b)")
"""Shell lines that install or build: shown to the reader, never run by the test."""
DIRECTIVE = re.compile(r"^<!--\s*sample:\s*(?P<body>.*?)\s*-->$")
SKIP = re.compile(r"^skip\s*\((?P<reason>.*)\)$")
FILE = re.compile(r"^file\s+(?P<name>[A-Za-z0-9_./-]+\.py)$")
NAMED_STORE = re.compile(r"\bApp\(\s*(?:store\s*=\s*)?[\"']")
"""A python sample that passes a DSN to App: it names its store, so one run is enough."""
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+)(?P<info>.*)$")
PAGE_TIMEOUT = 90.0
"""Seconds one run of a page may take (a page runs at most twice)."""
OUTPUT_TAIL = 6000


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block of a page, with what the line before it asked for."""

    index: int
    line: int
    tag: str
    source: str
    skip: str | None = None
    file: str | None = None

    @property
    def runs(self) -> bool:
        """True for a python or shell block that is neither skipped nor a file."""
        return self.tag in RUN_TAGS and self.skip is None and self.file is None


class SampleError(Exception):
    """A page whose blocks break the convention (bad tag, directive or skip without reason)."""


def pages() -> list[Path]:
    """README.md and every page under docs/, in a stable order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def parse_blocks(text: str, where: str) -> list[Block]:
    """The fenced blocks of a markdown page, checked against the convention."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        start = i
        fence, indent = match["fence"], len(match["indent"])
        tag = match["info"].strip().split(" ")[0].lower() if match["info"].strip() else ""
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i])
            i += 1
        if i == len(lines):
            raise SampleError(f"{where}:{start + 1}: the fence opened here is never closed")
        i += 1
        blocks.append(_block(len(blocks) + 1, start, tag, "\n".join(body) + "\n", lines, where))
    return blocks


def _block(index: int, start: int, tag: str, source: str, lines: list[str], where: str) -> Block:
    """One block, with the directive on the line just before its fence applied."""
    at = f"{where}:{start + 1} (block {index})"
    if tag not in RUN_TAGS | SHOWN_TAGS:
        known = ", ".join(sorted(RUN_TAGS | SHOWN_TAGS))
        raise SampleError(f"{at}: tag {tag or '(none)'!r} is not one of: {known}")
    directive = DIRECTIVE.match(lines[start - 1].strip()) if start > 0 else None
    if directive is None:
        if tag in ("bash", "sh"):
            _check_no_prompt(source, at)
        return Block(index, start + 1, tag, source)
    body = directive["body"]
    if (skip := SKIP.match(body)) is not None:
        if not skip["reason"].strip():
            raise SampleError(f"{at}: 'sample: skip' needs a reason: <!-- sample: skip (why) -->")
        return Block(index, start + 1, tag, source, skip=skip["reason"].strip())
    if (file := FILE.match(body)) is not None:
        if tag != "python":
            raise SampleError(f"{at}: 'sample: file' applies to python blocks, not {tag!r}")
        return Block(index, start + 1, tag, source, file=file["name"])
    raise SampleError(f"{at}: unknown directive {body!r}; use 'skip (reason)' or 'file NAME.py'")


def _check_no_prompt(source: str, at: str) -> None:
    for number, line in enumerate(source.splitlines(), 1):
        if line.startswith("$ "):
            raise SampleError(
                f"{at}, line {number}: a ```bash block runs as a script; drop the '$ ' "
                "prompt, or tag a prompted transcript ```console"
            )


def runnable_shell(source: str) -> str:
    """The script with install/build lines (and their continuations) commented out."""
    out: list[str] = []
    continued = False
    for line in source.splitlines():
        shown = continued or SHOWN_COMMANDS.match(line.strip()) is not None
        out.append(f": shown, not run: {line!r}" if shown else line)
        continued = shown and line.rstrip().endswith("\\")
    return "\n".join(out) + "\n"


def _only_shown(block: Block) -> bool:
    """True for a shell block whose every command is an install/build line."""
    if block.tag not in ("bash", "sh"):
        return False
    lines = runnable_shell(block.source).splitlines()
    return all(
        not line.strip() or line.lstrip().startswith(("#", ": shown, not run:")) for line in lines
    )


def memory_run_fits(blocks: list[Block]) -> bool:
    """True when the page runs python samples and none of them names its store."""
    python = [b for b in blocks if b.tag == "python" and b.skip is None]
    return any(b.runs for b in python) and not any(NAMED_STORE.search(b.source) for b in python)


def sample_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a page run: no CONVEYOR_* settings, the project's venv first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    venv_bin = ROOT / ".venv" / "bin"
    bin_dir = venv_bin if venv_bin.is_dir() else Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def run_page(path: Path, blocks: list[Block], *, memory: bool) -> tuple[int, str]:
    """Run the page's samples in a subprocess; return its exit status and output."""
    where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    plan = {
        "page": where,
        "memory": memory,
        "blocks": [
            {"index": b.index, "line": b.line, "tag": b.tag, "source": b.source, "file": b.file}
            for b in blocks
            if b.skip is None and (b.tag in RUN_TAGS)
        ],
    }
    with tempfile.TemporaryDirectory(prefix="conveyor-docs-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        plan_path = Path(tmp) / "plan.json"
        plan_path.write_text(json.dumps(plan), encoding="utf-8")
        env = sample_env({"CONVEYOR_STORE": "memory://"} if memory else {})
        bin_dir = Path(env["PATH"].split(os.pathsep)[0])
        python = bin_dir / "python" if (bin_dir / "python").exists() else Path(sys.executable)
        return run_in_group([str(python), __file__, str(plan_path)], cwd=work, env=env)


def run_in_group(args: list[str], *, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run a page's driver in a process group of its own, and leave nothing of it running.

    Workers a sample starts (and anything it puts in the background) are in the group:
    it is killed when the driver ends, and at once when the page overruns its time.
    """
    with tempfile.TemporaryFile("w+", encoding="utf-8") as log:
        proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            status = proc.wait(timeout=PAGE_TIMEOUT)
            note = ""
        except subprocess.TimeoutExpired:
            status = 124
            note = f"\n(the page did not finish within {PAGE_TIMEOUT:.0f} s; killed)"
        finally:
            _kill_group(proc.pid)
            proc.wait()
        log.seek(0)
        return status, log.read() + note


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # nothing of the group is left
        os.killpg(pgid, signal.SIGKILL)


def check_page(path: Path) -> str:
    """Run one page as written (and on the memory store when it fits); return its tally.

    Raises:
        AssertionError: a block failed; the message names the page, run, block and output.
    """
    where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    blocks = parse_blocks(path.read_text(encoding="utf-8"), where)
    runs = [("as written", False)]
    if memory_run_fits(blocks):
        runs.append(("memory://", True))
    for label, memory in runs:
        status, output = run_page(path, blocks, memory=memory)
        if status != 0:
            failed = [line for line in output.splitlines() if line.startswith("--- FAILED: ")]
            which = failed[-1].removeprefix("--- FAILED: ") if failed else "a sample"
            raise AssertionError(
                f"{where} ({label}): {which} failed (exit {status}); the page's output "
                f"up to there:\n{output[-OUTPUT_TAIL:]}"
            )
    ran = sum(b.runs and not _only_shown(b) for b in blocks)
    files = sum(b.file is not None for b in blocks)
    skipped = [b for b in blocks if b.skip is not None]
    shown = sum((b.tag in SHOWN_TAGS and b.skip is None) or _only_shown(b) for b in blocks)
    tally = (
        f"{where}: {ran} ran ({' + '.join(label for label, _ in runs)}), {files} files, "
        f"{len(skipped)} skipped, {shown} shown"
    )
    for block in skipped:
        tally += f"\n  skipped block {block.index} (line {block.line}): {block.skip}"
    return tally


@pytest.mark.slow
@pytest.mark.timeout(2 * PAGE_TIMEOUT + 30)
@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_samples_run(page: Path) -> None:
    """Every python and shell sample of the page runs as written."""
    print(check_page(page))


# The harness itself ------------------------------------------------------------------


def _page(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "page.md"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_failing_block_names_page_block_and_output(tmp_path: Path) -> None:
    """The harness can fail: the message points at the block and shows its output."""
    page = _page(
        tmp_path,
        """\
        ```python
        x = 1
        ```

        ```python
        print("before the fault")
        summarise(x)
        ```
        """,
    )
    with pytest.raises(AssertionError) as failure:
        check_page(page)
    message = str(failure.value)
    assert "page.md (as written)" in message
    assert "block 2 (line 5, python) failed" in message
    assert "before the fault" in message
    assert "NameError: name 'summarise' is not defined" in message


def test_blocks_share_a_namespace_files_are_importable_and_shell_sees_them(
    tmp_path: Path,
) -> None:
    """Python blocks build on each other; a file block is importable and on disk for bash."""
    page = _page(
        tmp_path,
        """\
        <!-- sample: file shop.py -->
        ```python
        PRICE = 3
        ```

        ```python
        from shop import PRICE
        total = PRICE * 2
        ```

        ```python
        assert total == 6, total
        ```

        ```bash
        make demo
        pip install 'conveyor[redis]'
        test -f shop.py
        test -z "${CONVEYOR_STORE:-}"
        ```
        """,
    )
    assert "3 ran (as written + memory://), 1 files, 0 skipped, 0 shown" in check_page(page)


def test_nothing_a_page_starts_outlives_it(tmp_path: Path) -> None:
    """A process a sample leaves in the background is killed with the page's group."""
    pid_file = tmp_path / "pid"
    page = _page(tmp_path, f"```bash\nsleep 300 &\necho $! > {pid_file}\n```\n")
    check_page(page)
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(pid), f"sleep {pid} outlived its page"


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_file_block_with_a_syntax_error_fails_the_page(tmp_path: Path) -> None:
    """A file block is checked even when no later sample imports it."""
    page = _page(tmp_path, "<!-- sample: file app.py -->\n```python\ndef f(:\n```\n")
    with pytest.raises(AssertionError, match=r"block 1 \(line 2, file\) failed"):
        check_page(page)


def test_a_failing_shell_block_fails_the_page(tmp_path: Path) -> None:
    """bash -e: the first failing command fails the block, with its output."""
    page = _page(tmp_path, "```bash\necho shell-says-hi\nfalse\necho never\n```\n")
    with pytest.raises(AssertionError) as failure:
        check_page(page)
    assert "shell-says-hi" in str(failure.value)
    assert "never" not in str(failure.value).split("shell-says-hi", 1)[1]


def test_memory_run_uses_the_memory_store(tmp_path: Path) -> None:
    """A page that names no store also runs on memory://, where App() opens a MemoryStore."""
    page = _page(
        tmp_path,
        """\
        ```python
        import os
        from conveyor import App
        app = App()
        kind = type(app.store).__name__
        expected = "MemoryStore" if os.environ.get("CONVEYOR_STORE") else "SQLiteStore"
        assert kind == expected, (kind, expected)
        ```
        """,
    )
    assert "(as written + memory://)" in check_page(page)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("<!-- sample: skip () -->\n```python\nx\n```\n", "needs a reason"),
        ("<!-- sample: skip -->\n```python\nx\n```\n", "unknown directive"),
        ("```\nplain\n```\n", "tag '(none)'"),
        ("```pycon\n>>> 1\n```\n", "tag 'pycon'"),
        ("```bash\n$ conveyor info\n```\n", "tag a prompted transcript ```console"),
        ("<!-- sample: file x.py -->\n```bash\nls\n```\n", "applies to python blocks"),
        ("```python\nx = 1\n", "never closed"),
    ],
)
def test_convention_breaches_are_refused(text: str, complaint: str) -> None:
    """A block that breaks the convention is an error that says how to fix it."""
    with pytest.raises(SampleError, match=re.escape(complaint)):
        parse_blocks(text, "page.md")


def test_skips_are_counted_with_their_reason(tmp_path: Path) -> None:
    """A skipped block does not run, and the tally lists it with its reason."""
    page = _page(
        tmp_path,
        """\
        <!-- sample: skip (runs until stopped) -->
        ```bash
        sleep 1000
        ```

        ```console
        $ conveyor info
        ```
        """,
    )
    tally = check_page(page)
    assert "0 ran (as written), 0 files, 1 skipped, 1 shown" in tally
    assert "skipped block 1 (line 2): runs until stopped" in tally


# The driver: run as a script inside the page's temp dir --------------------------------


def _drive(plan_path: str) -> int:
    """Write the page's files, then run its blocks in order; 0 if all of them succeed."""
    plan = json.loads(Path(plan_path).read_text(encoding="utf-8"))
    work = Path.cwd()
    sys.path[0] = str(work)  # the page's files, not this test directory
    for block in plan["blocks"]:
        if block["file"]:
            target = work / block["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block["source"], encoding="utf-8")
            try:
                compile(block["source"], str(target), "exec")
            except SyntaxError:
                traceback.print_exc()
                print(f"--- FAILED: block {block['index']} (line {block['line']}, file)")
                return 1
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = main
    for block in plan["blocks"]:
        if block["file"]:
            continue
        label = f"block {block['index']} (line {block['line']}, {block['tag']})"
        if block["tag"] != "python" and plan["memory"]:
            print(f"--- {label}: not run on memory:// (the store lives in one process)")
            continue
        print(f"--- {label}", flush=True)
        if not _run_block(block, label, main.__dict__):
            print(f"--- FAILED: {label}", flush=True)
            return 1
    return 0


def _run_block(block: dict[str, object], label: str, namespace: dict[str, object]) -> bool:
    source = str(block["source"])
    if block["tag"] == "python":
        try:
            exec(compile(source, f"<{label}>", "exec"), namespace)
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            return False
        finally:
            sys.stdout.flush()
        return True
    done = subprocess.run(
        ["bash", "-e", "-c", runnable_shell(source)],
        stdout=sys.stdout,
        stderr=subprocess.STDOUT,
        check=False,
    )
    sys.stdout.flush()
    return done.returncode == 0


if __name__ == "__main__":
    sys.exit(_drive(sys.argv[1]))
