"""Retain data sets: streamed JSON Lines, validated line by line, size-limited, stored content-addressed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from app.core.artifacts import store_from_settings
from tests.service.conftest import QA, Api, assert_problem


def _jsonl(rows: list[object]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def test_upload_stores_the_file_by_hash_with_counts(api: Api) -> None:
    headers = api.tenant()
    body = _jsonl(QA) + b"\n"  # a trailing blank line is skipped
    response = api.client.post("/v1/datasets?name=retain&kind=qa", content=body,
                               headers={**headers, "Content-Type": "application/jsonl"})
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["record_count"] == len(QA) and dataset["size_bytes"] == len(body)
    assert dataset["sha256"] == hashlib.sha256(body).hexdigest()
    assert store_from_settings(api.settings).read_bytes(dataset["sha256"]) == body
    assert response.headers["location"] == f"/v1/datasets/{dataset['id']}"
    assert api.client.get(f"/v1/datasets/{dataset['id']}", headers=headers).json() == dataset
    assert [d["id"] for d in api.client.get("/v1/datasets", headers=headers).json()["items"]] == [dataset["id"]]
    assert list((api.settings.data_dir / "uploads").iterdir()) == []  # the temporary file is gone


def test_a_streamed_chunked_upload_is_accepted(api: Api) -> None:
    headers = api.tenant()

    def chunks() -> Iterator[bytes]:
        data = _jsonl([{"text": f"passage {i}"} for i in range(200)])
        for start in range(0, len(data), 97):  # chunks that split lines
            yield data[start:start + 97]

    response = api.client.post("/v1/datasets?name=t&kind=text", content=chunks(), headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["record_count"] == 200


def test_a_bad_line_is_named_by_number_and_field(api: Api) -> None:
    headers = api.tenant()
    rows = _jsonl(QA[:2]) + b'{"question": "no answer"}\n' + _jsonl(QA[2:])
    body = assert_problem(api.client.post("/v1/datasets?name=r&kind=qa", content=rows, headers=headers),
                          422, "line 3: answer")
    assert body["line"] == 3 and body["field"] == "answer"
    assert_problem(api.client.post("/v1/datasets?name=r&kind=qa", content=_jsonl(QA[:1]) + b"{not json\n",
                                   headers=headers), 422, "line 2", "invalid JSON")
    assert_problem(api.client.post("/v1/datasets?name=r&kind=harmful", content=_jsonl(QA[:1]), headers=headers),
                   422, "line 1: prompt")
    assert_problem(api.client.post("/v1/datasets?name=r&kind=qa", content=b"\n\n", headers=headers), 422,
                   "no records")
    assert_problem(api.client.post("/v1/datasets?name=r&kind=mcq", content=_jsonl(QA), headers=headers), 422)
    assert api.client.get("/v1/datasets", headers=headers).json()["items"] == []


def test_uploads_over_the_limits_are_refused(make_api) -> None:  # type: ignore[no-untyped-def]
    api = make_api(max_upload_bytes=2000, max_record_bytes=300, max_request_bytes=500)
    headers = api.tenant()
    fits = _jsonl([{"text": "x" * 100}] * 10)  # over max_request_bytes: uploads have their own limit
    assert api.client.post("/v1/datasets?name=fits&kind=text", content=fits, headers=headers).status_code == 201
    big = _jsonl([{"text": "x" * 100}] * 30)
    assert_problem(api.client.post("/v1/datasets?name=big&kind=text", content=big, headers=headers), 413,
                   "GRIN_MAX_UPLOAD_BYTES")

    def streamed() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(30):
            yield json.dumps({"text": "x" * 100}).encode() + b"\n"

    assert_problem(api.client.post("/v1/datasets?name=big&kind=text", content=streamed(), headers=headers), 413)
    long_line = _jsonl([{"text": "ok"}, {"text": "y" * 400}])
    assert_problem(api.client.post("/v1/datasets?name=long&kind=text", content=long_line, headers=headers), 422,
                   "line 2", "GRIN_MAX_RECORD_BYTES")
    assert [d["name"] for d in api.client.get("/v1/datasets", headers=headers).json()["items"]] == ["fits"]
