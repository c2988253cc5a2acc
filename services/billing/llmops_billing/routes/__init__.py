"""The billing API's routers, one per resource: `usage` (usage, CSV export, summary, statements, unpriced
models), `budgets` and `prices`. Routes are thin: they read the request, call one service function and
return its JSON-ready answer, which the route's response model (`schemas`) describes and FastAPI validates.
They catch nothing: services raise `llmops_shared.problems` errors, which the app maps to problem details
once.

The usage page and the summary (up to thousands of rows) are rendered as they are (`JSONBody`): validating
1,000 rows against their model costs ~3 ms a request, a tenth of a month's query. Their models still
document them, and `tests/integration/billing/test_api.py` checks every answer of every route against its
route's model.
"""
