"""The notifier: delivers alerts from `guardrails.alerts` to each tenant's channels."""
