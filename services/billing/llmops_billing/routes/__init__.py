"""The billing API's routers, one per resource: `usage` (usage, CSV export, summary, statements, unpriced
models), `budgets` and `prices`. Routes are thin: they read the request, call one service function and
return its JSON-ready answer, which the route's response model (`schemas`) describes. They catch nothing:
services raise `llmops_shared.problems` errors, which the app maps to problem details once.
"""
