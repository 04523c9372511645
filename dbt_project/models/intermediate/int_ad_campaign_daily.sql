-- Meta and Google Ads per campaign and day, in source and reporting currency.
-- partition_date is the raw partition the row landed in (the report day for both APIs):
-- incremental readers filter on it too, so their scans skip the rest of history.
with unioned as (
    select
        date_day, platform, channel, account_id, account_name, account_timezone, campaign_id,
        campaign_name, source_currency, spend_source, impressions, clicks, conversions,
        conversion_value_source, attribution_setting, partition_date
    from {{ ref('stg_meta_ads__insights') }}
    union all
    select
        date_day, platform, channel, account_id, account_name, account_timezone, campaign_id,
        campaign_name, source_currency, spend_source, impressions, clicks, conversions,
        conversion_value_source, attribution_setting, partition_date
    from {{ ref('stg_google_ads__campaign_stats') }}
)

select
    u.*,
    {{ cfap.fx_rate_expression('u.source_currency', 'fx.rate') }} as fx_rate,
    u.spend_source * {{ cfap.fx_rate_expression('u.source_currency', 'fx.rate') }} as spend,
    u.conversion_value_source * {{ cfap.fx_rate_expression('u.source_currency', 'fx.rate') }}
        as conversion_value
from unioned as u
left join {{ ref('stg_reference__fx_rates') }} as fx
    on fx.rate_date = u.date_day and fx.from_currency = u.source_currency
