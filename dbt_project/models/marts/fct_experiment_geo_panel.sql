-- Geo holdout experiments as panels: one row per experiment, region and day from the
-- pre-period through the test end. Holdout regions had the experiment's platform
-- switched off while the test ran; the others are the controls.
with registry as (
    select * from {{ ref('stg_reference__experiment_registry') }}
    where experiment_type = 'geo_holdout'
),

regions as (
    select distinct o.geo_id
    from {{ ref('fct_orders_daily') }} as o
    inner join {{ ref('stg_reference__geo_regions') }} as g on g.geo_id = o.geo_id
    where g.market = 'US'
),

panel as (
    select
        r.experiment_id,
        r.platform,
        r.channel,
        r.start_date,
        r.end_date,
        g.geo_id,
        d.date_day,
        '|' || r.holdout_units || '|' like '%|' || g.geo_id || '|%' as is_holdout_unit
    from registry as r
    cross join regions as g
    inner join {{ ref('int_date_spine') }} as d
        on d.date_day between {{ dbt.dateadd('day', -var('experiment_pre_period_days'), 'r.start_date') }}
        and r.end_date
)

select
    p.experiment_id,
    p.geo_id,
    p.date_day,
    p.platform,
    p.channel,
    p.is_holdout_unit,
    p.date_day >= p.start_date as is_test_period,
    p.is_holdout_unit and p.date_day >= p.start_date as is_treated,
    o.orders,
    o.net_revenue as revenue,
    coalesce(m.spend, 0) as platform_spend
from panel as p
inner join {{ ref('fct_orders_daily') }} as o
    on o.date_day = p.date_day and o.geo_id = p.geo_id
left join {{ ref('fct_marketing_geo_daily') }} as m
    on m.date_day = p.date_day and m.geo_id = p.geo_id and m.platform = p.platform
