{#- Meta's `actions`/`action_values` list of one row, summed over the configured conversion
    action types: a scalar of the row's own array, so the staging view stays a single scan
    of the raw table that date filters push down into. -#}
{% macro meta_action_total(list_column) -%}
    {{ return(adapter.dispatch('meta_action_total', 'cfap')(list_column)) }}
{%- endmacro %}

{%- macro meta_action_types() -%}
    ({%- for t in var('meta_conversion_action_types') %}'{{ t }}'{{ "," if not loop.last }}{% endfor -%})
{%- endmacro %}

{#- DuckDB: list functions, not a correlated subquery. DuckDB plans a subquery per row as a
    join against a materialised copy of the whole scan, which no filter passes, so a
    one-day read of the view would parse the JSON of all history. -#}
{% macro default__meta_action_total(list_column) -%}
    list_sum([
        cast(a.value as {{ cfap.type_double() }})
        for a in json_transform(
            coalesce({{ list_column }}, '[]'), '[{"action_type": "VARCHAR", "value": "VARCHAR"}]'
        )
        if a.action_type in {{ cfap.meta_action_types() }}
    ])
{%- endmacro %}

{% macro bigquery__meta_action_total(list_column) -%}
    (
        select sum(cast({{ cfap.json_text('element', '$.value') }} as {{ cfap.type_double() }}))
        from {{ cfap.json_array_elements(list_column, 'element') }}
        where {{ cfap.json_text('element', '$.action_type') }} in {{ cfap.meta_action_types() }}
    )
{%- endmacro %}


{#- Typed Meta insights with platform conversions, for the campaign or region grain. -#}
{% macro stg_meta_insights(source_table, with_region) -%}
select
    cast(date_start as date) as date_day,
    'meta' as platform,
    'paid_social' as channel,
    account_id,
    account_name,
    account_timezone,
    campaign_id,
    campaign_name as campaign_name_source,
    {{ cfap.normalize_name('campaign_name') }} as campaign_name,
    {% if with_region %}region as region_name,{% endif %}
    account_currency as source_currency,
    cast(spend as {{ cfap.type_double() }}) as spend_source,
    cast(impressions as {{ dbt.type_bigint() }}) as impressions,
    cast(clicks as {{ dbt.type_bigint() }}) as clicks,
    coalesce({{ cfap.meta_action_total('actions') }}, 0) as conversions,
    coalesce({{ cfap.meta_action_total('action_values') }}, 0) as conversion_value_source,
    replace(attribution_windows, ',', '_') as attribution_setting,
    partition_date
from {{ source('raw', source_table) }}
{%- endmacro %}
