{{ config(**cfap.daily_incremental_config(
    unique_key=['date_day', 'campaign_id'],
    cluster_by=['campaign_id'],
)) }}
-- Klaviyo per campaign (or flow) and day: messages delivered, clicks, and the orders
-- Klaviyo attributes to them (its own claim, by order date).
-- Incremental: Klaviyo lands events by the UTC day of their time, so the events a window
-- brings fall on the shop's local days from the day before the window to the day after
-- it; a run rebuilds those days whole. fct_marketing_daily reads the window's own days,
-- int_campaign_spans all the rebuilt ones.
{%- set window_events -%}
    {{ cfap.partition_window_filter('e.event_date', days_before=1, days_after=1) }}
    and {{ cfap.landed_partition_filter('e.partition_date', days_before=2, days_after=2) }}
{%- endset %}

with messages as (
    select message_id, campaign_id, campaign_name, channel, 'campaign' as message_type
    from {{ ref('stg_klaviyo__campaigns') }}
),

flow_messages as (
    select distinct e.message_id, e.flow_id as campaign_id, f.flow_name as campaign_name,
           'email' as channel, 'flow' as message_type
    from {{ ref('stg_klaviyo__events') }} as e
    left join {{ ref('stg_klaviyo__flows') }} as f on f.flow_id = e.flow_id
    where e.flow_id is not null and e.metric_name = 'Received Email'
),

all_messages as (
    select * from messages
    union all
    select * from flow_messages
),

touches as (
    select
        e.event_date as date_day,
        m.campaign_id,
        sum(case when e.metric_name in ('Received Email', 'Received SMS') then 1 else 0 end)
            as delivered,
        sum(case when e.metric_name in ('Clicked Email', 'Clicked SMS') then 1 else 0 end)
            as clicks,
        0 as conversions,
        0.0 as conversion_value
    from {{ ref('stg_klaviyo__events') }} as e
    inner join all_messages as m on m.message_id = e.message_id
    where e.metric_name != 'Placed Order' and {{ window_events }}
    group by 1, 2
),

orders as (
    select
        e.event_date as date_day,
        m.campaign_id,
        0 as delivered,
        0 as clicks,
        count(*) as conversions,
        sum(e.value) as conversion_value
    from {{ ref('stg_klaviyo__events') }} as e
    inner join all_messages as m on m.message_id = e.attributed_message_id
    where e.metric_name = 'Placed Order' and {{ window_events }}
    group by 1, 2
),

combined as (
    select date_day, campaign_id, sum(delivered) as delivered, sum(clicks) as clicks,
           sum(conversions) as conversions, sum(conversion_value) as conversion_value
    from (select * from touches union all select * from orders) as t
    group by 1, 2
)

select
    c.date_day,
    'klaviyo' as platform,
    m.channel,
    'klaviyo' as account_id,
    'Klaviyo' as account_name,
    '{{ var("shop_timezone") }}' as account_timezone,
    c.campaign_id,
    m.campaign_name,
    m.message_type,
    '{{ var("reporting_currency") }}' as source_currency,
    cast(0 as {{ cfap.type_double() }}) as spend_source,
    c.delivered as impressions,
    c.clicks,
    cast(c.conversions as {{ cfap.type_double() }}) as conversions,
    c.conversion_value as conversion_value_source,
    'klaviyo_native' as attribution_setting
from combined as c
inner join (select distinct campaign_id, campaign_name, channel, message_type from all_messages) as m
    on m.campaign_id = c.campaign_id
