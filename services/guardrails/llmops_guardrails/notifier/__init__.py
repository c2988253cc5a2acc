"""The notifier: delivers alerts from `llmops.alerts` to each tenant's channels."""
