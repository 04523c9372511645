-- Google Ads per campaign, region (geo target constant) and day.
select
    cast(segments_date as date) as date_day,
    'google_ads' as platform,
    'paid_search' as channel,
    customer_id as account_id,
    campaign_id,
    cast(replace(segments_geo_target_region, 'geoTargetConstants/', '') as {{ dbt.type_bigint() }})
        as google_criterion_id,
    customer_currency_code as source_currency,
    cast(metrics_cost_micros as {{ dbt.type_bigint() }}) / 1000000.0 as spend_source,
    cast(metrics_impressions as {{ dbt.type_bigint() }}) as impressions,
    cast(metrics_clicks as {{ dbt.type_bigint() }}) as clicks,
    cast(metrics_conversions as {{ cfap.type_double() }}) as conversions,
    cast(metrics_conversions_value as {{ cfap.type_double() }}) as conversion_value_source,
    partition_date
from {{ source('raw', 'google_ads_geo_stats') }}
