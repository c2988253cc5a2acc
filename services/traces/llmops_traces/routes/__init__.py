"""The traces API's routers, one per resource."""
