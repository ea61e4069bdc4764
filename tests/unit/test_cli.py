"""`python -m chromedb_client` as a new user meets it: every mistake is an error in a line and a
non-zero exit, never a traceback. Bad arguments are argparse's (usage, then the error; exit 2) and
are found before anything is sent; failures on the way are one line on stderr and exit 1."""

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from chromedb_client import __main__ as cli
from chromedb_client.client import Client

REPO = Path(__file__).resolve().parents[2]


def run(capsys, *argv: str) -> tuple[int, str]:
    """The exit status and stderr of one CLI run, in-process."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # argparse's 2, or a message the interpreter prints before exiting 1
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = 1 if isinstance(exc.code, str) else int(exc.code or 0)
    return code, capsys.readouterr().err


def test_importing_a_file_that_does_not_exist_names_it_without_a_traceback(tmp_path):
    missing = tmp_path / "docs.jsonl"
    command = [sys.executable, "-m", "chromedb_client", "--url", "http://127.0.0.1:9", "import", str(missing)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stdout == ""
    assert (
        done.stderr.splitlines()[-1]
        == f"python -m chromedb_client import: error: argument file: {missing}: no such file"
    )


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["import", "FOLDER"], "argument file: FOLDER: a folder, not a file"),
        (["export", "out.jsonl", "--where", "{k: 1}"], "argument --where: not JSON (Expecting property name"),
        (["export", "out.jsonl", "--where", "[1]"], "argument --where: a filter is a JSON object"),
        (["export", "FOLDER"], "argument file: FOLDER: a folder, not a file"),
        (["export", "/no/such/folder/out.jsonl"], "argument file: /no/such/folder/out.jsonl: no such folder"),
        (["--url", "localhost:8000", "count"], "argument --url: 'localhost:8000' is not an http:// or https:// URL"),
        (["count", "--restart"], "unrecognized arguments: --restart"),
    ],
)
def test_a_bad_argument_is_argparses_error_and_exit_2(capsys, tmp_path, argv, problem):
    argv = [str(tmp_path) if arg == "FOLDER" else arg for arg in argv]
    code, err = run(capsys, *argv)
    assert code == 2 and "Traceback" not in err
    assert err.splitlines()[0].startswith("usage: ")
    assert problem.replace("FOLDER", str(tmp_path)) in err.splitlines()[-1]


def answering(monkeypatch, handle) -> None:
    """The CLI's client answered by `handle` (an httpx.MockTransport handler), without retries."""
    transport = httpx.MockTransport(handle)
    monkeypatch.setattr(cli, "Client", lambda url, key: Client(url, key, transport=transport, retries=0))


def test_no_service_at_the_url_is_one_line_and_exit_1(capsys, monkeypatch):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    answering(monkeypatch, refuse)
    code, err = run(capsys, "--url", "http://tenant:8000", "count")
    assert code == 1
    assert err.splitlines() == [
        "error: no answer from http://tenant:8000 (ConnectError: [Errno 111] Connection refused)"
    ]


def test_an_unreadable_progress_file_says_how_to_start_over(capsys, tmp_path):
    source = tmp_path / "docs.jsonl"
    source.write_text('{"text": "x"}\n')
    (tmp_path / "docs.jsonl.progress").write_text("half\n")
    code, err = run(capsys, "import", str(source))
    assert code == 1 and err.splitlines() == [
        f"{source}.progress: not a line number; pass --restart to import from line 1"
    ]


def test_a_file_that_is_not_utf8_is_named(capsys, tmp_path):
    source = tmp_path / "docs.jsonl"
    source.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    code, err = run(capsys, "import", str(source))
    assert code == 1 and err.splitlines() == [f"{source}:2: not UTF-8 text"]


def test_ctrl_c_during_an_import_says_it_can_resume(capsys, monkeypatch, tmp_path):
    def interrupt(request: httpx.Request) -> httpx.Response:
        raise KeyboardInterrupt

    answering(monkeypatch, interrupt)
    (tmp_path / "docs.jsonl").write_text('{"text": "x"}\n')
    code, err = run(capsys, "import", str(tmp_path / "docs.jsonl"))
    assert code == 130 and err.splitlines() == ["interrupted (the same command goes on from the last stored batch)"]
