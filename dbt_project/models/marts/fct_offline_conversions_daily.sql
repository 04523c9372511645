-- Offline conversions per day, platform and conversion name, in the reporting currency:
-- the sales the site never saw (phone orders, store sales, CRM-qualified leads), ready to
-- set beside fct_marketing_daily's platform-claimed conversions.
select
    c.conversion_date as date_day,
    coalesce(c.platform, 'unattributed') as platform,
    c.conversion_name,
    count(*) as conversions,
    count(c.click_id) as conversions_with_click_id,
    sum(c.value * {{ cfap.fx_rate_expression('c.currency', 'fx.rate') }}) as conversion_value,
    count(*) - count({{ cfap.fx_rate_expression('c.currency', 'fx.rate') }}) as conversions_without_fx_rate
from {{ ref('stg_landing__offline_conversions') }} as c
left join {{ ref('stg_reference__fx_rates') }} as fx
    on fx.rate_date = c.conversion_date and fx.from_currency = c.currency
group by 1, 2, 3
