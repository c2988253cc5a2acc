"""The web console (port 8090): overview, alerts, traces, evaluations and budgets, for a logged-in API key."""
