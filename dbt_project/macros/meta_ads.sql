{#- Meta's `actions`/`action_values` lists summed over the configured conversion action
    types, per row of `relation` identified by `key_columns`. -#}
{% macro meta_action_totals(relation, key_columns, list_column, alias) -%}
    select
        {% for c in key_columns %}s.{{ c }},{% endfor %}
        sum(cast({{ cfap.json_text('element', '$.value') }} as {{ cfap.type_double() }})) as {{ alias }}
    from {{ relation }} as s
    cross join {{ cfap.json_array_elements('s.' ~ list_column, 'element') }}
    where {{ cfap.json_text('element', '$.action_type') }} in (
        {%- for t in var('meta_conversion_action_types') %}'{{ t }}'{{ "," if not loop.last }}{% endfor -%}
    )
    group by {% for c in key_columns %}s.{{ c }}{{ "," if not loop.last }}{% endfor %}
{%- endmacro %}


{#- Typed Meta insights with platform conversions, for the campaign or region grain. -#}
{% macro stg_meta_insights(source_table, grain_columns) -%}
with source as (
    select * from {{ source('raw', source_table) }}
),

conversions as (
    {{ cfap.meta_action_totals('source', grain_columns, 'actions', 'conversions') }}
),

conversion_values as (
    {{ cfap.meta_action_totals('source', grain_columns, 'action_values', 'conversion_value') }}
)

select
    cast(s.date_start as date) as date_day,
    'meta' as platform,
    'paid_social' as channel,
    s.account_id,
    s.account_name,
    s.account_timezone,
    s.campaign_id,
    s.campaign_name as campaign_name_source,
    {{ cfap.normalize_name('s.campaign_name') }} as campaign_name,
    {% if 'region' in grain_columns %}s.region as region_name,{% endif %}
    s.account_currency as source_currency,
    cast(s.spend as {{ cfap.type_double() }}) as spend_source,
    cast(s.impressions as {{ dbt.type_bigint() }}) as impressions,
    cast(s.clicks as {{ dbt.type_bigint() }}) as clicks,
    coalesce(c.conversions, 0) as conversions,
    coalesce(v.conversion_value, 0) as conversion_value_source,
    replace(s.attribution_windows, ',', '_') as attribution_setting
from source as s
left join conversions as c
    using ({{ grain_columns | join(', ') }})
left join conversion_values as v
    using ({{ grain_columns | join(', ') }})
{%- endmacro %}
