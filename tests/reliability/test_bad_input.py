"""Bad input and abuse: oversized bodies and records, invalid UTF-8, deeply nested JSON, a bad line 10,000.

Every refusal is a clear 413/422 problem document naming the place (the limit's setting, the line, the
field); the limits themselves are covered in tests/service (test_unlearn.py, test_datasets.py). The last test
streams a large upload through a real uvicorn and checks the server's peak memory does not follow its size.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.reliability.conftest import Stack
from tests.reliability.figures import record, size
from tests.service.conftest import QA, Api, assert_problem

JSONL = {"Content-Type": "application/jsonl"}


def _jsonl(rows: list[object]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def test_oversized_bodies_are_413_naming_the_limit(make_api) -> None:  # type: ignore[no-untyped-def]
    api = make_api(max_request_bytes=10_000, max_upload_bytes=50_000)
    headers = api.tenant()
    model = api.register(headers)
    big = {"model_id": model["id"], "kind": "qa", "forget": [{"question": "q", "answer": "a" * 20_000}]}
    assert_problem(api.client.post("/v1/unlearn", json=big, headers=headers), 413, "GRIN_MAX_REQUEST_BYTES")

    def chunks(total: int) -> Iterator[bytes]:  # chunked: no Content-Length to refuse up front
        row = json.dumps(QA[0]).encode() + b"\n"
        for _ in range(total // len(row) + 1):
            yield row

    assert_problem(api.client.post("/v1/unlearn", content=chunks(20_000),
                                   headers={**headers, "Content-Type": "application/json"}),
                   413, "GRIN_MAX_REQUEST_BYTES")
    assert_problem(api.client.post("/v1/datasets?name=r&kind=qa", content=chunks(60_000), headers=headers),
                   413, "GRIN_MAX_UPLOAD_BYTES")
    assert list((api.settings.data_dir / "uploads").iterdir()) == []  # the partial upload was removed
    assert_problem(api.client.post("/v1/models", json={"name": "x" * 20_000, "path": "/"}, headers=headers),
                   413, "GRIN_MAX_REQUEST_BYTES")


def test_oversized_single_records_are_named(make_api) -> None:  # type: ignore[no-untyped-def]
    api = make_api(max_record_bytes=1000)
    headers = api.tenant()
    model = api.register(headers)
    long = {"question": "q", "answer": "a" * 2000}
    body = assert_problem(api.client.post("/v1/datasets?name=r&kind=qa", content=_jsonl([*QA, long]),
                                          headers={**headers, **JSONL}), 422, f"line {len(QA) + 1}",
                          "GRIN_MAX_RECORD_BYTES")
    assert body["line"] == len(QA) + 1
    # A line that never ends is refused once it passes the limit, not buffered to the end.
    assert_problem(api.client.post("/v1/datasets?name=r&kind=qa", content=b'{"question": "' + b"x" * 50_000,
                                   headers={**headers, **JSONL}), 422, "line 1", "GRIN_MAX_RECORD_BYTES")
    assert_problem(api.unlearn(headers, model["id"], [QA[0], long]), 422, "forget[1]", "GRIN_MAX_RECORD_BYTES")


def test_invalid_utf8_is_422_naming_the_line(api: Api) -> None:
    headers = api.tenant()
    model = api.register(headers)
    rows = _jsonl(QA[:2]) + b'{"question": "caf\xe9?", "answer": "x"}\n' + _jsonl(QA[2:])
    assert_problem(api.client.post("/v1/datasets?name=r&kind=qa", content=rows, headers={**headers, **JSONL}),
                   422, "line 3", "not UTF-8")
    raw = json.dumps({"model_id": model["id"], "kind": "qa", "forget": QA[:1]}).encode().replace(b"Who", b"\xff\xfe")
    assert_problem(api.client.post("/v1/unlearn", content=raw, headers={**headers, "Content-Type": "application/json"}),
                   422)
    multipart = api.client.post("/v1/unlearn", headers=headers, files={
        "request": (None, json.dumps({"model_id": model["id"], "kind": "qa"}), "application/json"),
        "forget": ("forget.jsonl", _jsonl(QA[:1]) + b"\xff\xfe\n", "application/jsonl")})
    assert_problem(multipart, 422, "forget: line 2")


@pytest.mark.parametrize("depth", [64, 5_000, 200_000])
def test_deeply_nested_json_is_refused_cleanly(api: Api, depth: int) -> None:
    headers = api.tenant()
    model = api.register(headers)
    nested = "[" * depth + "]" * depth
    body = json.dumps({"model_id": model["id"], "kind": "qa", "forget": [{"question": "q", "answer": "a"}],
                       "metadata": {"x": "NESTED"}}).replace('"NESTED"', nested)
    response = api.client.post("/v1/unlearn", content=body.encode(),
                               headers={**headers, "Content-Type": "application/json"})
    assert response.status_code in (202, 413, 422), response.text
    assert response.status_code == 202 or response.headers["content-type"] == "application/problem+json"
    if depth > 1000:
        assert response.status_code == 422, response.text
        assert "nest" in response.json()["detail"], response.json()
    line = ('{"question": ' + nested + ', "answer": "a"}\n').encode()
    response = api.client.post("/v1/datasets?name=r&kind=qa", content=_jsonl(QA) + line, headers={**headers, **JSONL})
    assert_problem(response, 422, f"line {len(QA) + 1}")  # a list is no question (or too deep, or too long)


def test_a_bad_line_10000_is_named(api: Api) -> None:
    headers = api.tenant()
    model = api.register(headers)
    rows = [{"question": f"q{i}?", "answer": f"a{i}"} for i in range(9_999)]
    bad = b'{"question": "q10000?", "answer": 7}\n'
    body = assert_problem(api.client.post("/v1/datasets?name=r&kind=qa", content=_jsonl(rows) + bad + _jsonl(QA),
                                          headers={**headers, **JSONL}), 422, "line 10000: answer")
    assert body["line"] == 10_000 and body["field"] == "answer"
    not_json = api.client.post("/v1/datasets?name=r&kind=qa", content=_jsonl(rows) + b"{oops\n",
                               headers={**headers, **JSONL})
    assert assert_problem(not_json, 422, "line 10000", "invalid JSON")["line"] == 10_000
    multipart = api.client.post("/v1/unlearn", headers=headers, files={
        "request": (None, json.dumps({"model_id": model["id"], "kind": "qa"}), "application/json"),
        "forget": ("forget.jsonl", _jsonl(rows) + b"{oops\n", "application/jsonl")})
    assert assert_problem(multipart, 422, "forget: line 10000")["line"] == 10_000


def _uvicorn_pid(url: str) -> int:
    port = url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"uvicorn" in part for part in cmdline) and port.encode() in cmdline:
            return int(proc.name)
    raise AssertionError(f"no uvicorn on port {port}")


def _kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    assert match, field
    return int(match.group(1))


@pytest.mark.slow
def test_a_large_streamed_upload_keeps_the_server_memory_flat(shared_stack: Stack) -> None:
    stack = shared_stack
    pid = _uvicorn_pid(stack.url)
    total = size(64, 200) * 1024 * 1024
    row = (json.dumps({"question": "Who is the author born in 1970?", "answer": "x" * 900}) + "\n").encode()
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        block = row * 64
        while sent < total:
            sent += len(block)
            yield block

    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _kib(pid, "VmRSS"))
            time.sleep(0.05)

    before = _kib(pid, "VmRSS")
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    with httpx.Client(base_url=stack.url, headers=stack.headers, timeout=300) as c:
        response = c.post("/v1/datasets", params={"name": "big", "kind": "qa"}, content=chunks(), headers=JSONL)
    stop.set()
    sampler.join()
    assert response.status_code == 201, response.text
    assert response.json()["size_bytes"] == sent
    growth_mib = (peak[0] - before) / 1024
    assert growth_mib < 48, f"uvicorn grew {growth_mib:.0f} MiB for a {sent >> 20} MiB upload"
    record("streamed_upload", upload_mib=sent >> 20, rss_before_mib=before // 1024, rss_peak_mib=peak[0] // 1024,
           growth_mib=round(growth_mib, 1), seconds=round(time.monotonic() - started, 1))
