-- Model-ready daily table (one row per day with data): spend and platform-claimed
-- conversions per channel, Shopify orders and revenue, the calendar, how many campaigns
-- were in flight, and a media cost index (blended paid CPM over its mean).
with marketing as (
    select
        date_day,
        sum(case when channel = 'paid_social' then spend else 0 end) as spend_paid_social,
        sum(case when channel = 'paid_search' then spend else 0 end) as spend_paid_search,
        sum(case when channel = 'email' then spend else 0 end) as spend_email,
        sum(case when channel = 'sms' then spend else 0 end) as spend_sms,
        sum(case when channel = 'paid_social' then conversions else 0 end) as conversions_paid_social,
        sum(case when channel = 'paid_search' then conversions else 0 end) as conversions_paid_search,
        sum(case when channel = 'email' then conversions else 0 end) as conversions_email,
        sum(case when channel = 'sms' then conversions else 0 end) as conversions_sms,
        sum(case when channel = 'email' then impressions else 0 end) as email_delivered,
        sum(case when channel = 'sms' then impressions else 0 end) as sms_delivered,
        sum(case when spend > 0 or (channel in ('email', 'sms') and impressions > 0) then 1 else 0 end)
            as campaign_flight_days,
        {{ cfap.safe_divide(
            "sum(case when channel in ('paid_social', 'paid_search') then spend else 0 end) * 1000",
            "sum(case when channel in ('paid_social', 'paid_search') then impressions else 0 end)",
        ) }} as paid_cpm
    from {{ ref('fct_marketing_daily') }}
    group by 1
),

orders as (
    select
        date_day,
        sum(orders) as orders,
        sum(gross_revenue) as gross_revenue,
        sum(net_revenue) as revenue
    from {{ ref('fct_orders_daily') }}
    group by 1
),

days as (
    select date_day from marketing
    union distinct
    select date_day from orders
)

select
    d.date_day,
    coalesce(m.spend_paid_social, 0) as spend_paid_social,
    coalesce(m.spend_paid_search, 0) as spend_paid_search,
    coalesce(m.spend_email, 0) as spend_email,
    coalesce(m.spend_sms, 0) as spend_sms,
    coalesce(m.conversions_paid_social, 0) as conversions_paid_social,
    coalesce(m.conversions_paid_search, 0) as conversions_paid_search,
    coalesce(m.conversions_email, 0) as conversions_email,
    coalesce(m.conversions_sms, 0) as conversions_sms,
    coalesce(m.email_delivered, 0) as email_delivered,
    coalesce(m.sms_delivered, 0) as sms_delivered,
    coalesce(o.orders, 0) as orders,
    coalesce(o.gross_revenue, 0) as gross_revenue,
    coalesce(o.revenue, 0) as revenue,
    coalesce(m.campaign_flight_days, 0) as campaign_flight_days,
    {{ cfap.safe_divide('m.paid_cpm', 'avg(m.paid_cpm) over ()') }} as media_cost_index,
    c.day_of_week,
    c.week_of_year,
    c.iso_week_start,
    c.month,
    c.quarter,
    c.year,
    c.is_weekend,
    c.is_business_day,
    c.is_holiday,
    c.holiday_name,
    c.is_month_end,
    c.peak_season,
    c.seasonality_index
from days as d
left join marketing as m on m.date_day = d.date_day
left join orders as o on o.date_day = d.date_day
inner join {{ ref('dim_calendar') }} as c on c.date_day = d.date_day
