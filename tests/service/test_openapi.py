"""The OpenAPI document covers every /v1 operation, its bearer security and its problem+json errors."""

from __future__ import annotations

from typing import Any

from tests.service.conftest import Api

PROBLEM_REF = {"$ref": "#/components/schemas/ProblemDetails"}


def test_every_v1_operation_documents_auth_and_problem_errors(api: Api) -> None:
    schema: dict[str, Any] = api.client.get("/openapi.json").json()
    operations = [(path, method, op) for path, item in schema["paths"].items() if path.startswith("/v1/")
                  for method, op in item.items()]
    assert {(path, method) for path, method, _ in operations} >= {
        ("/v1/models", "post"), ("/v1/models", "get"), ("/v1/models/{model_id}", "get"),
        ("/v1/models/{model_id}/versions", "get"), ("/v1/datasets", "post"), ("/v1/datasets", "get"),
        ("/v1/datasets/{dataset_id}", "get"), ("/v1/unlearn", "post"), ("/v1/jobs", "get"),
        ("/v1/jobs/{job_id}", "get"), ("/v1/jobs/{job_id}/events", "get"), ("/v1/jobs/{job_id}/cancel", "post"),
        ("/v1/jobs/{job_id}/mask", "get"), ("/v1/jobs/{job_id}/report", "get"),
    }
    for path, method, op in operations:
        if not op.get("security"):
            continue  # public endpoints added by other work (e.g. a signing key) carry no bearer
        assert op["security"] == [{"HTTPBearer": []}], (path, method)
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")):
                assert response["content"] == {"application/problem+json": {"schema": PROBLEM_REF}}, (path, status)
        assert "401" in op["responses"], (path, method)

    components = schema["components"]["schemas"]
    assert {"ProblemDetails", "UnlearnRequest", "UnlearnConfig", "EvaluationSpec", "JobOut"} <= set(components)
    unlearn_body = schema["paths"]["/v1/unlearn"]["post"]["requestBody"]["content"]
    assert unlearn_body["application/json"]["schema"] == {"$ref": "#/components/schemas/UnlearnRequest"}
    assert "multipart/form-data" in unlearn_body
    assert "application/jsonl" in schema["paths"]["/v1/datasets"]["post"]["requestBody"]["content"]
