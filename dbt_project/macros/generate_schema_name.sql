{#- Schemas are the contract names (raw, staging, marts, causal): locally as they are,
    on BigQuery as one dataset each with the configured prefix (cfap_marts, ...). -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set name = custom_schema_name or 'staging' -%}
    {%- if target.type == 'bigquery' -%}
        {{ env_var('CFAP_DATASET_PREFIX', 'cfap') }}_{{ name | trim }}
    {%- else -%}
        {{ name | trim }}
    {%- endif -%}
{%- endmacro %}
