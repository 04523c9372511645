-- One row per day: calendar attributes, the primary market's public holidays, retail peak
-- seasons, and a seasonality index learned from order history (mean net revenue of the
-- ISO week of year over the mean of all weeks, 1.0 when there is no history for that week).
with spine as (
    select date_day from {{ ref('int_date_spine') }}
),

holidays as (
    select holiday_date, holiday_name
    from {{ ref('stg_reference__public_holidays') }}
    where country_code = '{{ var("primary_country", "US") }}'
),

season_days as (
    -- Seasons never overlap, so each day belongs to at most one.
    select d.date_day, min(p.season_name) as season_name
    from {{ ref('stg_reference__peak_seasons') }} as p
    inner join spine as d on d.date_day between p.start_date and p.end_date
    group by 1
),

revenue_by_day as (
    select date_day, sum(net_revenue) as net_revenue
    from {{ ref('fct_orders_daily') }}
    group by 1
),

weekly_profile as (
    select
        {{ cfap.iso_week_of_year('date_day') }} as week_of_year,
        avg(net_revenue) as mean_revenue
    from revenue_by_day
    group by 1
),

seasonality as (
    select
        week_of_year,
        mean_revenue / avg(mean_revenue) over () as seasonality_index
    from weekly_profile
),

calendar as (
    select
        s.date_day,
        {{ cfap.day_of_week_iso('s.date_day') }} as day_of_week,
        {{ cfap.day_name('s.date_day') }} as day_name,
        {{ cfap.iso_week_of_year('s.date_day') }} as week_of_year,
        {{ cfap.truncate_date('week', 's.date_day') }} as iso_week_start,
        extract(month from s.date_day) as month,
        {{ cfap.truncate_date('month', 's.date_day') }} as month_start,
        extract(quarter from s.date_day) as quarter,
        extract(year from s.date_day) as year,
        h.holiday_name,
        p.season_name as peak_season,
        extract(day from {{ dbt.dateadd('day', 1, 's.date_day') }}) = 1 as is_month_end
    from spine as s
    left join holidays as h on h.holiday_date = s.date_day
    left join season_days as p on p.date_day = s.date_day
)

select
    c.date_day,
    c.day_of_week,
    c.day_name,
    c.week_of_year,
    c.iso_week_start,
    c.month,
    c.month_start,
    c.quarter,
    c.year,
    c.day_of_week in (6, 7) as is_weekend,
    c.day_of_week not in (6, 7) and c.holiday_name is null as is_business_day,
    c.holiday_name is not null as is_holiday,
    c.holiday_name,
    c.is_month_end,
    c.is_month_end and c.month in (3, 6, 9, 12) as is_quarter_end,
    c.peak_season,
    coalesce(z.seasonality_index, 1.0) as seasonality_index
from calendar as c
left join seasonality as z on z.week_of_year = c.week_of_year
