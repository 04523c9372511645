-- Email/SMS holdout experiments: one row per campaign and audience member, in the treated
-- group (sent the message) or the randomized holdout (not sent), with their orders in the
-- days after the send (the outcome) and in the 28 days before it (a CUPED covariate).
with campaigns as (
    select campaign_id, message_id, channel, sent_at, send_date
    from {{ ref('stg_klaviyo__campaigns') }}
    where holdout_segment_id is not null
),

treated as (
    select distinct c.campaign_id, e.profile_id, true as is_treated
    from campaigns as c
    inner join {{ ref('stg_klaviyo__events') }} as e
        on e.message_id = c.message_id and e.metric_name in ('Received Email', 'Received SMS')
),

holdout as (
    select distinct campaign_id, profile_id, false as is_treated
    from {{ ref('stg_klaviyo__holdout_profiles') }}
),

units as (
    select * from treated
    union all
    select * from holdout
),

orders as (
    select profile_id, occurred_at, value
    from {{ ref('stg_klaviyo__events') }}
    where metric_name = 'Placed Order'
)

select
    u.campaign_id,
    u.profile_id,
    c.channel,
    c.send_date,
    u.is_treated,
    count(case when o.occurred_at >= c.sent_at then 1 end) as orders,
    coalesce(sum(case when o.occurred_at >= c.sent_at then o.value end), 0) as revenue,
    count(case when o.occurred_at < c.sent_at then 1 end) as pre_orders,
    coalesce(sum(case when o.occurred_at < c.sent_at then o.value end), 0) as pre_revenue
from units as u
inner join campaigns as c on c.campaign_id = u.campaign_id
left join orders as o
    on o.profile_id = u.profile_id
    and o.occurred_at >= {{ dbt.dateadd('day', -28, 'c.sent_at') }}
    and o.occurred_at < {{ dbt.dateadd('day', var('holdout_outcome_days'), 'c.sent_at') }}
group by 1, 2, 3, 4, 5
