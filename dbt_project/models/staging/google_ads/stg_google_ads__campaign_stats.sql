-- Google Ads per campaign and day: cost from micros, ids as strings.
select
    cast(segments_date as date) as date_day,
    'google_ads' as platform,
    'paid_search' as channel,
    customer_id as account_id,
    customer_descriptive_name as account_name,
    customer_time_zone as account_timezone,
    campaign_id,
    campaign_name as campaign_name_source,
    {{ cfap.normalize_name('campaign_name') }} as campaign_name,
    campaign_status,
    customer_currency_code as source_currency,
    cast(metrics_cost_micros as {{ dbt.type_bigint() }}) / 1000000.0 as spend_source,
    cast(metrics_impressions as {{ dbt.type_bigint() }}) as impressions,
    cast(metrics_clicks as {{ dbt.type_bigint() }}) as clicks,
    cast(metrics_conversions as {{ cfap.type_double() }}) as conversions,
    cast(metrics_conversions_value as {{ cfap.type_double() }}) as conversion_value_source,
    'google_account_default' as attribution_setting,
    partition_date
from {{ source('raw', 'google_ads_campaign_stats') }}
