"""The traces service's SQL, one module per aggregate (keyword-only functions)."""
