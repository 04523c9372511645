-- One row per visitor journey, converting or not: its marketing touches in order
-- ("paid_social > email > direct"), whether it ended in a purchase, and the order value.
-- The input of path-based attribution (Shapley, Markov).
with touches as (
    select journey_id, channel, event_at, insert_id
    from {{ ref('stg_first_party__touchpoints') }}
    where event = 'touch'
),

outcomes as (
    select
        journey_id,
        max(case when event = 'purchase' then 1 else 0 end) as conversions,
        coalesce(sum(case when event = 'purchase' then value end), 0) as conversion_value,
        max(event_at) as ended_at
    from {{ ref('stg_first_party__touchpoints') }}
    where event in ('purchase', 'session_end')
    group by 1
),

paths as (
    select
        journey_id,
        string_agg(channel, ' > ' order by event_at, insert_id) as path,
        count(*) as touchpoints,
        count(distinct channel) as distinct_channels,
        min(event_at) as first_touch_at
    from touches
    group by 1
)

select
    o.journey_id,
    {{ cfap.local_date('o.ended_at', "'" ~ var('shop_timezone') ~ "'") }} as date_day,
    p.path,
    p.touchpoints,
    p.distinct_channels,
    o.conversions,
    o.conversions = 1 as is_converted,
    o.conversion_value,
    p.first_touch_at,
    o.ended_at
from outcomes as o
inner join paths as p on p.journey_id = o.journey_id
