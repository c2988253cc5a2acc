"""One router per page family: sign-in, overview, alerts, traces, evaluations, budgets."""
