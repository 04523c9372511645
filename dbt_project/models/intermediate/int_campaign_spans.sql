-- Each campaign's first and last active day and its latest attributes: the span its daily
-- rows are zero-filled over. Narrow scans only (no JSON), so it stays cheap as history grows.
with appearances as (
    select platform, channel, account_id, account_name, account_timezone, campaign_id,
           campaign_name, source_currency, attribution_setting, date_day
    from {{ ref('stg_meta_ads__insights') }}
    union all
    select platform, channel, account_id, account_name, account_timezone, campaign_id,
           campaign_name, source_currency, attribution_setting, date_day
    from {{ ref('stg_google_ads__campaign_stats') }}
    union all
    select platform, channel, account_id, account_name, account_timezone, campaign_id,
           campaign_name, source_currency, attribution_setting, date_day
    from {{ ref('int_klaviyo_message_daily') }}
),

ranked as (
    select
        *,
        min(date_day) over (partition by platform, account_id, campaign_id) as first_day,
        max(date_day) over (partition by platform, account_id, campaign_id) as last_day,
        row_number() over (
            partition by platform, account_id, campaign_id order by date_day desc
        ) as recency
    from appearances
)

select
    platform, channel, account_id, account_name, account_timezone, campaign_id,
    campaign_name, source_currency, attribution_setting, first_day, last_day
from ranked
where recency = 1
