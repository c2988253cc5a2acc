-- `/v1/metrics` filtered by app (an app's dashboard: a month of hourly points) read the hourly rollup by its
-- primary key (tenant_id, bucket, app_id, ...): every rollup row of the tenant in range, to keep one app's.
-- At volume (bench/traces_store.py: 1,000 apps of one tenant) that is most of the month's rows. This index
-- reads one app's rows only.
CREATE INDEX trace_metrics_hourly_tenant_app ON trace_metrics_hourly (tenant_id, app_id, bucket);
