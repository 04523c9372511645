{#- One bound of the partition window, `offset_days` days moved, as a date literal. The vars
    come from Dagster as ISO strings (a YAML date from the command line works too). -#}
{% macro window_day(var_name, offset_days=0) -%}
    {%- set day = modules.datetime.date.fromisoformat((var(var_name) | string)[:10]) -%}
    cast('{{ (day + modules.datetime.timedelta(days=offset_days)).isoformat() }}' as date)
{%- endmacro %}


{#- The partition window of an incremental run, from the vars Dagster passes; `days_before`
    and `days_after` widen it (a model that must also rebuild neighbouring days). -#}
{% macro partition_window_filter(date_column, days_before=0, days_after=0) -%}
    {%- if cfap.is_incremental_run() -%}
    {{ date_column }} >= {{ cfap.window_day('min_date', -days_before) }}
    and {{ date_column }} < {{ cfap.window_day('max_date', days_after) }}
    {%- else -%}
    1 = 1
    {%- endif -%}
{%- endmacro %}


{#- The landed partitions (raw `partition_date`) that can hold the window's rows: redundant
    beside partition_window_filter, but a plain date column of the raw table, so DuckDB skips
    row groups by their min/max (and BigQuery prunes partitions) instead of computing a
    derived date for every row of history. The slack covers how the connector dates a
    partition: ads land by report day (0), Shopify by the local update day, Klaviyo by the
    UTC day of the event. -#}
{% macro landed_partition_filter(partition_column, days_before=0, days_after=0) -%}
    {%- if cfap.is_incremental_run() -%}
    {{ partition_column }} >= {{ cfap.window_day('min_date', -days_before) }}
    and {{ partition_column }} < {{ cfap.window_day('max_date', days_after) }}
    {%- else -%}
    1 = 1
    {%- endif -%}
{%- endmacro %}

{#- Incremental config per adapter: delete+insert on DuckDB, insert_overwrite on BigQuery. -#}
{% macro daily_incremental_config(unique_key, cluster_by) -%}
    {%- if target.type == 'bigquery' -%}
        {{ return({
            'materialized': 'incremental',
            'incremental_strategy': 'insert_overwrite',
            'partition_by': {'field': 'date_day', 'data_type': 'date', 'granularity': 'day'},
            'cluster_by': cluster_by,
        }) }}
    {%- else -%}
        {{ return({
            'materialized': 'incremental',
            'incremental_strategy': 'delete+insert',
            'unique_key': unique_key,
        }) }}
    {%- endif -%}
{%- endmacro %}


{#- Incremental config for a table keyed by entity (a campaign's span, an order's latest
    version), not by day: a run upserts the keys its window touched. delete+insert on
    DuckDB, merge on BigQuery. -#}
{% macro keyed_incremental_config(unique_key, cluster_by=none) -%}
    {%- if target.type == 'bigquery' -%}
        {{ return({
            'materialized': 'incremental',
            'incremental_strategy': 'merge',
            'unique_key': unique_key,
            'cluster_by': cluster_by or unique_key,
        }) }}
    {%- else -%}
        {{ return({
            'materialized': 'incremental',
            'incremental_strategy': 'delete+insert',
            'unique_key': unique_key,
        }) }}
    {%- endif -%}
{%- endmacro %}


{#- is_incremental(), unless an offline compile pins the branch: is_incremental() asks the
    warehouse whether the table exists, which a compile without a connection cannot.
    `--vars '{offline_compile: incremental}'` (or `full`) compiles that branch instead. -#}
{% macro is_incremental_run() -%}
    {%- set mode = var('offline_compile', none) -%}
    {%- if mode == 'incremental' -%}
        {{ return(true) }}
    {%- elif mode == 'full' -%}
        {{ return(false) }}
    {%- else -%}
        {{ return(is_incremental()) }}
    {%- endif -%}
{%- endmacro %}
