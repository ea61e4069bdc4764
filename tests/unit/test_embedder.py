"""The Embedder's plain helpers: batch sizes by texts, results back to their calls, lower priority."""

import os
import sys
import threading

import pytest

from deployments.embedder import BULK_NICENESS_STEPS, _rows_of, lower_this_threads_priority, total_texts


def test_a_batch_is_sized_by_its_texts_and_split_back_by_call():
    calls = [["a", "b"], [], ["c"], ["d", "e", "f"]]
    assert total_texts(calls) == 6
    flat = [text for call in calls for text in call]
    assert [flat[rows] for rows in _rows_of(calls)] == calls


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_bulk_threads_run_lower_and_pass_it_to_the_threads_they_start():
    seen: dict[str, int] = {}

    def own() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def bulk() -> None:
        lower_this_threads_priority()
        seen["bulk"] = own()
        child = threading.Thread(target=lambda: seen.__setitem__("child", own()))
        child.start()
        child.join()

    before = own()
    worker = threading.Thread(target=bulk)
    worker.start()
    worker.join()
    assert seen["bulk"] == seen["child"] == min(19, before + BULK_NICENESS_STEPS)
    assert own() == before  # the caller's thread keeps its priority
