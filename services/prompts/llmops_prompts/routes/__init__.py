"""The prompts API's routers, one per resource."""
