{#- Meta's `actions`/`action_values` list of one row, summed over the configured conversion
    action types: a scalar subquery over the row's own array, so the staging view stays a
    single scan of the raw table that date filters push down into. -#}
{% macro meta_action_total(list_column) -%}
    (
        select sum(cast({{ cfap.json_text('element', '$.value') }} as {{ cfap.type_double() }}))
        from {{ cfap.json_array_elements(list_column, 'element') }}
        where {{ cfap.json_text('element', '$.action_type') }} in (
            {%- for t in var('meta_conversion_action_types') %}'{{ t }}'{{ "," if not loop.last }}{% endfor -%}
        )
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
    replace(attribution_windows, ',', '_') as attribution_setting
from {{ source('raw', source_table) }}
{%- endmacro %}
