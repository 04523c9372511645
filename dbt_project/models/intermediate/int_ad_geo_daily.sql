-- Meta regions and Google geo targets mapped to one region id, per platform and day.
-- partition_date is the raw partition the rows landed in (the report day for both APIs, so
-- it does not split a day): incremental readers filter on it to skip the rest of history.
with meta as (
    select m.date_day, m.platform, m.channel, g.geo_id, m.source_currency, m.spend_source,
           m.impressions, m.clicks, m.conversions, m.conversion_value_source, m.partition_date
    from {{ ref('stg_meta_ads__insights_region') }} as m
    left join {{ ref('stg_reference__geo_regions') }} as g
        on g.region_name = m.region_name
),

google as (
    select s.date_day, s.platform, s.channel, g.geo_id, s.source_currency, s.spend_source,
           s.impressions, s.clicks, s.conversions, s.conversion_value_source, s.partition_date
    from {{ ref('stg_google_ads__geo_stats') }} as s
    left join {{ ref('stg_reference__geo_regions') }} as g
        on g.google_criterion_id = s.google_criterion_id
),

unioned as (
    select * from meta
    union all
    select * from google
)

select
    u.date_day,
    u.platform,
    u.channel,
    coalesce(u.geo_id, 'unknown') as geo_id,
    u.partition_date,
    sum(u.spend_source * {{ cfap.fx_rate_expression('u.source_currency', 'fx.rate') }}) as spend,
    sum(u.impressions) as impressions,
    sum(u.clicks) as clicks,
    sum(u.conversions) as conversions,
    sum(u.conversion_value_source * {{ cfap.fx_rate_expression('u.source_currency', 'fx.rate') }})
        as conversion_value
from unioned as u
left join {{ ref('stg_reference__fx_rates') }} as fx
    on fx.rate_date = u.date_day and fx.from_currency = u.source_currency
group by 1, 2, 3, 4, 5
