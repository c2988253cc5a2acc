"""`/evaluations`: judge scores per rubric over the last week (the evaluator's results) and the review
queue, where a person takes the next item (locked for them) and labels it."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from llmops_console import charts
from llmops_console.auth import CheckedForm, Viewer
from llmops_console.routes.deps import render
from llmops_evaluator import results, review_queue
from llmops_shared.apikeys import Scope
from llmops_shared.deps import Now
from llmops_shared.problems import Invalid

router = APIRouter()


@router.get("/evaluations", response_class=HTMLResponse, include_in_schema=False)
async def evaluations(request: Request, viewer: Viewer, now: Now) -> HTMLResponse:
    viewer.require(Scope.EVAL_WRITE)
    async with request.app.state.pool.acquire() as conn:
        page = await results.list_results(conn=conn, tenant_id=viewer.principal.tenant_id, limit=500,
                                          filters=results.ResultFilter(status="ok", since=now - timedelta(days=7)))
    rows = [{"at": r.occurred_at.isoformat(), "rubric": r.rubric, "score": r.score} for r in page.items]
    return render(request, "evaluations.html", viewer=viewer, page="evaluations", results=page.items,
                  chart=charts.pivot(rows, x="at", group="rubric", value="score"), item=None)


@router.post("/evaluations/review/next", response_class=HTMLResponse, include_in_schema=False)
async def take_next(request: Request, viewer: Viewer, _form: CheckedForm, now: Now) -> HTMLResponse:
    viewer.require(Scope.EVAL_WRITE)
    async with request.app.state.pool.acquire() as conn:
        item = await review_queue.next_review_item(conn=conn, tenant_id=viewer.principal.tenant_id,
                                                   reviewer=viewer.principal.key_id,
                                                   lock_minutes=request.app.state.settings.review_lock_minutes,
                                                   now=now)
    return render(request, "review.html", viewer=viewer, page="evaluations", item=item)


@router.post("/evaluations/review/{item_id}", include_in_schema=False)
async def submit(request: Request, viewer: Viewer, form: CheckedForm, item_id: int, now: Now) -> Response:
    viewer.require(Scope.EVAL_WRITE)
    score_text, label, comment = form.get("score"), form.get("label"), form.get("comment")
    score = None
    if isinstance(score_text, str) and score_text.strip():
        if not score_text.strip().isdigit():
            raise Invalid("score", "a whole number on the rubric's scale", location="body")
        score = int(score_text)
    async with request.app.state.pool.acquire() as conn:
        await review_queue.submit_review(conn=conn, tenant_id=viewer.principal.tenant_id, item_id=item_id,
                                         reviewer=viewer.principal.key_id, score=score,
                                         label=label if isinstance(label, str) and label else None,
                                         comment=comment if isinstance(comment, str) and comment else None,
                                         now=now)
    return RedirectResponse("/evaluations", status_code=303)
