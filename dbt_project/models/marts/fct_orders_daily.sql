{{ config(**cfap.daily_incremental_config(
    unique_key=['date_day', 'geo_id'],
    cluster_by=['geo_id'],
)) }}
-- Shopify orders per day (shop time zone) and region, in the reporting currency.
-- Cancelled orders are excluded; refunds are netted against the day the order was placed.
-- Shopify restates by update: an incremental run rebuilds its own days and every older
-- order day that an update inside the window touched (a refund, a cancellation).
with affected_days as (
    select date_day from {{ ref('int_date_spine') }}
    where {{ cfap.partition_window_filter('date_day') }}
    {% if cfap.is_incremental_run() %}
    union distinct
    select distinct order_date from {{ ref('int_orders') }}
    where {{ cfap.partition_window_filter('updated_date') }}
    {% endif %}
),

orders as (
    select * from {{ ref('int_orders') }}
    where not is_cancelled
    {% if cfap.is_incremental_run() %}
    and order_date in (select date_day from affected_days)
    {% endif %}
),

geos as (
    select distinct geo_id from {{ ref('int_orders') }}
),

span as (
    select min(order_date) as first_day, max(order_date) as last_day
    from {{ ref('int_orders') }}
    where not is_cancelled
),

spine as (
    select g.geo_id, d.date_day
    from geos as g
    cross join span as s
    inner join affected_days as d on d.date_day between s.first_day and s.last_day
),

daily as (
    select
        order_date as date_day,
        geo_id,
        count(*) as orders,
        count(distinct customer_id) as customers,
        sum(gross_revenue) as gross_revenue,
        sum(discounts) as discounts,
        sum(refunds) as refunds
    from orders
    group by 1, 2
)

select
    s.date_day,
    s.geo_id,
    coalesce(d.orders, 0) as orders,
    coalesce(d.customers, 0) as customers,
    round(coalesce(d.gross_revenue, 0), 2) as gross_revenue,
    round(coalesce(d.discounts, 0), 2) as discounts,
    round(coalesce(d.refunds, 0), 2) as refunds,
    -- Rounded to the cent: a fully refunded order nets to 0.00, not to -1e-14.
    round(coalesce(d.gross_revenue, 0) - coalesce(d.discounts, 0) - coalesce(d.refunds, 0), 2)
        as net_revenue
from spine as s
left join daily as d on d.date_day = s.date_day and d.geo_id = s.geo_id
