{#- The partition window of an incremental run, from the vars Dagster passes. -#}
{% macro partition_window_filter(date_column) -%}
    {%- if is_incremental() -%}
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
