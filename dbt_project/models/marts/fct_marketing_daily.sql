{{ config(**cfap.daily_incremental_config(
    unique_key=['date_day', 'platform', 'account_id', 'campaign_id'],
    cluster_by=['platform', 'campaign_id'],
)) }}
-- One row per day, platform, account and campaign across Meta, Google Ads and Klaviyo:
-- spend and platform-claimed conversions in the reporting currency. Every day between a
-- campaign's first and last appearance is present; days the API omitted are zeros.
with activity as (
    -- Only the run's window is read: cost follows new data, not history.
    select
        date_day, platform, channel, account_id, account_name, account_timezone, campaign_id,
        campaign_name, source_currency, fx_rate, spend_source, spend, impressions, clicks,
        conversions, conversion_value, attribution_setting
    from {{ ref('int_ad_campaign_daily') }}
    where {{ cfap.partition_window_filter('date_day') }}
    and {{ cfap.landed_partition_filter('partition_date') }}
    union all
    select
        k.date_day, k.platform, k.channel, k.account_id, k.account_name, k.account_timezone,
        k.campaign_id, k.campaign_name, k.source_currency, 1.0 as fx_rate, k.spend_source,
        k.spend_source as spend, k.impressions, k.clicks, k.conversions,
        k.conversion_value_source as conversion_value, k.attribution_setting
    from {{ ref('int_klaviyo_message_daily') }} as k
    where {{ cfap.partition_window_filter('k.date_day') }}
),

deduplicated as (
    select *
    from activity
    where true
    qualify row_number() over (
        partition by date_day, platform, account_id, campaign_id order by spend desc
    ) = 1
),

spine as (
    select c.*, d.date_day
    from {{ ref('int_campaign_spans') }} as c
    inner join {{ ref('int_date_spine') }} as d
        on d.date_day between c.first_day and c.last_day
    where {{ cfap.partition_window_filter('d.date_day') }}
)

select
    s.date_day,
    s.platform,
    s.channel,
    s.account_id,
    s.account_name,
    s.account_timezone,
    s.campaign_id,
    s.campaign_name,
    s.source_currency,
    coalesce(a.fx_rate, {{ cfap.fx_rate_expression('s.source_currency', 'fx.rate') }}) as fx_rate,
    coalesce(a.spend_source, 0) as spend_source,
    coalesce(a.spend, 0) as spend,
    coalesce(a.impressions, 0) as impressions,
    coalesce(a.clicks, 0) as clicks,
    coalesce(a.conversions, 0) as conversions,
    coalesce(a.conversion_value, 0) as conversion_value,
    s.attribution_setting,
    a.date_day is null as is_zero_filled
from spine as s
left join deduplicated as a
    on a.date_day = s.date_day
    and a.platform = s.platform
    and a.account_id = s.account_id
    and a.campaign_id = s.campaign_id
left join {{ ref('stg_reference__fx_rates') }} as fx
    on fx.rate_date = s.date_day and fx.from_currency = s.source_currency
