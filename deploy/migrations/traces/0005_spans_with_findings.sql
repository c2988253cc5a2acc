-- `GET /v1/spans?app=..&has_findings=true` over a month: at 10 M spans (bench/traces_store.py) it read the
-- app's month of spans by (tenant_id, app_id, occurred_at) to keep the 2.5% that have guardrail findings
-- (p95 595 ms). This partial index holds those spans only (a few per cent of the rows, so little to write).
CREATE INDEX trace_spans_tenant_app_findings ON trace_spans (tenant_id, app_id, occurred_at DESC)
    WHERE finding_count > 0;
