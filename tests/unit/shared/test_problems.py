"""The one error shape: every kind of error an app raises answers RFC 9457 problem details."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, HTTPException, Query
from fastapi.testclient import TestClient

from llmops_shared import problems


def app() -> FastAPI:
    api = FastAPI()
    problems.install(api)

    @api.get("/things/{thing_id}")
    async def thing(thing_id: int, colour: Annotated[str, Query(pattern="^(red|blue)$")] = "red") -> dict[str, int]:
        if thing_id == 404:
            raise problems.NotFound("no such thing")
        if thing_id == 409:
            raise problems.Conflict("a thing by that name exists")
        if thing_id == 422:
            raise problems.Invalid("group_by", "unknown grouping 'size'", location="query")
        if thing_id == 401:
            raise HTTPException(401, "missing bearer API key", headers={"WWW-Authenticate": "Bearer"})
        return {"id": thing_id}

    return api


def test_domain_errors_map_to_their_status_with_problem_details() -> None:
    client = TestClient(app())
    for status, detail in ((404, "no such thing"), (409, "a thing by that name exists")):
        resp = client.get(f"/things/{status}")
        assert resp.status_code == status
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json() == {"type": "about:blank", "title": resp.reason_phrase, "status": status, "detail": detail}


def test_invalid_names_the_field_in_errors() -> None:
    body = TestClient(app()).get("/things/422").json()
    assert body["status"] == 422 and body["detail"] == "group_by: unknown grouping 'size'"
    assert body["errors"] == [{"loc": ["query", "group_by"], "msg": "unknown grouping 'size'", "type": "value_error"}]


def test_request_validation_errors_have_the_same_shape() -> None:
    resp = TestClient(app()).get("/things/abc", params={"colour": "green"})
    body = resp.json()
    assert resp.status_code == 422 and body["title"] == "Unprocessable Content"
    assert [e["loc"] for e in body["errors"]] == [["path", "thing_id"], ["query", "colour"]]
    assert "thing_id" in body["detail"] and "colour" in body["detail"]


def test_http_exceptions_keep_their_headers() -> None:
    resp = TestClient(app()).get("/things/401")
    assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
    assert resp.json()["detail"] == "missing bearer API key"
    assert TestClient(app()).get("/nowhere").json() == {"type": "about:blank", "title": "Not Found", "status": 404,
                                                         "detail": "Not Found"}
