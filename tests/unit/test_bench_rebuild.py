"""`make bench-rebuild` on a small tenant: it breaks the index, rebuilds it without the model (the
Embedder it gets fails if called), upgrades a format-1 copy of the folder, and prints its table."""

from bench import rebuild

RECORDS = 1_200  # past chromadb's 1,000-write sync threshold: its HNSW files are on disk to break


def test_the_rebuild_bench_runs_and_prints_every_row(capsys):
    assert rebuild.main(["--documents", str(RECORDS)]) == 0
    table = capsys.readouterr().out.split("| what |", 1)[1]
    for row in ("chromadb alone", "tenant store write", "rebuild of a broken index", "upgrade from format 1"):
        assert f"| {row}" in table
