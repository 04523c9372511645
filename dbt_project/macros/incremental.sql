{#- The partition window of an incremental run, from the vars Dagster passes. -#}
{% macro partition_window_filter(date_column) -%}
    {%- if cfap.is_incremental_run() -%}
    {{ date_column }} >= cast('{{ var("min_date") }}' as date)
    and {{ date_column }} < cast('{{ var("max_date") }}' as date)
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
