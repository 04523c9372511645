{{ config(**cfap.keyed_incremental_config(
    unique_key=['platform', 'account_id', 'campaign_id'],
    cluster_by=['platform', 'campaign_id'],
)) }}
-- Each campaign's first and last active day and its latest attributes: the span its daily
-- rows are zero-filled over. Narrow scans only (no JSON).
-- Incremental: a run folds in the appearances of its window (Klaviyo: of the days its
-- run of int_klaviyo_message_daily rebuilt) and updates only the campaigns it saw:
-- first_day = least(old, new), last_day = greatest(old, new), attributes from whichever
-- has the newer day. A campaign absent from the window keeps its row, so a stopped
-- campaign's last_day does not move, and re-running an earlier day cannot pull last_day
-- back or replace newer attributes with older ones.
with appearances as (
    select platform, channel, account_id, account_name, account_timezone, campaign_id,
           campaign_name, source_currency, attribution_setting, date_day
    from {{ ref('stg_meta_ads__insights') }}
    where {{ cfap.partition_window_filter('date_day') }}
    and {{ cfap.landed_partition_filter('partition_date') }}
    union all
    select platform, channel, account_id, account_name, account_timezone, campaign_id,
           campaign_name, source_currency, attribution_setting, date_day
    from {{ ref('stg_google_ads__campaign_stats') }}
    where {{ cfap.partition_window_filter('date_day') }}
    and {{ cfap.landed_partition_filter('partition_date') }}
    union all
    select platform, channel, account_id, account_name, account_timezone, campaign_id,
           campaign_name, source_currency, attribution_setting, date_day
    from {{ ref('int_klaviyo_message_daily') }}
    where {{ cfap.partition_window_filter('date_day', days_before=1, days_after=1) }}
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
),

spans as (
    select
        platform, channel, account_id, account_name, account_timezone, campaign_id,
        campaign_name, source_currency, attribution_setting, first_day, last_day
    from ranked
    where recency = 1
)

{% if cfap.is_incremental_run() %}
{%- set keys = ['platform', 'account_id', 'campaign_id'] %}
{%- set columns = [
    'platform', 'channel', 'account_id', 'account_name', 'account_timezone', 'campaign_id',
    'campaign_name', 'source_currency', 'attribution_setting',
] %}
select
    {%- for column in columns %}
    {%- if column in keys %}
    windowed.{{ column }},
    {%- else %}
    case when stored.last_day > windowed.last_day then stored.{{ column }}
        else windowed.{{ column }} end as {{ column }},
    {%- endif %}
    {%- endfor %}
    least(windowed.first_day, coalesce(stored.first_day, windowed.first_day)) as first_day,
    greatest(windowed.last_day, coalesce(stored.last_day, windowed.last_day)) as last_day
from spans as windowed
left join {{ this }} as stored
    on stored.platform = windowed.platform
    and stored.account_id = windowed.account_id
    and stored.campaign_id = windowed.campaign_id
{% else %}
select * from spans
{% endif %}
