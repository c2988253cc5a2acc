"""SQL of the prompts service: one module per aggregate, keyword-only functions, every one naming its tenant."""
