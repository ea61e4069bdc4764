"""`python -m chromedb_client` against the in-process app (the client over tests.contract.app_transport):
an export's progress bar, a refused document named by its line in the file, a wrong key in one line."""

import json
import sys
from typing import Any

import pytest
from tqdm import tqdm

from chromedb_client import __main__ as cli
from chromedb_client.client import Client
from tests.contract.app_transport import AppTransport

KEY = "cli-key-0123456789abcdef"


@pytest.fixture
def app(make_client, monkeypatch):
    app = make_client(max_docs=50, api_key=KEY)
    monkeypatch.setattr(cli, "Client", lambda url, key: Client(url, key, transport=AppTransport(app), retries=0))
    return app


@pytest.fixture
def bars(monkeypatch) -> list[Any]:
    """Every progress bar the CLI draws, kept to be read after it closed."""
    made: list[Any] = []

    def recorded(*args: Any, **kwargs: Any) -> Any:
        made.append(tqdm(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(cli, "tqdm", recorded)
    return made


def run(capsys, *argv: str, key: str = KEY) -> tuple[int, str]:
    """The exit status and stderr of one CLI run."""
    try:
        code = cli.main(["--url", "http://testserver", "--api-key", key, *argv])
    except SystemExit as exc:  # with a message, which the interpreter prints before exiting 1
        print(exc.code, file=sys.stderr)
        code = 1 if isinstance(exc.code, str) else int(exc.code or 0)
    return code, capsys.readouterr().err


def store(app, count: int, matching: int) -> None:
    documents = [{"id": f"d{n}", "text": f"note {n}", "metadata": {"k": int(n < matching)}} for n in range(count)]
    assert app.post("/embed/", json={"documents": documents}, headers={"X-API-Key": KEY}).status_code == 200


def test_a_filtered_export_counts_up_to_what_it_wrote_not_towards_the_whole_collection(app, bars, capsys, tmp_path):
    store(app, count=7, matching=2)
    code, _ = run(capsys, "export", str(tmp_path / "some.jsonl"), "--where", '{"k": 1}')
    assert code == 0 and len((tmp_path / "some.jsonl").read_text().splitlines()) == 2
    assert (bars[-1].n, bars[-1].total) == (2, None)  # no total known before the last page: none shown

    code, _ = run(capsys, "export", str(tmp_path / "all.jsonl"))
    assert code == 0 and (bars[-1].n, bars[-1].total) == (7, 7)


def test_a_refused_document_is_named_by_its_line_in_the_file(app, capsys, tmp_path):
    source = tmp_path / "docs.jsonl"
    lines = [{"text": "fine"}, None, {"text": "fine too"}, {"text": "bad", "metadata": {"tags": ["a", "b"]}}]
    source.write_text("".join(("" if line is None else json.dumps(line)) + "\n" for line in lines))
    code, err = run(capsys, "import", str(source))
    assert code == 1
    assert f"{source}:4: refused: 422 validation_error" in err and "Traceback" not in err
    assert app.get("/count/", headers={"X-API-Key": KEY}).json()["count"] == 0  # the batch was refused whole


@pytest.mark.parametrize("command", [["import", "FILE"], ["export", "OUT"], ["count"]])
def test_a_wrong_key_is_one_line_before_any_progress_bar(app, capsys, tmp_path, command):
    (tmp_path / "docs.jsonl").write_text('{"text": "x"}\n')
    argv = [{"FILE": str(tmp_path / "docs.jsonl"), "OUT": str(tmp_path / "out.jsonl")}.get(a, a) for a in command]
    code, err = run(capsys, *argv, key="not-the-key-0123456789")
    assert code == 1
    assert err.splitlines() == [
        "error: 401 unauthorized: the API key is not valid for this instance (field Authorization)"
    ]
    assert not (tmp_path / "out.jsonl").exists()
